//! The embedded store: SQLite in WAL mode.
//!
//! All writes go through one writer thread that owns the only writing connection. It takes every
//! command waiting in its queue, runs them in one transaction (each inside its own savepoint, so
//! one failing command does not undo the others), commits once, and only then answers the callers:
//! group commit. One writer also means every read-check-write of a command is serialized by the
//! store itself. Reads run on a small pool of read-only connections that see WAL snapshots.

mod migrations;
mod rows;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use super::{
    Appended, CreateOutcome, EndOutcome, EventPage, EventRange, EventRepository, Order, RepoError,
    Repositories, SessionRepository, seq_bounds,
};
use crate::domain::{
    Event, EventId, NewEvent, NewSession, Session, SessionId, TerminalStatus, Timestamp,
};
use writer::Command;

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
}

/// The embedded backend. Cheap to clone; the writer thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    writer: mpsc::Sender<Command>,
    readers: Arc<ReadPool>,
}

/// What opening the store did, for the startup log.
pub struct Opened {
    pub store: SqliteStore,
    pub applied_migrations: Vec<String>,
    /// Ends once every clone of the store is dropped and the writer has checkpointed and closed.
    pub writer: std::thread::JoinHandle<()>,
}

const QUEUE_DEPTH: usize = 4096;

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
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let writer = writer::spawn(conn, rx).map_err(|e| RepoError::Backend(Box::new(e)))?;
        let readers = Arc::new(ReadPool {
            path: config.path.clone(),
            idle: Mutex::new(Vec::new()),
        });
        Ok(Opened {
            store: SqliteStore {
                writer: tx,
                readers,
            },
            applied_migrations,
            writer,
        })
    }

    pub fn repositories(&self) -> Repositories {
        Repositories {
            sessions: Arc::new(self.clone()),
            events: Arc::new(self.clone()),
        }
    }

    async fn write<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, RepoError>>) -> Command,
    ) -> Result<T, RepoError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(make(reply))
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
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with(f))
            .await
            .map_err(|e| RepoError::Backend(Box::new(e)))?
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
    Ok(())
}

fn unavailable(message: &'static str) -> RepoError {
    RepoError::Unavailable(message.into())
}

pub(crate) fn map_err(err: rusqlite::Error) -> RepoError {
    use rusqlite::ErrorCode::{CannotOpen, DatabaseBusy, DatabaseLocked};
    match err.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked | CannotOpen) => RepoError::Unavailable(Box::new(err)),
        _ => RepoError::Backend(Box::new(err)),
    }
}

/// Read-only connections, opened on demand and kept for reuse.
struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

const MAX_IDLE_READERS: usize = 16;

impl ReadPool {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, RepoError>,
    ) -> Result<T, RepoError> {
        let pooled = self.idle.lock().map(|mut idle| idle.pop()).unwrap_or(None);
        let mut conn = match pooled {
            Some(conn) => conn,
            None => open_reader(&self.path).map_err(map_err)?,
        };
        let result = f(&mut conn);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE_READERS
        {
            idle.push(conn);
        }
        result
    }
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

#[async_trait]
impl SessionRepository for SqliteStore {
    async fn create_or_get(&self, new: NewSession) -> Result<CreateOutcome, RepoError> {
        self.write(|reply| Command::Create(new, reply)).await
    }

    async fn get(&self, id: &SessionId) -> Result<Session, RepoError> {
        let id = id.clone();
        self.read(move |conn| rows::session(conn, &id)?.ok_or(RepoError::NotFound))
            .await
    }

    async fn end(
        &self,
        id: &SessionId,
        status: TerminalStatus,
        ended_at: Timestamp,
    ) -> Result<EndOutcome, RepoError> {
        let id = id.clone();
        self.write(|reply| Command::End(id, status, ended_at, reply))
            .await
    }

    async fn ping(&self) -> Result<(), RepoError> {
        self.read(|conn| {
            conn.query_row("SELECT count(*) FROM schema_migrations", [], |_| Ok(()))
                .map_err(map_err)
        })
        .await?;
        self.write(Command::Ping).await
    }
}

#[async_trait]
impl EventRepository for SqliteStore {
    async fn append(&self, new: NewEvent) -> Result<Appended, RepoError> {
        self.write(|reply| Command::Append(new, reply)).await
    }

    async fn get(&self, session_id: &SessionId, event_id: &EventId) -> Result<Event, RepoError> {
        let (sid, eid) = (session_id.clone(), event_id.clone());
        self.read(move |conn| rows::event_by_id(conn, &sid, &eid)?.ok_or(RepoError::NotFound))
            .await
    }

    async fn page(
        &self,
        session_id: &SessionId,
        range: EventRange,
    ) -> Result<EventPage, RepoError> {
        let id = session_id.clone();
        self.read(move |conn| {
            // One read transaction: the session and its events come from the same snapshot.
            let tx = conn.transaction().map_err(map_err)?;
            let session = rows::session(&tx, &id)?.ok_or(RepoError::NotFound)?;
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
            let mut events = rows::events(
                &tx,
                sql,
                &id,
                bounds.low_excl,
                bounds.high_incl,
                u64::from(range.limit) + 1,
            )?;
            let has_more = events.len() > range.limit as usize;
            events.truncate(range.limit as usize);
            Ok(EventPage {
                session,
                events,
                has_more,
            })
        })
        .await
    }
}
