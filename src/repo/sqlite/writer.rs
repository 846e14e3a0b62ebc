//! The single writer thread and its group commit.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use super::{map_err, rows};
use crate::domain::{Event, NewEvent, NewSession, SessionId, Status, TerminalStatus, Timestamp};
use crate::repo::{Appended, CreateOutcome, EndOutcome, RepoError};

type Reply<T> = oneshot::Sender<Result<T, RepoError>>;

pub enum Command {
    Create(NewSession, Reply<CreateOutcome>),
    Append(NewEvent, Reply<Appended>),
    End(SessionId, TerminalStatus, Timestamp, Reply<EndOutcome>),
    Ping(Reply<()>),
}

/// The most commands one transaction takes; more wait for the next commit.
const MAX_BATCH: usize = 512;

/// Starts the writer; it runs until every sender is dropped, then checkpoints and closes.
pub fn spawn(
    conn: Connection,
    rx: mpsc::Receiver<Command>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || run(conn, rx))
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Command>) {
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
        commit_batch(&mut conn, &mut batch);
    }
    // Every sender is gone: fold the WAL back into the database file before closing.
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "sqlite checkpoint at close failed");
    }
}

/// An answer computed inside the transaction, sent only after the commit succeeded.
enum Answer {
    Create(Reply<CreateOutcome>, Result<CreateOutcome, RepoError>),
    Append(Reply<Appended>, Result<Appended, RepoError>),
    End(Reply<EndOutcome>, Result<EndOutcome, RepoError>),
    Ping(Reply<()>),
}

impl Answer {
    fn send(self, commit: &Result<(), String>) {
        // A caller that went away no longer wants its answer; that is not an error here.
        fn deliver<T>(reply: Reply<T>, result: Result<T, RepoError>, commit: &Result<(), String>) {
            let result = match commit {
                Ok(()) => result,
                Err(e) => Err(RepoError::Backend(e.clone().into())),
            };
            let _ = reply.send(result);
        }
        match self {
            Answer::Create(reply, r) => deliver(reply, r, commit),
            Answer::Append(reply, r) => deliver(reply, r, commit),
            Answer::End(reply, r) => deliver(reply, r, commit),
            Answer::Ping(reply) => deliver(reply, Ok(()), commit),
        }
    }
}

fn commit_batch(conn: &mut Connection, batch: &mut Vec<Command>) {
    let mut answers = Vec::with_capacity(batch.len());
    let commit = (|| {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| e.to_string())?;
        for cmd in batch.drain(..) {
            answers.push(apply(&tx, cmd));
        }
        tx.commit().map_err(|e| e.to_string())
    })();
    if let Err(e) = &commit {
        tracing::error!(error = %e, "sqlite commit failed; answering the batch with errors");
    }
    for cmd in batch.drain(..) {
        // Only reached if BEGIN failed before the commands were taken.
        answers.push(apply_failed(cmd));
    }
    for answer in answers {
        answer.send(&commit);
    }
}

fn apply_failed(cmd: Command) -> Answer {
    fn failed<T>() -> Result<T, RepoError> {
        Err(RepoError::Backend("transaction could not begin".into()))
    }
    match cmd {
        Command::Create(_, reply) => Answer::Create(reply, failed()),
        Command::Append(_, reply) => Answer::Append(reply, failed()),
        Command::End(_, _, _, reply) => Answer::End(reply, failed()),
        Command::Ping(reply) => Answer::Ping(reply),
    }
}

/// Runs one command inside its own savepoint: if it fails, only its own writes are undone.
fn apply(tx: &rusqlite::Transaction<'_>, cmd: Command) -> Answer {
    fn in_savepoint<T>(
        tx: &rusqlite::Transaction<'_>,
        f: impl FnOnce(&Connection) -> Result<T, RepoError>,
    ) -> Result<T, RepoError> {
        tx.execute_batch("SAVEPOINT cmd").map_err(map_err)?;
        let result = f(tx);
        let end = if result.is_ok() {
            "RELEASE cmd"
        } else {
            "ROLLBACK TO cmd; RELEASE cmd"
        };
        tx.execute_batch(end).map_err(map_err)?;
        result
    }
    match cmd {
        Command::Create(new, reply) => Answer::Create(reply, in_savepoint(tx, |c| create(c, &new))),
        Command::Append(new, reply) => Answer::Append(reply, in_savepoint(tx, |c| append(c, &new))),
        Command::End(id, status, at, reply) => {
            Answer::End(reply, in_savepoint(tx, |c| end(c, &id, status, at)))
        }
        Command::Ping(reply) => Answer::Ping(reply),
    }
}

fn create(conn: &Connection, new: &NewSession) -> Result<CreateOutcome, RepoError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO sessions (session_id, status, language, metadata, started_at, event_count)
             VALUES (?1, 'initiated', ?2, ?3, ?4, 0)
             ON CONFLICT (session_id) DO NOTHING",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                new.session_id.as_str(),
                new.language.as_str(),
                rows::json_text(&new.metadata),
                new.started_at.millis(),
            ])
        })
        .map_err(map_err)?;
    let session = rows::session(conn, &new.session_id)?
        .ok_or_else(|| RepoError::Backend("session vanished after insert".into()))?;
    Ok(CreateOutcome {
        session,
        created: inserted == 1,
    })
}

fn append(conn: &Connection, new: &NewEvent) -> Result<Appended, RepoError> {
    let (status, count): (String, i64) = conn
        .prepare_cached("SELECT status, event_count FROM sessions WHERE session_id = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([new.session_id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(map_err)?
        .ok_or(RepoError::NotFound)?;
    if let Some(existing) = rows::event_by_id(conn, &new.session_id, &new.event_id)? {
        return Ok(Appended::Existing(existing));
    }
    let status: Status = status
        .parse()
        .map_err(|_| RepoError::Backend("stored status does not parse".into()))?;
    if status.is_terminal() {
        return Ok(Appended::SessionEnded(status));
    }
    let seq = count + 1;
    let event = Event {
        session_id: new.session_id.clone(),
        event_id: new.event_id.clone(),
        seq: seq as u64,
        event_type: new.event_type,
        payload: new.payload.clone(),
        timestamp: new.timestamp(),
    };
    conn.prepare_cached(
        "INSERT INTO events (session_id, seq, event_id, type, payload, timestamp)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            event.session_id.as_str(),
            seq,
            event.event_id.as_str(),
            event.event_type.as_str(),
            rows::json_text(&event.payload),
            event.timestamp.millis(),
        ])
    })
    .map_err(map_err)?;
    conn.prepare_cached(
        "UPDATE sessions SET event_count = ?2,
                status = CASE status WHEN 'initiated' THEN 'active' ELSE status END
         WHERE session_id = ?1",
    )
    .and_then(|mut stmt| stmt.execute(params![event.session_id.as_str(), seq]))
    .map_err(map_err)?;
    Ok(Appended::New(event))
}

fn end(
    conn: &Connection,
    id: &SessionId,
    status: TerminalStatus,
    ended_at: Timestamp,
) -> Result<EndOutcome, RepoError> {
    let changed = conn
        .prepare_cached(
            "UPDATE sessions SET status = ?2, ended_at = ?3
         WHERE session_id = ?1 AND status IN ('initiated', 'active')",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                id.as_str(),
                status.status().as_str(),
                ended_at.millis()
            ])
        })
        .map_err(map_err)?;
    let session = rows::session(conn, id)?.ok_or(RepoError::NotFound)?;
    Ok(EndOutcome {
        session,
        ended_now: changed == 1,
    })
}
