-- Call lifecycle: end reasons, timers and their deadline, tombstones of erased sessions.
-- SQLite cannot change a CHECK in place, so the sessions table is rebuilt (once, at upgrade).
CREATE TABLE sessions_v2 (
    session_id   TEXT    NOT NULL PRIMARY KEY,
    -- 'deleted': a tombstone; only session_id and deleted_at are kept.
    status       TEXT    NOT NULL
                 CHECK (status IN ('initiated', 'active', 'completed', 'failed', 'deleted')),
    language     TEXT    NOT NULL,
    metadata     TEXT    NOT NULL,            -- a JSON object
    started_at   INTEGER NOT NULL,
    ended_at     INTEGER,
    event_count  INTEGER NOT NULL DEFAULT 0 CHECK (event_count >= 0),
    ended_reason TEXT,
    last_event_at INTEGER,                    -- server time the last event was accepted
    -- NULL for sessions from before timers: the service gives them its defaults at startup.
    inactivity_timeout_seconds INTEGER,
    max_duration_seconds       INTEGER,
    timers_since INTEGER,                     -- where the timers count from
    expires_at   INTEGER,                     -- the deadline of an open session, if any
    deleted_at   INTEGER
) WITHOUT ROWID;

-- lastEventAt was not recorded before: the last event's timestamp is the closest there is.
INSERT INTO sessions_v2 (session_id, status, language, metadata, started_at, ended_at,
                         event_count, last_event_at)
SELECT s.session_id, s.status, s.language, s.metadata, s.started_at, s.ended_at, s.event_count,
       (SELECT e.timestamp FROM events e WHERE e.session_id = s.session_id AND e.seq = s.event_count)
FROM sessions s;

DROP TABLE sessions;
ALTER TABLE sessions_v2 RENAME TO sessions;

-- Listing, newest or oldest first: one keyset range per status (all four when not filtered), so
-- tombstones are never scanned and each range is read in index order, with no sort.
CREATE INDEX sessions_by_status_start ON sessions (status, started_at, session_id);
-- The sweeper: open sessions by deadline.
CREATE INDEX sessions_by_deadline ON sessions (expires_at) WHERE expires_at IS NOT NULL;
-- Retention: ended sessions by end time.
CREATE INDEX sessions_by_end ON sessions (ended_at) WHERE status IN ('completed', 'failed');
-- Erasure: tombstones by deletion time (their events are purged, then they expire).
CREATE INDEX sessions_tombstones ON sessions (deleted_at) WHERE status = 'deleted';
-- Tombstones whose events are still being removed (their event_count counts what is left).
CREATE INDEX sessions_purge_pending ON sessions (session_id)
    WHERE status = 'deleted' AND event_count > 0;
-- Sessions from before timers, until the service adopts them at startup (then it is empty).
-- (Tombstones also have no timers; they are left out.)
CREATE INDEX sessions_legacy_timers ON sessions (session_id)
    WHERE inactivity_timeout_seconds IS NULL AND status <> 'deleted';
