//! The single writer thread and its group commit.

use rusqlite::{Connection, OptionalExtension, Statement, params};
use tokio::sync::{mpsc, oneshot};

use super::{map_err, rows};
use crate::domain::{
    EndReason, Event, NewEvent, NewEvents, NewSession, Session, SessionId, Status, Timers,
    Timestamp,
};
use crate::repo::{
    Appended, BatchAppended, BatchItem, CreateOutcome, DeleteOutcome, EndOutcome, EndRequest,
    PurgeOutcome, RepoError,
};

type Reply<T> = oneshot::Sender<Result<T, RepoError>>;

pub enum Command {
    /// The session and its metadata as JSON text, serialized by the caller (off the writer).
    Create(NewSession, String, Reply<CreateOutcome>),
    /// The event, its payload's JSON text made by the caller (off the writer).
    Append(NewEvent, Reply<Appended>),
    /// The batch, its payloads' JSON text made by the caller.
    AppendBatch(NewEvents, Reply<BatchAppended>),
    End(SessionId, EndRequest, Reply<EndOutcome>),
    Expire(SessionId, Timestamp, Reply<EndOutcome>),
    Delete(SessionId, Timestamp, Reply<DeleteOutcome>),
    /// Up to this many events of erased sessions, then tombstones deleted before the instant.
    Purge(u64, Timestamp, Reply<PurgeOutcome>),
    Adopt(Timers, Timestamp, Reply<u64>),
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

fn run(conn: Connection, mut rx: mpsc::Receiver<Command>) {
    let mut db = Db::new(&conn);
    // The store is opened after the metrics recorder is installed, so this handle is live.
    let batch_size = metrics::histogram!("sqlite_write_batch_size");
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
        batch_size.record(batch.len() as f64);
        commit_batch(&mut db, &mut batch);
    }
    drop(db);
    // Every sender is gone: fold the WAL back into the database file before closing.
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "sqlite checkpoint at close failed");
    }
}

/// An answer computed inside the transaction, sent only after the commit succeeded.
enum Answer {
    Create(Reply<CreateOutcome>, Result<CreateOutcome, RepoError>),
    Append(Reply<Appended>, Result<Appended, RepoError>),
    AppendBatch(Reply<BatchAppended>, Result<BatchAppended, RepoError>),
    End(Reply<EndOutcome>, Result<EndOutcome, RepoError>),
    Delete(Reply<DeleteOutcome>, Result<DeleteOutcome, RepoError>),
    Purge(Reply<PurgeOutcome>, Result<PurgeOutcome, RepoError>),
    Adopt(Reply<u64>, Result<u64, RepoError>),
    Ping(Reply<()>),
}

impl Answer {
    fn send(self, commit: &Result<(), CommitFailed>) {
        // A caller that went away no longer wants its answer; that is not an error here.
        fn deliver<T>(
            reply: Reply<T>,
            result: Result<T, RepoError>,
            commit: &Result<(), CommitFailed>,
        ) {
            let result = match commit {
                Ok(()) => result,
                Err(failed) => Err(failed.error()),
            };
            let _ = reply.send(result);
        }
        match self {
            Answer::Create(reply, r) => deliver(reply, r, commit),
            Answer::Append(reply, r) => deliver(reply, r, commit),
            Answer::AppendBatch(reply, r) => deliver(reply, r, commit),
            Answer::End(reply, r) => deliver(reply, r, commit),
            Answer::Delete(reply, r) => deliver(reply, r, commit),
            Answer::Purge(reply, r) => deliver(reply, r, commit),
            Answer::Adopt(reply, r) => deliver(reply, r, commit),
            Answer::Ping(reply) => deliver(reply, Ok(()), commit),
        }
    }
}

/// Runs a statement from the connection's cache: savepoints are parsed once, not once per use.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.raw_execute().map(|_| ())
}

/// The statements that every batch or every append runs, held by the writer.
#[derive(Clone, Copy, PartialEq)]
enum Held {
    Begin,
    Commit,
    Rollback,
    DataVersion,
    OpenState,
    InsertEvent,
    /// The session's counters after an append.
    Counted,
    /// The same, and its stored deadline.
    CountedDeadline,
    /// The same after its first events, which also make it active.
    CountedFirst,
}

impl Held {
    const COUNT: usize = 9;

    fn sql(self) -> &'static str {
        match self {
            Held::Begin => "BEGIN IMMEDIATE",
            Held::Commit => "COMMIT",
            Held::Rollback => "ROLLBACK",
            Held::DataVersion => "PRAGMA data_version",
            Held::OpenState => concat!(
                "SELECT event_count, expires_at, ",
                rows::timing_columns!(),
                " FROM sessions WHERE session_id = ?1"
            ),
            Held::InsertEvent => {
                "INSERT INTO events (session_id, seq, event_id, type, payload, timestamp)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (session_id, event_id) DO NOTHING"
            }
            // Leaving `status` alone (all but the first time) also skips its CHECK, an IN list
            // that SQLite evaluates by building a temporary table on every update; leaving
            // `expires_at` alone (see `stored_deadline`) skips rewriting its index entry.
            Held::Counted => {
                "UPDATE sessions SET event_count = ?2, last_event_at = ?3 WHERE session_id = ?1"
            }
            Held::CountedDeadline => {
                "UPDATE sessions SET event_count = ?2, last_event_at = ?3, expires_at = ?4
                 WHERE session_id = ?1"
            }
            Held::CountedFirst => {
                "UPDATE sessions SET event_count = ?2, last_event_at = ?3, expires_at = ?4,
                     status = 'active' WHERE session_id = ?1"
            }
        }
    }
}

/// The writer's connection, with the [`Held`] statements prepared on first use and kept: one
/// from rusqlite's statement cache costs a hash of its text, a look-up and a re-insertion on
/// every use, about a tenth of the writer's instructions per append (BENCHMARKS.md, "Profile").
/// Everything else uses the cache.
struct Db<'c> {
    conn: &'c Connection,
    held: [Option<Statement<'c>>; Held::COUNT],
    open: OpenSessions,
}

/// What appends need of the sessions being appended to ([`OpenState`]), kept between commands
/// so that an append does not read its session row first. It holds only what this writer
/// committed, or read in a transaction of its own: it is emptied when another connection (another
/// instance on the same file) has committed since (`PRAGMA data_version`, checked at the start of
/// every batch, under the write lock), when a command other than an append or a create ran, and
/// when anything was rolled back. At most [`OpenSessions::MAX`] sessions; past that it starts
/// over.
#[derive(Default)]
struct OpenSessions {
    by_id: std::collections::HashMap<SessionId, OpenState>,
    /// `data_version` when the last batch began.
    version: Option<i64>,
}

impl OpenSessions {
    const MAX: usize = 4096;

    fn keep(&mut self, id: &SessionId, state: OpenState) {
        if self.by_id.len() >= Self::MAX && !self.by_id.contains_key(id) {
            self.by_id.clear();
        }
        self.by_id.insert(id.clone(), state);
    }
}

impl<'c> Db<'c> {
    fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            held: std::array::from_fn(|_| None),
            open: OpenSessions::default(),
        }
    }

    /// Starts a batch's transaction, forgetting what another connection may have changed.
    fn begin(&mut self) -> rusqlite::Result<()> {
        self.exec(Held::Begin)?;
        let version: i64 = self.stmt(Held::DataVersion)?.query_row([], |r| r.get(0))?;
        if self.open.version != Some(version) {
            self.open.by_id.clear();
            self.open.version = Some(version);
        }
        Ok(())
    }

    /// Rolls the transaction back, and with it what was kept of it.
    fn rollback(&mut self) -> rusqlite::Result<()> {
        self.open.by_id.clear();
        self.exec(Held::Rollback)
    }

    fn stmt(&mut self, which: Held) -> rusqlite::Result<&mut Statement<'c>> {
        let slot = &mut self.held[which as usize];
        if slot.is_none() {
            *slot = Some(self.conn.prepare(which.sql())?);
        }
        slot.as_mut().ok_or(rusqlite::Error::InvalidQuery)
    }

    fn exec(&mut self, which: Held) -> rusqlite::Result<()> {
        self.stmt(which)?.raw_execute().map(|_| ())
    }
}

/// Why a batch's transaction failed, kept so every caller in the batch gets the same classified
/// error: a full disk at COMMIT is `storage_full` (503), not an internal error.
struct CommitFailed {
    message: String,
    code: Option<rusqlite::ErrorCode>,
}

impl CommitFailed {
    fn error(&self) -> RepoError {
        super::classify(self.code, self.message.clone().into())
    }
}

/// Runs the batch in one transaction. First every command runs as is, with no savepoint (they
/// cost a statement each and a copy of every page a command changes). Only if one fails is the
/// transaction rolled back and the batch run again with each command in its own savepoint, so
/// that the failed one's writes are undone and the others still commit.
fn commit_batch(db: &mut Db, batch: &mut Vec<Command>) {
    let outcomes = (|| {
        db.begin()?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for cmd in batch.iter() {
            let outcome = execute(db, cmd);
            if outcome.failed() {
                break;
            }
            outcomes.push(outcome);
        }
        if outcomes.len() < batch.len() {
            db.rollback()?;
            db.begin()?;
            outcomes.clear();
            for cmd in batch.iter() {
                outcomes.push(in_savepoint(db, cmd)?);
            }
        }
        db.exec(Held::Commit)?;
        Ok(outcomes)
    })()
    .map_err(|e: rusqlite::Error| CommitFailed {
        code: e.sqlite_error_code(),
        message: e.to_string(),
    });
    let (outcomes, commit) = match outcomes {
        Ok(outcomes) => (outcomes, Ok(())),
        Err(failed) => {
            tracing::error!(error = %failed.message, "sqlite commit failed; answering the batch with errors");
            if !db.conn.is_autocommit() {
                // Nothing of this batch may stay: the next batch must begin from a clean state.
                if let Err(e) = db.rollback() {
                    tracing::error!(error = %e, "sqlite rollback after a failed batch failed");
                }
            }
            (Vec::new(), Err(failed))
        }
    };
    let mut outcomes = outcomes.into_iter();
    for cmd in batch.drain(..) {
        let answer = match outcomes.next() {
            Some(outcome) => outcome.answer(cmd),
            // The transaction failed: every command gets its error (see `Answer::send`).
            None => apply_failed(cmd),
        };
        answer.send(&commit);
    }
}

fn apply_failed(cmd: Command) -> Answer {
    fn failed<T>() -> Result<T, RepoError> {
        Err(RepoError::Backend("the write transaction failed".into()))
    }
    match cmd {
        Command::Create(_, _, reply) => Answer::Create(reply, failed()),
        Command::Append(_, reply) => Answer::Append(reply, failed()),
        Command::AppendBatch(_, reply) => Answer::AppendBatch(reply, failed()),
        Command::End(_, _, reply) | Command::Expire(_, _, reply) => Answer::End(reply, failed()),
        Command::Delete(_, _, reply) => Answer::Delete(reply, failed()),
        Command::Purge(_, _, reply) => Answer::Purge(reply, failed()),
        Command::Adopt(_, _, reply) => Answer::Adopt(reply, failed()),
        Command::Ping(reply) => Answer::Ping(reply),
    }
}

/// What a command did, not yet paired with its reply (the batch may run it twice).
enum Outcome {
    Create(Result<CreateOutcome, RepoError>),
    Append(Result<Appended, RepoError>),
    AppendBatch(Result<BatchAppended, RepoError>),
    End(Result<EndOutcome, RepoError>),
    Delete(Result<DeleteOutcome, RepoError>),
    Purge(Result<PurgeOutcome, RepoError>),
    Adopt(Result<u64, RepoError>),
    Ping,
}

impl Outcome {
    /// Whether the command failed, so what it wrote must be undone.
    fn failed(&self) -> bool {
        match self {
            Outcome::Create(r) => r.is_err(),
            Outcome::Append(r) => r.is_err(),
            Outcome::AppendBatch(r) => r.is_err(),
            Outcome::End(r) => r.is_err(),
            Outcome::Delete(r) => r.is_err(),
            Outcome::Purge(r) => r.is_err(),
            Outcome::Adopt(r) => r.is_err(),
            Outcome::Ping => false,
        }
    }

    /// Pairs the outcome with the reply of `cmd`, the command that produced it.
    fn answer(self, cmd: Command) -> Answer {
        match (self, cmd) {
            (Outcome::Create(r), Command::Create(_, _, reply)) => Answer::Create(reply, r),
            (Outcome::Append(r), Command::Append(_, reply)) => Answer::Append(reply, r),
            (Outcome::AppendBatch(r), Command::AppendBatch(_, reply)) => {
                Answer::AppendBatch(reply, r)
            }
            (Outcome::End(r), Command::End(_, _, reply) | Command::Expire(_, _, reply)) => {
                Answer::End(reply, r)
            }
            (Outcome::Delete(r), Command::Delete(_, _, reply)) => Answer::Delete(reply, r),
            (Outcome::Purge(r), Command::Purge(_, _, reply)) => Answer::Purge(reply, r),
            (Outcome::Adopt(r), Command::Adopt(_, _, reply)) => Answer::Adopt(reply, r),
            (Outcome::Ping, Command::Ping(reply)) => Answer::Ping(reply),
            // Outcomes are made from their own command, in order; this is never reached.
            (_, cmd) => apply_failed(cmd),
        }
    }
}

/// Runs one command in the open transaction.
fn execute(db: &mut Db, cmd: &Command) -> Outcome {
    let conn = db.conn;
    if !matches!(
        cmd,
        Command::Append(..) | Command::AppendBatch(..) | Command::Create(..) | Command::Ping(_)
    ) {
        // It may end, erase or change sessions: what was kept of them is read again.
        db.open.by_id.clear();
    }
    match cmd {
        Command::Create(new, metadata, _) => Outcome::Create(create(conn, new, metadata)),
        Command::Append(new, _) => Outcome::Append(append(db, new)),
        Command::AppendBatch(batch, _) => Outcome::AppendBatch(append_batch(db, batch)),
        Command::End(id, request, _) => Outcome::End(end(conn, id, request)),
        Command::Expire(id, now, _) => Outcome::End(expire(conn, id, *now)),
        Command::Delete(id, at, _) => Outcome::Delete(delete(conn, id, *at)),
        Command::Purge(max_events, cutoff, _) => Outcome::Purge(purge(conn, *max_events, *cutoff)),
        Command::Adopt(defaults, now, _) => Outcome::Adopt(adopt(conn, *defaults, *now)),
        Command::Ping(_) => Outcome::Ping,
    }
}

/// Runs one command inside its own savepoint: if it fails, only its own writes are undone. An
/// error managing the savepoint itself fails the whole batch, since what the transaction then
/// holds is unknown.
fn in_savepoint(db: &mut Db, cmd: &Command) -> rusqlite::Result<Outcome> {
    exec(db.conn, "SAVEPOINT cmd")?;
    let outcome = execute(db, cmd);
    if outcome.failed() {
        db.open.by_id.clear();
        exec(db.conn, "ROLLBACK TO cmd")?;
    }
    exec(db.conn, "RELEASE cmd")?;
    Ok(outcome)
}

fn create(conn: &Connection, new: &NewSession, metadata: &str) -> Result<CreateOutcome, RepoError> {
    let session = new.clone().into_session();
    let inserted = conn
        .prepare_cached(
            "INSERT INTO sessions (session_id, status, language, metadata, started_at, event_count,
                 inactivity_timeout_seconds, max_duration_seconds, timers_since, expires_at)
             VALUES (?1, 'initiated', ?2, ?3, ?4, 0, ?5, ?6, ?4, ?7)
             ON CONFLICT (session_id) DO NOTHING",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                session.session_id.as_str(),
                session.language.as_str(),
                metadata,
                session.started_at.millis(),
                session.timers.inactivity_seconds,
                session.timers.max_duration_seconds,
                session.deadline().map(|d| d.at.millis()),
            ])
        })
        .map_err(map_err)?;
    if inserted == 1 {
        // What was just stored, without reading it back.
        return Ok(CreateOutcome {
            session,
            created: true,
        });
    }
    let session = rows::session(conn, &session.session_id)?
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
fn append(db: &mut Db, new: &NewEvent) -> Result<Appended, RepoError> {
    let conn = db.conn;
    let state = open_state(db, &new.session_id)?;
    let expired = state.deadline().filter(|d| d.at <= new.received_at);
    if state.status().is_terminal() || expired.is_some() {
        // An event stored before the session ended is still answered as stored.
        if let Some(existing) = rows::event_by_id(conn, &new.session_id, &new.event_id)? {
            return Ok(Appended::Existing(existing));
        }
        if expired.is_some() {
            db.open.by_id.remove(&new.session_id);
            return expire(conn, &new.session_id, new.received_at).map(|ended| {
                if ended.ended_now {
                    Appended::Expired(ended.session)
                } else {
                    Appended::SessionEnded(ended.session.status)
                }
            });
        }
        return Ok(Appended::SessionEnded(state.status()));
    }
    let seq = state.event_count + 1;
    let timestamp = new.timestamp();
    if !insert_event(db, new, seq)? {
        let existing =
            rows::event_by_id(conn, &new.session_id, &new.event_id)?.ok_or_else(|| {
                RepoError::Backend("event vanished after a conflicting insert".into())
            })?;
        return Ok(Appended::Existing(existing));
    }
    record_appended(db, &new.session_id, &state, seq, new.received_at)?;
    Ok(Appended::New(Event {
        session_id: new.session_id.clone(),
        event_id: new.event_id.clone(),
        seq: seq as u64,
        event_type: new.event_type,
        payload: new.payload.clone(),
        timestamp,
    }))
}

/// Inserts the event with `seq` unless its `(session_id, event_id)` is stored already; whether it
/// was inserted.
fn insert_event(db: &mut Db, new: &NewEvent, seq: i64) -> Result<bool, RepoError> {
    let inserted = db
        .stmt(Held::InsertEvent)
        .and_then(|stmt| {
            stmt.execute(params![
                new.session_id.as_str(),
                seq,
                new.event_id.as_str(),
                new.event_type.as_str(),
                new.payload.json(),
                new.timestamp().millis(),
            ])
        })
        .map_err(map_err)?;
    Ok(inserted == 1)
}

/// A batch in one savepoint (the caller's): every lookup first, then either every new event is
/// inserted and the session updated once, or nothing is written (a refusal, or an error that
/// rolls the savepoint back). The writer being the only one, nothing changes in between.
fn append_batch(db: &mut Db, batch: &NewEvents) -> Result<BatchAppended, RepoError> {
    let conn = db.conn;
    let id = batch.session_id();
    let state = open_state(db, id)?;
    let mut stored = Vec::with_capacity(batch.events().len());
    for new in batch.events() {
        stored.push(rows::event_by_id(conn, id, &new.event_id)?);
    }
    let conflicts: Vec<usize> = batch
        .events()
        .iter()
        .zip(&stored)
        .enumerate()
        .filter(|(_, (new, stored))| stored.as_ref().is_some_and(|s| !new.matches(s)))
        .map(|(i, _)| i)
        .collect();
    if !conflicts.is_empty() {
        return Ok(BatchAppended::Conflicts(conflicts));
    }
    let new: Vec<usize> = (0..stored.len()).filter(|&i| stored[i].is_none()).collect();
    if new.is_empty() {
        let replays = stored.into_iter().flatten().map(BatchItem::Replay);
        return Ok(BatchAppended::Stored(replays.collect()));
    }
    if state.status().is_terminal() {
        let status = state.status();
        return Ok(BatchAppended::SessionEnded { status, new });
    }
    if state
        .deadline()
        .is_some_and(|d| d.at <= batch.received_at())
    {
        db.open.by_id.remove(id);
        let ended = expire(conn, id, batch.received_at())?;
        return Ok(if ended.ended_now {
            BatchAppended::Expired {
                session: Box::new(ended.session),
                new,
            }
        } else {
            BatchAppended::SessionEnded {
                status: ended.session.status,
                new,
            }
        });
    }
    let mut seq = state.event_count;
    let mut items = Vec::with_capacity(stored.len());
    for (new, stored) in batch.events().iter().zip(stored) {
        if let Some(existing) = stored {
            items.push(BatchItem::Replay(existing));
            continue;
        }
        seq += 1;
        let timestamp = new.timestamp();
        if !insert_event(db, new, seq)? {
            // Every id was looked up in this savepoint, and this writer is the only one.
            return Err(RepoError::Backend(
                "an event id looked up as new was already stored".into(),
            ));
        }
        items.push(BatchItem::New(Event {
            session_id: id.clone(),
            event_id: new.event_id.clone(),
            seq: seq as u64,
            event_type: new.event_type,
            payload: new.payload.clone(),
            timestamp,
        }));
    }
    record_appended(db, id, &state, seq, batch.received_at())?;
    Ok(BatchAppended::Stored(items))
}

/// What an append needs of its session, without reading (and parsing) its metadata.
#[derive(Clone)]
struct OpenState {
    event_count: i64,
    /// The deadline as stored (`expires_at`), in milliseconds.
    stored_deadline: Option<i64>,
    timing: rows::Timing,
}

impl OpenState {
    fn status(&self) -> Status {
        self.timing.status
    }

    fn deadline(&self) -> Option<crate::domain::Deadline> {
        self.timing.deadline()
    }
}

fn open_state(db: &mut Db, id: &SessionId) -> Result<OpenState, RepoError> {
    if let Some(kept) = db.open.by_id.get(id) {
        return Ok(kept.clone());
    }
    let stmt = db.stmt(Held::OpenState).map_err(map_err)?;
    let mut rows = stmt.query([id.as_str()]).map_err(map_err)?;
    let row = rows.next().map_err(map_err)?.ok_or(RepoError::NotFound)?;
    let timing = rows::Timing::from_row(row, 2)?;
    Ok(OpenState {
        event_count: row.get(0).map_err(map_err)?,
        stored_deadline: row.get(1).map_err(map_err)?,
        timing,
    })
}

/// How far the stored deadline (`expires_at`, which the sweeper's index is on) may lag the true
/// one before an append rewrites it: a quarter of the inactivity timeout, at most a minute.
/// The true deadline only moves later as events arrive, so the stored one stays at or before it
/// and the sweeper, which checks the true deadline of what the index finds, misses nothing; it
/// is behind only for a session idle for most of its timeout. Rewriting it on every append
/// cost a fifth of the writer's instructions per event (BENCHMARKS.md, "Profile").
fn deadline_slack_millis(timers: Timers) -> i64 {
    (i64::from(timers.inactivity_seconds) * 250).min(60_000)
}

/// The deadline to store after an append at `received_at`, if it must be rewritten.
fn stored_deadline(state: &OpenState, received_at: Timestamp) -> Option<Option<i64>> {
    let timing = &state.timing;
    let new = crate::domain::deadline(timing.timers, timing.timers_since, Some(received_at))
        .map(|d| d.at.millis());
    let rewrite = match (state.stored_deadline, new) {
        // Earlier (an append received before the last one, committed after it) is rewritten too:
        // the stored deadline must never be later than the true one.
        (Some(stored), Some(new)) => {
            new < stored || new - stored >= deadline_slack_millis(timing.timers)
        }
        (stored, new) => stored != new,
    };
    rewrite.then_some(new)
}

/// The session after events were appended up to `seq` at `received_at`: its counters, its
/// status if these were its first events, and its stored deadline if it lags too far.
fn record_appended(
    db: &mut Db,
    id: &SessionId,
    state: &OpenState,
    seq: i64,
    received_at: Timestamp,
) -> Result<(), RepoError> {
    let deadline = stored_deadline(state, received_at);
    let (update, expires_at) = match (state.status(), deadline) {
        (Status::Initiated, rewrite) => {
            (Held::CountedFirst, rewrite.unwrap_or(state.stored_deadline))
        }
        (_, Some(new)) => (Held::CountedDeadline, new),
        (_, None) => (Held::Counted, None),
    };
    let stmt = db.stmt(update).map_err(map_err)?;
    let at = received_at.millis();
    match update {
        Held::Counted => stmt.execute(params![id.as_str(), seq, at]),
        _ => stmt.execute(params![id.as_str(), seq, at, expires_at]),
    }
    .map_err(map_err)?;
    let mut kept = state.clone();
    kept.event_count = seq;
    kept.timing.status = Status::Active;
    kept.timing.last_event_at = Some(received_at);
    if update != Held::Counted {
        kept.stored_deadline = expires_at;
    }
    db.open.keep(id, kept);
    Ok(())
}

/// Ends an open session: one conditional write, so it happens once.
fn record_end(
    conn: &Connection,
    id: &SessionId,
    status: Status,
    ended_at: Timestamp,
    reason: Option<&EndReason>,
) -> Result<bool, RepoError> {
    let changed = conn
        .prepare_cached(
            "UPDATE sessions SET status = ?2, ended_at = ?3, ended_reason = ?4, expires_at = NULL
             WHERE session_id = ?1 AND status IN ('initiated', 'active')",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                id.as_str(),
                status.as_str(),
                ended_at.millis(),
                reason.map(EndReason::as_str)
            ])
        })
        .map_err(map_err)?;
    Ok(changed == 1)
}

fn end(conn: &Connection, id: &SessionId, request: &EndRequest) -> Result<EndOutcome, RepoError> {
    let mut session = rows::session(conn, id)?.ok_or(RepoError::NotFound)?;
    if session.status.is_terminal() {
        return Ok(EndOutcome {
            session,
            ended_now: false,
        });
    }
    match session.expired_at(request.at) {
        Some(deadline) => session.end_by(deadline),
        None => {
            session.status = request.status.status();
            session.ended_at = Some(request.at);
            session.ended_reason = request.reason.clone();
        }
    }
    let ended_now = store_end(conn, &session)?;
    Ok(EndOutcome { session, ended_now })
}

fn store_end(conn: &Connection, ended: &Session) -> Result<bool, RepoError> {
    let ended_at = ended
        .ended_at
        .ok_or_else(|| RepoError::Backend("an end without ended_at".into()))?;
    record_end(
        conn,
        &ended.session_id,
        ended.status,
        ended_at,
        ended.ended_reason.as_ref(),
    )
}

fn expire(conn: &Connection, id: &SessionId, now: Timestamp) -> Result<EndOutcome, RepoError> {
    let mut session = rows::session(conn, id)?.ok_or(RepoError::NotFound)?;
    let Some(deadline) = session.expired_at(now) else {
        return Ok(EndOutcome {
            session,
            ended_now: false,
        });
    };
    session.end_by(deadline);
    let ended_now = store_end(conn, &session)?;
    Ok(EndOutcome { session, ended_now })
}

/// Events removed together with the tombstone; a longer session's rest goes in [`purge`].
const INLINE_EVENT_DELETES: u64 = 1_000;

fn delete(conn: &Connection, id: &SessionId, at: Timestamp) -> Result<DeleteOutcome, RepoError> {
    let status: String = conn
        .prepare_cached("SELECT status FROM sessions WHERE session_id = ?1")
        .and_then(|mut stmt| stmt.query_row([id.as_str()], |r| r.get(0)).optional())
        .map_err(map_err)?
        .ok_or(RepoError::NotFound)?;
    if status == "deleted" {
        return Ok(DeleteOutcome { deleted_now: false });
    }
    // The tombstone keeps the id and the deletion time; `event_count` becomes the number of
    // events still to remove. Everything else is erased now.
    conn.prepare_cached(
        "UPDATE sessions SET status = 'deleted', language = '', metadata = '{}', started_at = ?2,
             ended_at = NULL, ended_reason = NULL, last_event_at = NULL,
             inactivity_timeout_seconds = NULL, max_duration_seconds = NULL, timers_since = NULL,
             expires_at = NULL, deleted_at = ?2
         WHERE session_id = ?1",
    )
    .and_then(|mut stmt| stmt.execute(params![id.as_str(), at.millis()]))
    .map_err(map_err)?;
    remove_events(conn, id, INLINE_EVENT_DELETES)?;
    Ok(DeleteOutcome { deleted_now: true })
}

/// Removes up to `max` of the erased session's first events and counts down what is left.
fn remove_events(conn: &Connection, id: &SessionId, max: u64) -> Result<u64, RepoError> {
    let removed = conn
        .prepare_cached(
            "DELETE FROM events WHERE session_id = ?1 AND seq IN
                 (SELECT seq FROM events WHERE session_id = ?1 ORDER BY seq LIMIT ?2)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![id.as_str(), i64::try_from(max).unwrap_or(i64::MAX)])
        })
        .map_err(map_err)? as u64;
    let left: i64 = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM events WHERE session_id = ?1)")
        .and_then(|mut stmt| stmt.query_row([id.as_str()], |r| r.get(0)))
        .map_err(map_err)?;
    conn.prepare_cached("UPDATE sessions SET event_count = ?2 WHERE session_id = ?1")
        .and_then(|mut stmt| stmt.execute(params![id.as_str(), left]))
        .map_err(map_err)?;
    Ok(removed)
}

fn purge(conn: &Connection, max_events: u64, cutoff: Timestamp) -> Result<PurgeOutcome, RepoError> {
    let mut outcome = PurgeOutcome::default();
    while outcome.events_removed < max_events {
        let pending: Option<String> = conn
            .prepare_cached(
                "SELECT session_id FROM sessions INDEXED BY sessions_purge_pending
                 WHERE status = 'deleted' AND event_count > 0 LIMIT 1",
            )
            .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)).optional())
            .map_err(map_err)?;
        let Some(id) = pending else { break };
        let id = rows::session_id(id)?;
        outcome.events_removed += remove_events(conn, &id, max_events - outcome.events_removed)?;
    }
    outcome.more = outcome.events_removed >= max_events;
    outcome.tombstones_removed = conn
        .prepare_cached(
            "DELETE FROM sessions WHERE session_id IN
                 (SELECT session_id FROM sessions INDEXED BY sessions_tombstones
                  WHERE status = 'deleted' AND deleted_at < ?1 AND event_count = 0 LIMIT 1000)",
        )
        .and_then(|mut stmt| stmt.execute([cutoff.millis()]))
        .map_err(map_err)? as u64;
    outcome.more |= outcome.tombstones_removed == 1000;
    Ok(outcome)
}

/// Gives sessions from before timers the `defaults`, counted from `now`. Runs at every start;
/// the partial index holds only sessions still without timers, so once they are adopted it
/// costs nothing however many sessions are stored.
fn adopt(conn: &Connection, defaults: Timers, now: Timestamp) -> Result<u64, RepoError> {
    let deadline = crate::domain::deadline(defaults, now, None).map(|d| d.at.millis());
    let changed = conn
        .execute(
            "UPDATE sessions SET inactivity_timeout_seconds = ?1, max_duration_seconds = ?2,
                 timers_since = ?3,
                 expires_at = CASE WHEN status IN ('initiated', 'active') THEN ?4 END
             WHERE session_id IN (SELECT session_id FROM sessions INDEXED BY sessions_legacy_timers
                                  WHERE inactivity_timeout_seconds IS NULL AND status <> 'deleted')",
            params![
                defaults.inactivity_seconds,
                defaults.max_duration_seconds,
                now.millis(),
                deadline
            ],
        )
        .map_err(map_err)?;
    Ok(changed as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventType, JsonObject, Language};

    fn id(raw: &str) -> SessionId {
        SessionId::parse(raw).unwrap()
    }

    fn event(session: &str, event: &str, at: Timestamp) -> NewEvent {
        NewEvent {
            session_id: id(session),
            event_id: crate::domain::EventId::parse(event).unwrap(),
            event_type: EventType::System,
            payload: JsonObject::parse(serde_json::json!({"e": event})).unwrap(),
            client_timestamp: None,
            received_at: at,
        }
    }

    /// One batch runs without savepoints; a failing command sends it back to run each command in
    /// its own. Either way the others commit and only the failed one's writes are undone.
    #[test]
    fn a_failing_command_in_a_batch_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("w.db")).unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        let now = Timestamp::now();
        let (created, created_rx) = oneshot::channel();
        let session = NewSession {
            session_id: id("s1"),
            language: Language::parse("en").unwrap(),
            metadata: JsonObject::default(),
            started_at: now,
            timers: Timers::default(),
        };
        let mut db = Db::new(&conn);
        commit_batch(
            &mut db,
            &mut vec![Command::Create(session, "{}".into(), created)],
        );
        assert!(created_rx.blocking_recv().unwrap().unwrap().created);

        let append = |new: NewEvent| {
            let (reply, rx) = oneshot::channel();
            (Command::Append(new, reply), rx)
        };
        // All succeed: the optimistic pass commits them.
        let (a, a_rx) = append(event("s1", "e1", now));
        let (b, b_rx) = append(event("s1", "e2", now));
        commit_batch(&mut db, &mut vec![a, b]);
        for (rx, seq) in [(a_rx, 1), (b_rx, 2)] {
            match rx.blocking_recv().unwrap().unwrap() {
                Appended::New(e) => assert_eq!(e.seq, seq),
                other => panic!("expected a new event, got {other:?}"),
            }
        }
        // One fails (an unknown session) between two that succeed.
        let (c, c_rx) = append(event("s1", "e3", now));
        let (d, d_rx) = append(event("nobody", "e1", now));
        let (e, e_rx) = append(event("s1", "e4", now));
        commit_batch(&mut db, &mut vec![c, d, e]);
        assert!(matches!(
            d_rx.blocking_recv().unwrap(),
            Err(RepoError::NotFound)
        ));
        for (rx, seq) in [(c_rx, 3), (e_rx, 4)] {
            match rx.blocking_recv().unwrap().unwrap() {
                Appended::New(e) => assert_eq!(e.seq, seq),
                other => panic!("expected a new event, got {other:?}"),
            }
        }
        let (events, count): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM events), event_count FROM sessions WHERE session_id = 's1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((events, count), (4, 4));
        assert!(conn.is_autocommit(), "no transaction is left open");
    }

    /// A batch whose COMMIT fails for lack of space answers every caller `storage_full`, and a
    /// failing disk `storage_unavailable`, never a plain backend error (which would be a 500).
    #[test]
    fn a_failed_commit_keeps_what_sqlite_said() {
        let failed = |code| CommitFailed {
            message: "commit failed".into(),
            code: Some(code),
        };
        assert!(failed(rusqlite::ErrorCode::DiskFull).error().is_full());
        assert!(matches!(
            failed(rusqlite::ErrorCode::SystemIoFailure).error(),
            RepoError::Unavailable(_)
        ));
        assert!(matches!(
            failed(rusqlite::ErrorCode::ConstraintViolation).error(),
            RepoError::Backend(_)
        ));
    }
}
