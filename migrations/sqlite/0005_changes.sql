-- The change feed (GET /changes): one row per change, written in the transaction of the write it
-- records. One writer at a time holds the database's write lock, so positions (pos) are handed out
-- in commit order, and AUTOINCREMENT never hands one out twice, also after rows are trimmed.
-- An event.appended row points at its event (seq); the session's changes keep the session as it
-- was then (data, JSON), emptied when the session is erased. Rows older than
-- CHANGES_RETENTION_SECONDS are trimmed from the oldest.
CREATE TABLE changes (
    pos        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('session.created', 'event.appended',
                   'session.updated', 'session.ended', 'session.deleted')),
    session_id TEXT    NOT NULL,
    seq        INTEGER,
    data       TEXT
);
-- What an erasure must empty: only the rows that hold a session's data (a few per session; the
-- event rows, one per event, stay out of this index).
CREATE INDEX changes_with_data ON changes (session_id) WHERE data IS NOT NULL;
