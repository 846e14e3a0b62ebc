-- Transcript search is indexed after the write instead of in it. FTS5 writes a segment of its
-- index per transaction: one per appended event cost ingest a fifth of its throughput, one per
-- few hundred events costs little. An index pass (src/repo/sqlite/writer/search.rs) runs on the
-- writer, in its own command: it reads the change log past `search_progress.pos`, indexes the
-- events those changes stored, and moves `pos` on, all in one transaction, so a failed COMMIT
-- leaves nothing half done. A search first brings the index up to every commit before it.
--
-- From here on a search row's id is the position of the change that stored its event (rows are
-- unique per event, so a pass run twice indexes nothing twice). Events stored before migration
-- 0006 have no row: a backfill indexes them, down the primary key, with negative ids (after
-- every other row in newest order), a chunk at a time once a pass has caught up with the log.
DROP INDEX search_rows_by_event;
CREATE UNIQUE INDEX search_rows_by_event ON search_rows (session_id, seq);

CREATE TABLE search_progress (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    -- Every change up to this position is indexed.
    pos              INTEGER NOT NULL,
    -- The backfill's place: events before (session_id, seq) are still to be looked at (it walks
    -- down from the last event; NULL: not started).
    backfill_session TEXT,
    backfill_seq     INTEGER NOT NULL,
    backfill_done    INTEGER NOT NULL CHECK (backfill_done IN (0, 1))
);
-- Every change written so far was indexed in its own transaction (migration 0006).
INSERT INTO search_progress (id, pos, backfill_session, backfill_seq, backfill_done)
VALUES (1, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0), NULL, 0,
        NOT EXISTS (SELECT 1 FROM events));
