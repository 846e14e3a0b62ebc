//! The transcript search index, in a database file of its own beside the store's
//! (`<store>.search`), written by a thread of its own: the indexer.
//!
//! Indexed on the writer, the passes cost single-event ingest 8–17% of its rate and doubled its
//! p99 (BENCHMARKS.md, "Transcript search"): the writer is the one serial stage, and every pass was
//! writer work between group commits. In a file of its own, the index has its own write lock and
//! its own WAL, so a pass runs beside the writer instead of between its commits.
//!
//! - The indexer's connection opens the index file and attaches the store (`store`), which it only
//!   reads: a pass reads the change log and the events in one snapshot of the store and writes the
//!   index rows and its position in one transaction of the index file (`pass.rs`).
//! - Reader connections attach the index file (`search`), so a search joins its hits to the
//!   store's sessions and events in one statement.
//! - The index is derived data: its file syncs as `synchronous=NORMAL` (a power loss may undo the
//!   last passes, and their position with them, so they run again). A missing or deleted index
//!   file is rebuilt: from the retained change log, then by the backfill of older events.
//! - Erasure reaches the index through the log: a pass that meets a `session.deleted` change
//!   removes that session's rows before it goes on (a search never shows them meanwhile: it joins
//!   the store's sessions and events, which the erasure changed first).

mod pass;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use rusqlite::Connection;
use tokio::sync::oneshot;

pub use pass::Progress;

use super::closing::StillOpen;
use super::map_err;
use crate::repo::RepoError;

/// The index file's schema (created when missing; the file carries no older version).
const SCHEMA: &str = "
-- One row per indexed event. `id` is the full-text index's rowid: the position of the change that
-- stored the event (negative for backfilled events), so descending ids are the newest first.
CREATE TABLE IF NOT EXISTS search_rows (
    id         INTEGER PRIMARY KEY,
    session_id TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    type       TEXT    NOT NULL CHECK (type IN ('user_speech', 'bot_speech'))
);
-- An event is indexed once; erasure removes a session's rows.
CREATE UNIQUE INDEX IF NOT EXISTS search_rows_by_event ON search_rows (session_id, seq);
-- The folded terms of each text separated by spaces (domain::search::index_line), so the `ascii`
-- tokenizer gives back exactly those terms. Contentless: the text is in the store's events.
CREATE VIRTUAL TABLE IF NOT EXISTS search_text USING fts5 (
    terms,
    content = '',
    contentless_delete = 1,
    tokenize = 'ascii'
);
CREATE TABLE IF NOT EXISTS search_progress (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    -- Every change of the store's log up to this position is indexed.
    pos              INTEGER NOT NULL,
    -- The backfill's place: events before (session_id, seq) are still to be looked at (it walks
    -- down from the last event; NULL: not started).
    backfill_session TEXT,
    backfill_seq     INTEGER NOT NULL,
    backfill_done    INTEGER NOT NULL CHECK (backfill_done IN (0, 1))
);
INSERT INTO search_progress (id, pos, backfill_session, backfill_seq, backfill_done)
SELECT 1, 0, NULL, 0, 0 WHERE NOT EXISTS (SELECT 1 FROM search_progress);
";

/// The index file of the store at `store`.
pub fn path_of(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".search");
    PathBuf::from(name)
}

/// Opens (creating when missing) the index file of the store at `store` and attaches the store as
/// `store`, for the indexer.
pub fn open(store: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path_of(store))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(SCHEMA)?;
    conn.execute("ATTACH DATABASE ?1 AS store", [store.to_string_lossy()])?;
    Ok(conn)
}

/// Opens the index file of the store at `store` and closes it again, once nothing else has it
/// open: the last connection to close folds the WAL back and removes the `-wal` and `-shm` files,
/// which the readers' connections (read-only) cannot do and the indexer's may not be last to.
pub fn tidy(store: &Path) {
    let closed = Connection::open(path_of(store))
        .and_then(|conn| conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)"));
    if let Err(e) = closed {
        tracing::warn!(error = %e, "the search index's checkpoint at close failed");
    }
}

/// Attaches the index file of the store at `store` to a reader's connection, as `search`.
pub fn attach(conn: &Connection, store: &Path) -> rusqlite::Result<()> {
    conn.execute(
        "ATTACH DATABASE ?1 AS search",
        [path_of(store).to_string_lossy()],
    )
    .map(|_| ())
}

struct Request {
    backfill: bool,
    reply: oneshot::Sender<Result<Progress, RepoError>>,
}

/// The indexer thread's handle. Cheap to clone; the thread stops once every clone is dropped.
#[derive(Clone)]
pub struct Indexer {
    requests: std::sync::mpsc::Sender<Request>,
    /// The index's position: the file's when the indexer started, then as this process's last
    /// pass committed it. Never ahead of the file's: the log's trim keeps every change after it.
    /// (Starting from 0 instead, a restarted instance kept every change past its retention until
    /// a write made the index pass again.)
    indexed: Arc<AtomicI64>,
}

impl Indexer {
    /// Starts the indexer on `conn` (from [`open`]); it holds `open` until `conn` is closed.
    pub fn spawn(conn: Connection, open: StillOpen) -> std::io::Result<Indexer> {
        let (requests, rx) = std::sync::mpsc::channel::<Request>();
        let indexed = Arc::new(AtomicI64::new(pass::position(&conn).unwrap_or(0)));
        let seen = indexed.clone();
        std::thread::Builder::new()
            .name("sqlite-indexer".into())
            .spawn(move || {
                // `recv` fails once every sender is gone: the store was dropped.
                while let Ok(request) = rx.recv() {
                    let result = pass::pass(&conn, request.backfill);
                    if let Ok(progress) = &result {
                        seen.fetch_max(progress.pos, Ordering::Relaxed);
                    }
                    let _ = request.reply.send(result);
                }
                drop(conn);
                drop(open);
            })?;
        Ok(Indexer { requests, indexed })
    }

    /// Runs one index pass (see [`pass::pass`]).
    pub async fn pass(&self, backfill: bool) -> Result<Progress, RepoError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request { backfill, reply })
            .map_err(|_| RepoError::Unavailable("the search indexer has stopped".into()))?;
        answer
            .await
            .map_err(|_| RepoError::Backend("the index pass ended without an answer".into()))?
    }

    /// Every change up to this position is indexed (as far as this process knows).
    pub fn indexed(&self) -> i64 {
        self.indexed.load(Ordering::Relaxed)
    }
}

/// Ends a failed transaction so the connection is ready for the next one.
fn roll_back(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

/// Runs `work` in one transaction of the index file, committed by `commit` (a test's may fail).
/// The transaction starts with a write to the index file, so it waits for another process's
/// indexer instead of failing on a snapshot that went stale; the store is only read, so its
/// writer is never held up.
fn in_transaction<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, RepoError>,
    commit: impl FnOnce(&Connection) -> rusqlite::Result<()>,
) -> Result<T, RepoError> {
    let run = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut stmt| stmt.raw_execute())
            .map(|_| ())
            .map_err(map_err)
    };
    run("BEGIN")?;
    let result = run("UPDATE main.search_progress SET id = id")
        .and_then(|()| work(conn))
        .and_then(|value| commit(conn).map_err(map_err).map(|()| value));
    if result.is_err() {
        roll_back(conn);
    }
    result
}
