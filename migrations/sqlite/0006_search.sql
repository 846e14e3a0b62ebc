-- Transcript search (GET /search). Every searchable event (the `text` of a user_speech or
-- bot_speech payload) gets a row here, written in the transaction that stores it and removed in
-- the one that removes it. `id` is the full-text index's rowid: it grows with every event
-- indexed, so descending ids are the newest first.
CREATE TABLE search_rows (
    id         INTEGER PRIMARY KEY,
    session_id TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    type       TEXT    NOT NULL CHECK (type IN ('user_speech', 'bot_speech'))
);
-- Erasure removes a session's rows by seq range.
CREATE INDEX search_rows_by_event ON search_rows (session_id, seq);
-- The index of the terms themselves. The service writes each text as its folded terms
-- separated by spaces (domain::search::index_line), so the `ascii` tokenizer gives back exactly
-- those terms. Contentless: only the index is kept (the text is in `events`); rows can still
-- be deleted (contentless_delete).
CREATE VIRTUAL TABLE search_text USING fts5 (
    terms,
    content = '',
    contentless_delete = 1,
    tokenize = 'ascii'
);
