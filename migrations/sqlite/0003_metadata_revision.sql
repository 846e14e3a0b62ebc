-- Metadata updates (PATCH): how many times a session's metadata changed after its create. With
-- event_count and status it makes the session's ETag.
ALTER TABLE sessions ADD COLUMN metadata_revision INTEGER NOT NULL DEFAULT 0
    CHECK (metadata_revision >= 0);
