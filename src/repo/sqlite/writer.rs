//! The single writer thread and its group commit.

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::{map_err, rows};
use crate::domain::{
    Event, NewEvent, NewSession, Session, SessionId, Status, TerminalStatus, Timestamp,
};
use crate::repo::{Appended, CreateOutcome, EndOutcome, RepoError};

type Reply<T> = oneshot::Sender<Result<T, RepoError>>;

pub enum Command {
    /// The session and its metadata as JSON text, serialized by the caller (off the writer).
    Create(NewSession, String, Reply<CreateOutcome>),
    /// The event and its payload as JSON text, serialized by the caller (off the writer).
    Append(NewEvent, String, Reply<Appended>),
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

/// Runs a statement from the connection's cache: BEGIN, COMMIT and savepoints are parsed once,
/// not once per batch or command.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.raw_execute().map(|_| ())
}

fn commit_batch(conn: &mut Connection, batch: &mut Vec<Command>) {
    let mut answers = Vec::with_capacity(batch.len());
    let commit = (|| {
        exec(conn, "BEGIN IMMEDIATE")?;
        for cmd in batch.drain(..) {
            answers.push(apply(conn, cmd)?);
        }
        exec(conn, "COMMIT")
    })()
    .map_err(|e| e.to_string());
    if let Err(e) = &commit {
        tracing::error!(error = %e, "sqlite commit failed; answering the batch with errors");
        if !conn.is_autocommit() {
            // Nothing of this batch may stay: the next batch must begin from a clean state.
            if let Err(e) = exec(conn, "ROLLBACK") {
                tracing::error!(error = %e, "sqlite rollback after a failed batch failed");
            }
        }
    }
    for cmd in batch.drain(..) {
        // Only reached if the transaction failed before these commands were applied.
        answers.push(apply_failed(cmd));
    }
    for answer in answers {
        answer.send(&commit);
    }
}

fn apply_failed(cmd: Command) -> Answer {
    fn failed<T>() -> Result<T, RepoError> {
        Err(RepoError::Backend("the write transaction failed".into()))
    }
    match cmd {
        Command::Create(_, _, reply) => Answer::Create(reply, failed()),
        Command::Append(_, _, reply) => Answer::Append(reply, failed()),
        Command::End(_, _, _, reply) => Answer::End(reply, failed()),
        Command::Ping(reply) => Answer::Ping(reply),
    }
}

/// Runs one command inside its own savepoint: if it fails, only its own writes are undone. An
/// error managing the savepoint itself (the outer `Err`) fails the whole batch, since what the
/// transaction then holds is unknown.
fn apply(conn: &Connection, cmd: Command) -> rusqlite::Result<Answer> {
    fn in_savepoint<T>(
        conn: &Connection,
        f: impl FnOnce(&Connection) -> Result<T, RepoError>,
    ) -> rusqlite::Result<Result<T, RepoError>> {
        exec(conn, "SAVEPOINT cmd")?;
        let result = f(conn);
        if result.is_err() {
            exec(conn, "ROLLBACK TO cmd")?;
        }
        exec(conn, "RELEASE cmd")?;
        Ok(result)
    }
    Ok(match cmd {
        Command::Create(new, metadata, reply) => {
            Answer::Create(reply, in_savepoint(conn, |c| create(c, new, metadata))?)
        }
        Command::Append(new, payload, reply) => {
            Answer::Append(reply, in_savepoint(conn, |c| append(c, new, payload))?)
        }
        Command::End(id, status, at, reply) => {
            Answer::End(reply, in_savepoint(conn, |c| end(c, &id, status, at))?)
        }
        Command::Ping(reply) => Answer::Ping(reply),
    })
}

fn create(
    conn: &Connection,
    new: NewSession,
    metadata: String,
) -> Result<CreateOutcome, RepoError> {
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
                metadata,
                new.started_at.millis(),
            ])
        })
        .map_err(map_err)?;
    if inserted == 1 {
        // What was just stored, without reading it back.
        let session = Session {
            session_id: new.session_id,
            status: Status::Initiated,
            language: new.language,
            metadata: new.metadata,
            started_at: new.started_at,
            ended_at: None,
            event_count: 0,
        };
        return Ok(CreateOutcome {
            session,
            created: true,
        });
    }
    let session = rows::session(conn, &new.session_id)?
        .ok_or_else(|| RepoError::Backend("session vanished after a conflicting insert".into()))?;
    Ok(CreateOutcome {
        session,
        created: false,
    })
}

/// Inserts first and looks the event up only when its id was already stored, so a new event
/// (the usual case) costs no lookup. `seq = event_count + 1` is used only by an insert that
/// happened; the unique `(session_id, event_id)` index decides a duplicate, and the primary key
/// `(session_id, seq)` stays the backstop against a reused seq.
fn append(conn: &Connection, new: NewEvent, payload: String) -> Result<Appended, RepoError> {
    let (status, count): (String, i64) = conn
        .prepare_cached("SELECT status, event_count FROM sessions WHERE session_id = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([new.session_id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(map_err)?
        .ok_or(RepoError::NotFound)?;
    let status: Status = status
        .parse()
        .map_err(|_| RepoError::Backend("stored status does not parse".into()))?;
    if status.is_terminal() {
        // An event stored before the session ended is still answered as stored.
        return Ok(
            match rows::event_by_id(conn, &new.session_id, &new.event_id)? {
                Some(existing) => Appended::Existing(existing),
                None => Appended::SessionEnded(status),
            },
        );
    }
    let seq = count + 1;
    let timestamp = new.timestamp();
    let inserted = conn
        .prepare_cached(
            "INSERT INTO events (session_id, seq, event_id, type, payload, timestamp)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (session_id, event_id) DO NOTHING",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                new.session_id.as_str(),
                seq,
                new.event_id.as_str(),
                new.event_type.as_str(),
                payload,
                timestamp.millis(),
            ])
        })
        .map_err(map_err)?;
    if inserted == 0 {
        let existing =
            rows::event_by_id(conn, &new.session_id, &new.event_id)?.ok_or_else(|| {
                RepoError::Backend("event vanished after a conflicting insert".into())
            })?;
        return Ok(Appended::Existing(existing));
    }
    // Only the first event changes the status. Leaving `status` alone otherwise also skips its
    // CHECK (an IN list, which SQLite evaluates by building a temporary table on every update).
    let update = if status == Status::Initiated {
        "UPDATE sessions SET event_count = ?2, status = 'active' WHERE session_id = ?1"
    } else {
        "UPDATE sessions SET event_count = ?2 WHERE session_id = ?1"
    };
    conn.prepare_cached(update)
        .and_then(|mut stmt| stmt.execute(params![new.session_id.as_str(), seq]))
        .map_err(map_err)?;
    Ok(Appended::New(Event {
        session_id: new.session_id,
        event_id: new.event_id,
        seq: seq as u64,
        event_type: new.event_type,
        payload: new.payload,
        timestamp,
    }))
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
