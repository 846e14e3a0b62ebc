//! The embedded store: SQLite in WAL mode.
//!
//! All writes go through one writer thread that owns the only writing connection. It takes every
//! command waiting in its queue, runs them in one transaction (again with a savepoint per
//! command if one of them fails, so a failing command does not undo the others), commits once,
//! and only then answers the callers: group commit. One writer also means every
//! read-check-write of a command is serialized by the store itself. Reads run on a small pool of
//! read-only connections that see WAL snapshots.

mod checkpointer;
mod closing;
mod feed;
mod index;
mod migrations;
mod readers;
mod rows;
mod search;
mod sessions;
mod snapshot;
mod stats;
mod webhooks;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::{
    Appended, BatchAppended, EventPage, EventRange, EventRepository, RepoError, Repositories,
    seq_bounds,
};
use crate::domain::{Event, EventId, NewEvent, NewEvents, Order, SessionId};
use writer::{Command, Db, Touches};

/// How hard SQLite syncs a commit to disk. Both survive `kill -9` of the process once a write was
/// acknowledged; they differ on power loss or an OS crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// fsync the WAL on every commit: acknowledged writes survive power loss too.
    Full,
    /// fsync only at checkpoints: a power loss can lose the last commits before a checkpoint.
    Normal,
}

#[derive(Debug, Clone)]
pub struct SqliteConfig {
    pub path: PathBuf,
    pub synchronous: Synchronous,
    /// Reader threads, each with its own read-only connection (`SQLITE_READER_THREADS`).
    pub reader_threads: usize,
}

impl SqliteConfig {
    /// The store at `path`, syncing as `synchronous`, with [`default_reader_threads`] readers.
    pub fn new(path: PathBuf, synchronous: Synchronous) -> Self {
        Self {
            path,
            synchronous,
            reader_threads: default_reader_threads(),
        }
    }
}

/// One reader per core this process may run on (its CPU affinity and cgroup quota, as the
/// standard library reads them), at least two: on one core, two readers served 8% more reads
/// than one (`bench/cores.sh`, BENCHMARKS.md).
pub fn default_reader_threads() -> usize {
    cores().max(2)
}

/// The cores this process may run on (its CPU affinity and cgroup quota).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The embedded backend. Cheap to clone; the writer thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    writer: mpsc::Sender<Command>,
    readers: readers::Readers,
    /// Into how many parts at most a relevance search cuts the index, ranked at once (`search`):
    /// one per reader thread that has a core of its own; fewer when readers are busy.
    search_parts: usize,
    indexer: index::Indexer,
    /// Told after every commit of this process's writer (what waiting feed reads wait for).
    committed: Arc<tokio::sync::Notify>,
    /// The checkpointer stops once every clone of this is dropped.
    _checkpointer: std::sync::mpsc::Sender<()>,
}

/// What opening the store did, for the startup log.
pub struct Opened {
    pub store: SqliteStore,
    pub applied_migrations: Vec<String>,
    /// Ends once every clone of the store is dropped and the writer has checkpointed and closed.
    pub writer: std::thread::JoinHandle<()>,
}

const QUEUE_DEPTH: usize = 4096;

/// How long the closing writer waits for the readers and the indexer to close (a read under way
/// finishes first).
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// See `configure`.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 10_000;

impl SqliteStore {
    /// Opens (creating the directory and file if missing) and migrates the database, then starts
    /// the writer thread.
    pub fn open(config: &SqliteConfig) -> Result<Opened, RepoError> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| RepoError::Unavailable(Box::new(e)))?;
        }
        let mut conn = Connection::open(&config.path).map_err(map_err)?;
        configure(&conn, config.synchronous).map_err(map_err)?;
        let applied_migrations = migrations::migrate(&mut conn).map_err(map_err)?;
        // Every statement the writer runs stays prepared (rusqlite keeps 16 by default).
        conn.set_prepared_statement_cache_capacity(32);
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let committed = Arc::new(tokio::sync::Notify::new());
        // The writer closes last (see `closing`).
        let open = closing::StillOpen::default();
        let others = open.others();
        // The index file exists before a reader attaches it.
        let indexer =
            index::Indexer::spawn(index::open(&config.path).map_err(map_err)?, open.clone())
                .map_err(|e| RepoError::Backend(Box::new(e)))?;
        let readers = readers::Readers::spawn(&config.path, config.reader_threads, &open)
            .map_err(|e| RepoError::Backend(Box::new(e)))?;
        let (checkpointer, stop) = std::sync::mpsc::channel();
        checkpointer::spawn(&config.path, config.synchronous, stop, open.clone())
            .map_err(|e| RepoError::Backend(Box::new(e)))?;
        drop(open);
        let store_path = config.path.clone();
        let at_close = move || {
            if others.wait_closed(CLOSE_WAIT) {
                index::tidy(&store_path);
            } else {
                tracing::warn!(
                    "sqlite readers still open at close; their files are tidied at the next start"
                );
            }
        };
        let writer = writer::spawn(conn, rx, committed.clone(), at_close)
            .map_err(|e| RepoError::Backend(Box::new(e)))?;
        Ok(Opened {
            store: SqliteStore {
                writer: tx,
                readers,
                search_parts: config.reader_threads.min(cores()),
                indexer,
                committed,
                _checkpointer: checkpointer,
            },
            applied_migrations,
            writer,
        })
    }

    pub fn repositories(&self) -> Repositories {
        Repositories {
            sessions: Arc::new(self.clone()),
            events: Arc::new(self.clone()),
            // Another process's writes are found by polling (`service::live`).
            changes: None,
            feed: Arc::new(self.clone()),
            search: Arc::new(self.clone()),
            stats: Arc::new(self.clone()),
            webhooks: Arc::new(self.clone()),
        }
    }

    /// Runs `work` on the writer, in its next transaction (see [`writer::Command::new`]).
    async fn write<T: Send + 'static>(
        &self,
        touches: Touches,
        work: impl FnMut(&mut Db<'_>) -> Result<T, RepoError> + Send + 'static,
    ) -> Result<T, RepoError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Command::new(touches, work, reply))
            .await
            .map_err(|_| unavailable("the writer has stopped"))?;
        answer
            .await
            .map_err(|_| unavailable("the writer stopped before answering"))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, RepoError> + Send + 'static,
    ) -> Result<T, RepoError> {
        self.readers.read(f).await
    }
}

fn configure(conn: &Connection, sync: Synchronous) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let level = match sync {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", level)?;
    // The writer checkpoints (in line, after a commit) once the WAL holds this many pages: about
    // 40 MB at most, instead of SQLite's 4 MB. The checkpointer (`checkpointer.rs`) copies pages
    // every 100 ms beside the writer, so this is the backstop that restarts the WAL, and it finds
    // little left to copy.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    Ok(())
}

/// Runs `f` inside one read transaction, so everything it reads comes from one snapshot. BEGIN
/// and COMMIT are cached statements: `Connection::transaction` would parse them on every read.
fn snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, RepoError>,
) -> Result<T, RepoError> {
    let run = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut stmt| stmt.raw_execute())
            .map_err(map_err)
    };
    run("BEGIN")?;
    let result = f(conn);
    // A read-only transaction has nothing to commit: this only ends the snapshot. Should that
    // fail, roll back, so the connection never keeps an old snapshot open for its next read.
    let ended = run("COMMIT");
    if !conn.is_autocommit() {
        let _ = run("ROLLBACK");
    }
    let value = result?;
    ended?;
    Ok(value)
}

fn unavailable(message: &'static str) -> RepoError {
    RepoError::Unavailable(message.into())
}

/// Busy, locked, unopenable or failing I/O: retry may help (503 `storage_unavailable`); the disk
/// (or `max_page_count`) full: 503 `storage_full`. Nothing acknowledged is affected by either:
/// the failed command's savepoint (or the batch) is rolled back.
pub(crate) fn map_err(err: rusqlite::Error) -> RepoError {
    let code = err.sqlite_error_code();
    classify(code, Box::new(err))
}

/// What an SQLite error code means to a caller: full, unavailable (retry may help) or other.
pub(crate) fn classify(code: Option<rusqlite::ErrorCode>, source: super::BoxError) -> RepoError {
    use rusqlite::ErrorCode::{
        CannotOpen, DatabaseBusy, DatabaseLocked, DiskFull, ReadOnly, SystemIoFailure,
    };
    match code {
        Some(DiskFull) => RepoError::full(source),
        Some(DatabaseBusy | DatabaseLocked | CannotOpen | SystemIoFailure | ReadOnly) => {
            RepoError::Unavailable(source)
        }
        _ => RepoError::Backend(source),
    }
}

#[async_trait]
impl EventRepository for SqliteStore {
    async fn append(&self, new: NewEvent) -> Result<Appended, RepoError> {
        // The JSON text is kept since the request was parsed; were it not, it is made here, off
        // the writer, which then only reads it.
        new.payload.json();
        self.write(Touches::Appends, move |db| writer::append(db, &new))
            .await
    }

    async fn append_batch(&self, batch: NewEvents) -> Result<BatchAppended, RepoError> {
        // As for one event.
        for new in batch.events() {
            new.payload.json();
        }
        self.write(Touches::Appends, move |db| writer::append_batch(db, &batch))
            .await
    }

    async fn get(&self, session_id: &SessionId, event_id: &EventId) -> Result<Event, RepoError> {
        let (sid, eid) = (session_id.clone(), event_id.clone());
        self.read(move |conn| {
            snapshot(conn, |tx| {
                rows::require_session(tx, &sid)?;
                rows::event_by_id(tx, &sid, &eid)?.ok_or(RepoError::NotFound)
            })
        })
        .await
    }

    async fn page(
        &self,
        session_id: &SessionId,
        range: EventRange,
    ) -> Result<EventPage, RepoError> {
        let id = session_id.clone();
        // One read transaction: the session and its events come from the same snapshot.
        self.read(move |conn| snapshot(conn, |tx| page(tx, &id, range)))
            .await
    }
}

fn page(conn: &Connection, id: &SessionId, range: EventRange) -> Result<EventPage, RepoError> {
    let session = rows::session(conn, id)?.ok_or(RepoError::NotFound)?;
    let bounds = seq_bounds(&range, session.event_count);
    let sql = match range.order {
        Order::Asc => {
            "SELECT seq, event_id, type, payload, timestamp FROM events
             WHERE session_id = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq ASC LIMIT ?4"
        }
        Order::Desc => {
            "SELECT seq, event_id, type, payload, timestamp FROM events
             WHERE session_id = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq DESC LIMIT ?4"
        }
    };
    let limit = u64::from(range.limit) + 1;
    let events = rows::events(conn, sql, id, bounds.low_excl, bounds.high_incl, limit)?;
    Ok(EventPage::from_one_more(session, events, range.limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query plans of the lifecycle queries, as `EXPLAIN QUERY PLAN` reports them on a
    /// migrated database: each must search an index, never scan the table.
    #[test]
    fn lifecycle_queries_are_served_by_indexes() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrations::migrate(&mut conn).unwrap();
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect::<Vec<_>>();
            rows.join("; ")
        };
        let list = plan(&format!(
            "SELECT {} FROM sessions INDEXED BY sessions_by_status_start
             WHERE status = 'active' AND started_at >= 0 AND started_at < 9
               AND (started_at, session_id) < (5, 'x')
             ORDER BY started_at DESC, session_id DESC LIMIT 21",
            rows::SESSION_COLUMNS
        ));
        assert!(
            list.contains("SEARCH sessions USING INDEX sessions_by_status_start"),
            "{list}"
        );
        assert!(!list.contains("TEMP B-TREE"), "no sort needed: {list}");
        let expired = plan(&sessions::EXPIRED.replace("?1", "5"));
        assert!(
            expired.starts_with("SEARCH") && expired.contains("INDEX sessions_by_deadline"),
            "{expired}"
        );
        assert!(
            !expired.contains("TEMP B-TREE"),
            "no sort needed: {expired}"
        );
        let ended = plan(
            "SELECT session_id FROM sessions INDEXED BY sessions_by_end
             WHERE status IN ('completed', 'failed') AND ended_at < 5 ORDER BY ended_at LIMIT 100",
        );
        assert!(ended.contains("INDEX sessions_by_end"), "{ended}");
        assert!(!ended.contains("TEMP B-TREE"), "{ended}");
        let pending = plan(
            "SELECT session_id FROM sessions INDEXED BY sessions_purge_pending
             WHERE status = 'deleted' AND event_count > 0 LIMIT 1",
        );
        assert!(pending.contains("sessions_purge_pending"), "{pending}");
        let legacy = plan(
            "SELECT session_id FROM sessions INDEXED BY sessions_legacy_timers
             WHERE inactivity_timeout_seconds IS NULL AND status <> 'deleted'",
        );
        assert!(legacy.contains("sessions_legacy_timers"), "{legacy}");
    }

    /// A real SQLITE_FULL (a database held to a few pages by `max_page_count`) is the store
    /// being full; once the limit is raised the same connection writes again.
    #[test]
    fn sqlite_full_is_storage_full_and_passes_once_space_is_back() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("full.db")).unwrap();
        conn.execute_batch("CREATE TABLE t (v BLOB); PRAGMA max_page_count = 8;")
            .unwrap();
        let blob = vec![7u8; 4096];
        let err = (0..100)
            .find_map(|_| conn.execute("INSERT INTO t VALUES (?1)", [&blob]).err())
            .expect("the database fills up");
        let repo = map_err(err);
        assert!(repo.is_full(), "{repo:?}");
        conn.execute_batch("PRAGMA max_page_count = 100000")
            .unwrap();
        conn.execute("INSERT INTO t VALUES (?1)", [&blob]).unwrap();
    }

    #[test]
    fn io_failures_are_unavailable() {
        let err = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_WRITE),
            None,
        );
        assert!(matches!(map_err(err), RepoError::Unavailable(_)));
    }
}
