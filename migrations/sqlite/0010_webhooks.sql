-- Webhooks (issue 22). Endpoints are few and rarely change: each is its JSON record (the same
-- fields MongoDB keeps), replaced whole and conditionally on its revision.
CREATE TABLE webhook_endpoints (
    id         TEXT    NOT NULL PRIMARY KEY,
    revision   INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    record     TEXT    NOT NULL
) WITHOUT ROWID;

-- Where the fan-out of the change feed has got to: one row, written once per fan-out batch
-- (not per write), compared-and-set so two instances never queue a batch twice.
CREATE TABLE webhook_fanout (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    position   TEXT,
    next_order INTEGER NOT NULL
);

-- One row per message (a change, or a test), its body kept once for every endpoint.
CREATE TABLE webhook_messages (
    ord        INTEGER NOT NULL PRIMARY KEY,
    id         TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    session_id TEXT,
    body       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
-- What retention removes, oldest first; what an erasure empties.
CREATE INDEX webhook_messages_created ON webhook_messages (created_at);
CREATE INDEX webhook_messages_session ON webhook_messages (session_id) WHERE session_id IS NOT NULL;

-- One row per endpoint and message. `step` counts attempts since it was (re)queued (its place on
-- the retry schedule); `lease_token`/`lease_until` mark the instance that holds it while an
-- attempt is in flight; `attempts` is the log (JSON array, the newest 50).
CREATE TABLE webhook_deliveries (
    endpoint_id     TEXT    NOT NULL,
    ord             INTEGER NOT NULL,
    session_id      TEXT,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    step            INTEGER NOT NULL DEFAULT 0,
    attempted       INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    lease_token     TEXT,
    lease_until     INTEGER,
    attempts        TEXT    NOT NULL DEFAULT '[]',
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (endpoint_id, ord)
) WITHOUT ROWID;
-- What is due, in order: only pending rows are in it.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (ord) WHERE status = 'pending';
-- What retention removes, oldest first; whether a message is still named by a delivery.
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);
CREATE INDEX webhook_deliveries_ord ON webhook_deliveries (ord);
