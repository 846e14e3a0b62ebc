-- The CHECKs on `events.type` and `changes.kind` were written as IN lists. SQLite checks an IN
-- list of more than two constants by building a temporary index of the list, on every row
-- inserted: twice per appended event, a third of the writer's instructions per append (measured
-- with bench/profile.sh, see BENCHMARKS.md). The same rules written as comparisons cost nothing
-- of that kind. SQLite cannot change a CHECK in place, so both tables are rebuilt (once, at
-- upgrade), the way 0002 rebuilt `sessions`.

CREATE TABLE events_v2 (
    session_id TEXT    NOT NULL,
    seq        INTEGER NOT NULL CHECK (seq >= 1),
    event_id   TEXT    NOT NULL,
    type       TEXT    NOT NULL
               CHECK (type = 'user_speech' OR type = 'bot_speech' OR type = 'system'),
    payload    TEXT    NOT NULL,             -- a JSON object
    timestamp  INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
INSERT INTO events_v2 (session_id, seq, event_id, type, payload, timestamp)
SELECT session_id, seq, event_id, type, payload, timestamp FROM events;
DROP TABLE events;
ALTER TABLE events_v2 RENAME TO events;
-- The idempotency key: one event per (session_id, event_id).
CREATE UNIQUE INDEX events_session_event_id ON events (session_id, event_id);

-- Positions are never handed out twice: the log's high-water mark (sqlite_sequence) is carried
-- over, also when every row has been trimmed.
CREATE TEMP TABLE changes_high_water AS
SELECT seq FROM sqlite_sequence WHERE name = 'changes';
CREATE TABLE changes_v2 (
    pos        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL
               CHECK (kind = 'session.created' OR kind = 'event.appended'
                      OR kind = 'session.updated' OR kind = 'session.ended'
                      OR kind = 'session.deleted'),
    session_id TEXT    NOT NULL,
    seq        INTEGER,
    data       TEXT
);
INSERT INTO changes_v2 (pos, at, kind, session_id, seq, data)
SELECT pos, at, kind, session_id, seq, data FROM changes;
DROP TABLE changes;
ALTER TABLE changes_v2 RENAME TO changes;
DELETE FROM sqlite_sequence WHERE name = 'changes';
INSERT INTO sqlite_sequence (name, seq) SELECT 'changes', seq FROM changes_high_water;
DROP TABLE changes_high_water;
-- What an erasure must empty (see 0005).
CREATE INDEX changes_with_data ON changes (session_id) WHERE data IS NOT NULL;
