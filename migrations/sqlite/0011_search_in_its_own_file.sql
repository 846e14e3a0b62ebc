-- The transcript search index moves to a database file of its own beside this one
-- (`<database>.search`, src/repo/sqlite/index/mod.rs), written by a thread of its own: indexed
-- here, its passes were work on the one writer between group commits, and cost single-event
-- ingest 8-17% of its rate. The new file is built from the change log and, for events whose
-- changes were trimmed, by its backfill; what was indexed here is dropped.
DROP TABLE search_text;
DROP TABLE search_progress;
DROP TABLE search_rows;
