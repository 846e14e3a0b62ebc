//! Appends, single and batch: the rules come from [`crate::repo::decide`]; this reads what they
//! need and writes what they decide.

use rusqlite::params;

use super::super::{map_err, rows};
use super::lifecycle::expire;
use super::open_sessions::OpenState;
use super::{Db, changes};
use crate::domain::{Event, NewEvent, NewEvents, SessionId, Status, Timers, Timestamp};
use crate::repo::decide::{self, BatchPlan, Refusal};
use crate::repo::{Appended, BatchAppended, BatchItem, RepoError};

/// Inserts first and looks the event up only when its id was already stored, so a new event
/// (the usual case) costs no lookup. The unique `(session_id, event_id)` index decides a
/// duplicate, and the primary key `(session_id, seq)` is the backstop against a reused seq.
/// The search index follows the change recorded here, later and on its own thread
/// (`super::super::index`).
pub fn append(db: &mut Db, new: &NewEvent) -> Result<Appended, RepoError> {
    let state = open_state(db, &new.session_id)?;
    let target = state.target(new.received_at, new.expected_seq);
    if let Some(redact) = target.redaction_changed(new.redact) {
        return Ok(Appended::RedactionChanged(redact));
    }
    if let Some(refusal) = target.refusal() {
        // An event stored before the session ended is still answered as stored.
        if let Some(existing) = rows::event_by_id(db.conn, &new.session_id, &new.event_id)? {
            return Ok(Appended::Existing(existing));
        }
        return match refusal {
            Refusal::Ended(status) => Ok(Appended::SessionEnded(status)),
            Refusal::Expired => {
                db.open.forget(&new.session_id);
                let ended = expire(db, &new.session_id, new.received_at)?;
                Ok(decide::expired_append(ended.ended_by_this()))
            }
            Refusal::SeqMismatch { current } => Ok(Appended::SeqMismatch(current)),
        };
    }
    let event = decide::next_event(new, &target);
    if !insert_event(db, &event)? {
        let existing =
            rows::event_by_id(db.conn, &new.session_id, &new.event_id)?.ok_or_else(|| {
                RepoError::Backend("event vanished after a conflicting insert".into())
            })?;
        return Ok(Appended::Existing(existing));
    }
    record_appended(db, &new.session_id, &state, event.seq, new.received_at)?;
    changes::event(db.conn, &new.session_id, event.seq)?;
    Ok(Appended::New(event))
}

/// Every lookup first, then either every new event is inserted and the session updated once, or
/// nothing is written (a refusal, or an error that rolls the command's savepoint back). The
/// writer being the only one, nothing changes in between.
pub fn append_batch(db: &mut Db, batch: &NewEvents) -> Result<BatchAppended, RepoError> {
    let id = batch.session_id();
    let state = open_state(db, id)?;
    let stored = batch
        .events()
        .iter()
        .map(|new| rows::event_by_id(db.conn, id, &new.event_id))
        .collect::<Result<Vec<_>, _>>()?;
    match decide::plan_batch(
        batch,
        stored,
        state.target(batch.received_at(), batch.expected_seq()),
    ) {
        BatchPlan::Answer(answer) => Ok(answer),
        BatchPlan::Expire { new } => {
            db.open.forget(id);
            let ended = expire(db, id, batch.received_at())?;
            Ok(decide::expired_batch(new, ended.ended_by_this()))
        }
        BatchPlan::Insert { items } => {
            let mut last = state.event_count;
            for item in &items {
                let BatchItem::New(event) = item else {
                    continue;
                };
                if !insert_event(db, event)? {
                    // Every id was looked up in this transaction, and this writer is the only one.
                    return Err(RepoError::Backend(
                        "an event id looked up as new was already stored".into(),
                    ));
                }
                changes::event(db.conn, id, event.seq)?;
                last = event.seq;
            }
            record_appended(db, id, &state, last, batch.received_at())?;
            Ok(BatchAppended::Stored(items))
        }
    }
}

fn open_state(db: &mut Db, id: &SessionId) -> Result<OpenState, RepoError> {
    if let Some(kept) = db.open.get(id) {
        return Ok(kept.clone());
    }
    let mut stmt = db
        .conn
        .prepare_cached(concat!(
            "SELECT event_count, expires_at, redact, ",
            rows::timing_columns!(),
            " FROM sessions WHERE session_id = ?1"
        ))
        .map_err(map_err)?;
    let mut rows = stmt.query([id.as_str()]).map_err(map_err)?;
    let row = rows.next().map_err(map_err)?.ok_or(RepoError::NotFound)?;
    let timing = rows::Timing::from_row(row, 3)?;
    let event_count: i64 = row.get(0).map_err(map_err)?;
    Ok(OpenState {
        event_count: u64::try_from(event_count).map_err(|_| rows::corrupt("event_count"))?,
        stored_deadline: row.get(1).map_err(map_err)?,
        timing,
        redact: rows::redact(row, 2)?,
    })
}

/// Inserts the event unless its `(session_id, event_id)` is stored already; whether it was.
fn insert_event(db: &Db, event: &Event) -> Result<bool, RepoError> {
    let inserted = db
        .conn
        .prepare_cached(
            "INSERT INTO events (session_id, seq, event_id, type, payload, timestamp)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (session_id, event_id) DO NOTHING",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                event.session_id.as_str(),
                event.seq as i64,
                event.event_id.as_str(),
                event.event_type.as_str(),
                event.payload.json(),
                event.timestamp.millis(),
            ])
        })
        .map_err(map_err)?;
    Ok(inserted == 1)
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

/// The session after events were appended up to `seq` at `received_at`: its count, its status
/// (active), the time of its last event, and its stored deadline if that lags too far. Leaving
/// `status` alone once active skips its CHECK, and leaving `expires_at` alone skips rewriting
/// its index entry.
fn record_appended(
    db: &mut Db,
    id: &SessionId,
    state: &OpenState,
    seq: u64,
    received_at: Timestamp,
) -> Result<(), RepoError> {
    let first = state.status() == Status::Initiated;
    let deadline = stored_deadline(state, received_at);
    let at = received_at.millis();
    let (seq_i64, sid) = (seq as i64, id.as_str());
    let written = match (first, deadline) {
        (false, None) => db
            .conn
            .prepare_cached(
                "UPDATE sessions SET event_count = ?2, last_event_at = ?3 WHERE session_id = ?1",
            )
            .and_then(|mut s| s.execute(params![sid, seq_i64, at])),
        (false, Some(expires_at)) => db
            .conn
            .prepare_cached(
                "UPDATE sessions SET event_count = ?2, last_event_at = ?3, expires_at = ?4
                 WHERE session_id = ?1",
            )
            .and_then(|mut s| s.execute(params![sid, seq_i64, at, expires_at])),
        (true, rewrite) => db
            .conn
            .prepare_cached(
                "UPDATE sessions SET event_count = ?2, last_event_at = ?3, expires_at = ?4,
                     status = 'active' WHERE session_id = ?1",
            )
            .and_then(|mut s| {
                let expires_at = rewrite.unwrap_or(state.stored_deadline);
                s.execute(params![sid, seq_i64, at, expires_at])
            }),
    };
    if written.map_err(map_err)? != 1 {
        return Err(RepoError::Backend("the session row was not updated".into()));
    }
    let mut kept = state.clone();
    kept.event_count = seq;
    kept.timing.status = Status::Active;
    kept.timing.last_event_at = Some(received_at);
    if first || deadline.is_some() {
        kept.stored_deadline = deadline.unwrap_or(state.stored_deadline);
    }
    db.open.stage(id, kept);
    Ok(())
}
