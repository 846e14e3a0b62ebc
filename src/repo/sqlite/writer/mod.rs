//! The single writer thread and its group commit.
//!
//! Every write is a [`Command`]: a piece of work to run inside the writer's transaction and the
//! caller to answer once the transaction is over. The writer takes every command waiting in its
//! queue, runs them in one transaction, commits once, and only then answers: with what each
//! command produced if the COMMIT succeeded, with the COMMIT's error if it did not.

mod append;
mod changes;
mod lifecycle;
mod open_sessions;
mod stats;
#[cfg(test)]
pub(super) mod tests;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

pub use append::{append, append_batch};
pub use lifecycle::{adopt, create, delete, end, expire, patch_metadata, purge};
use open_sessions::OpenSessions;

use crate::repo::RepoError;

pub type Reply<T> = oneshot::Sender<Result<T, RepoError>>;

/// What a command may change, and so what the session cache keeps while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touches {
    /// Creates a session or appends to one, keeping the cache current itself.
    Appends,
    /// May end, erase or otherwise change sessions: the cache is emptied before it runs.
    Sessions,
    /// Writes neither sessions nor events, so adds nothing to the change log (its trim, webhook
    /// state).
    Neither,
}

/// Work for the writer, and whom to answer.
pub struct Command(Box<dyn Job>);

impl Command {
    /// `work` runs inside the writer's transaction, perhaps twice (see [`commit_batch`]); its
    /// result is sent to `reply` only once the transaction committed.
    pub fn new<T, F>(touches: Touches, work: F, reply: Reply<T>) -> Self
    where
        T: Send + 'static,
        F: FnMut(&mut Db<'_>) -> Result<T, RepoError> + Send + 'static,
    {
        Command(Box::new(Pending {
            touches,
            work,
            result: None,
            reply,
        }))
    }
}

trait Job: Send {
    /// Runs the work in the open transaction; how it failed, if it did (its writes must then be
    /// undone).
    fn run(&mut self, db: &mut Db<'_>) -> Result<(), CommitFailed>;
    /// Answers the caller once the transaction is over.
    fn answer(self: Box<Self>, commit: &Result<(), CommitFailed>);
    fn touches(&self) -> Touches;
}

struct Pending<T, F> {
    touches: Touches,
    work: F,
    result: Option<Result<T, RepoError>>,
    reply: Reply<T>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnMut(&mut Db<'_>) -> Result<T, RepoError> + Send,
{
    fn run(&mut self, db: &mut Db<'_>) -> Result<(), CommitFailed> {
        if self.touches == Touches::Sessions {
            db.open.forget_all();
        }
        let result = (self.work)(db);
        let failed = result.as_ref().err().map(CommitFailed::from_repo);
        self.result = Some(result);
        failed.map_or(Ok(()), Err)
    }

    fn touches(&self) -> Touches {
        self.touches
    }

    fn answer(self: Box<Self>, commit: &Result<(), CommitFailed>) {
        let result = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            (Err(failed), _) => Err(failed.error()),
            (Ok(()), None) => Err(RepoError::Backend("the command did not run".into())),
        };
        // A caller that went away no longer wants its answer; that is not an error here.
        let _ = self.reply.send(result);
    }
}

/// The most commands one transaction takes; more wait for the next commit.
const MAX_BATCH: usize = 512;

/// Starts the writer; it runs until every sender is dropped, then runs `at_close`, checkpoints
/// and closes.
/// `committed` is told after every transaction that may have added to the change log (one with a
/// command that [`Touches`] sessions or appends), which is what the feed's waiting reads wait
/// for. Webhook bookkeeping alone wakes none of them: a webhook attempt logged is one
/// transaction, and each used to send the fan-out waiting for changes to read the feed again.
pub fn spawn(
    conn: Connection,
    rx: mpsc::Receiver<Command>,
    committed: std::sync::Arc<tokio::sync::Notify>,
    at_close: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || {
            run(&conn, rx, &committed);
            at_close();
            // Every sender is gone: fold the WAL back into the database file before closing.
            if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
                tracing::warn!(error = %e, "sqlite checkpoint at close failed");
            }
        })
}

fn run(conn: &Connection, mut rx: mpsc::Receiver<Command>, committed: &tokio::sync::Notify) {
    let mut db = Db::new(conn);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // `blocking_recv` returns None once every sender is gone: the store was dropped.
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        metrics::histogram!("sqlite_write_batch_size").record(batch.len() as f64);
        let changes = batch.iter().any(|cmd| cmd.0.touches() != Touches::Neither);
        commit_batch(&mut db, &mut batch);
        if changes {
            committed.notify_waiters();
        }
    }
}

/// The writer's connection and what it keeps of the sessions it writes.
pub struct Db<'c> {
    pub conn: &'c Connection,
    open: OpenSessions,
    /// Fails the next COMMITs, the way SQLite fails them (see `tests`).
    #[cfg(test)]
    faults: tests::Faults,
}

impl<'c> Db<'c> {
    pub(super) fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            open: OpenSessions::default(),
            #[cfg(test)]
            faults: tests::Faults::default(),
        }
    }

    /// Runs a statement from the connection's cache (parsed once, not once per use).
    fn exec(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.raw_execute().map(|_| ())
    }

    /// Starts a transaction, forgetting what another connection may have changed.
    fn begin(&mut self) -> rusqlite::Result<()> {
        self.exec("BEGIN IMMEDIATE")?;
        let version: i64 = self
            .conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        self.open.begin(version);
        Ok(())
    }

    fn commit(&mut self) -> rusqlite::Result<()> {
        #[cfg(test)]
        self.faults.at_commit(self.conn)?;
        self.exec("COMMIT")?;
        self.open.committed();
        Ok(())
    }

    /// Rolls the transaction back, if SQLite has not already, and with it what was kept of it.
    fn rollback(&mut self) -> rusqlite::Result<()> {
        self.open.rolled_back();
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.exec("ROLLBACK")
    }

    /// Runs `cmd` inside its own savepoint: if it fails, only its own writes are undone. If SQLite
    /// rolled the whole transaction back on that failure (it may, on `SQLITE_FULL` or an I/O
    /// error), the transaction fails with the command's error. An error managing the savepoint
    /// itself fails the whole transaction, since what it then holds is unknown.
    fn in_savepoint(&mut self, cmd: &mut Command) -> Result<(), CommitFailed> {
        self.exec("SAVEPOINT cmd")?;
        if let Err(failed) = cmd.0.run(self) {
            self.open.rolled_back();
            if self.conn.is_autocommit() {
                return Err(failed);
            }
            self.exec("ROLLBACK TO cmd")?;
        }
        Ok(self.exec("RELEASE cmd")?)
    }
}

/// Why a transaction failed, kept so every caller in it gets the same classified error: a full
/// disk at COMMIT is `storage_full` (503), not an internal error.
struct CommitFailed {
    message: String,
    code: Option<rusqlite::ErrorCode>,
}

impl CommitFailed {
    fn error(&self) -> RepoError {
        super::classify(self.code, self.message.clone().into())
    }

    /// A command's error, kept as the transaction's should SQLite have ended the transaction.
    fn from_repo(error: &RepoError) -> Self {
        use rusqlite::ErrorCode::{DiskFull, SystemIoFailure};
        let code = match error {
            e if e.is_full() => Some(DiskFull),
            RepoError::Unavailable(_) => Some(SystemIoFailure),
            _ => None,
        };
        let message = std::iter::successors(Some(error as &dyn std::error::Error), |e| e.source())
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": ");
        CommitFailed { message, code }
    }
}

impl From<rusqlite::Error> for CommitFailed {
    fn from(e: rusqlite::Error) -> Self {
        CommitFailed {
            code: e.sqlite_error_code(),
            message: e.to_string(),
        }
    }
}

/// Runs the commands in one transaction and answers them. First every command runs as is, with
/// no savepoint (they cost a statement each and a copy of every page a command changes). Only if
/// one fails is the transaction rolled back and every command run again in its own savepoint, so
/// that the failed one's writes are undone and the others still commit.
fn commit_batch(db: &mut Db, batch: &mut Vec<Command>) {
    let mut transaction = || -> Result<(), CommitFailed> {
        db.begin()?;
        if !batch.iter_mut().all(|cmd| cmd.0.run(db).is_ok()) {
            db.rollback()?;
            db.begin()?;
            for cmd in batch.iter_mut() {
                db.in_savepoint(cmd)?;
            }
        }
        Ok(db.commit()?)
    };
    let commit = transaction();
    if let Err(failed) = &commit {
        tracing::error!(error = %failed.message, "sqlite commit failed; answering the batch with errors");
        // Nothing of this batch may stay: the next one must begin from a clean state.
        if let Err(e) = db.rollback() {
            tracing::error!(error = %e, "sqlite rollback after a failed batch failed");
        }
    }
    for cmd in batch.drain(..) {
        cmd.0.answer(&commit);
    }
}
