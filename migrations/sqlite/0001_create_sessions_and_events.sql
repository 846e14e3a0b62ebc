-- Sessions: one row per call. Times are milliseconds since the Unix epoch (UTC).
-- event_count is the exact number of events and also the last seq handed out (seqs are dense).
CREATE TABLE sessions (
    session_id  TEXT    NOT NULL PRIMARY KEY,
    status      TEXT    NOT NULL CHECK (status IN ('initiated', 'active', 'completed', 'failed')),
    language    TEXT    NOT NULL,
    metadata    TEXT    NOT NULL,            -- a JSON object
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    event_count INTEGER NOT NULL DEFAULT 0 CHECK (event_count >= 0)
) WITHOUT ROWID;

-- Events, clustered by (session_id, seq): a page of a transcript is one contiguous range scan.
CREATE TABLE events (
    session_id TEXT    NOT NULL,
    seq        INTEGER NOT NULL CHECK (seq >= 1),
    event_id   TEXT    NOT NULL,
    type       TEXT    NOT NULL CHECK (type IN ('user_speech', 'bot_speech', 'system')),
    payload    TEXT    NOT NULL,             -- a JSON object
    timestamp  INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;

-- The idempotency key: one event per (session_id, event_id).
CREATE UNIQUE INDEX events_session_event_id ON events (session_id, event_id);
