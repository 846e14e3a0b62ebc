//! Creating, ending, erasing and adopting sessions, and purging erased ones.

use rusqlite::{Connection, OptionalExtension, params};

use super::super::{map_err, rows};
use super::stats::{self, Counted};
use super::{Db, changes};
use crate::domain::{EndReason, NewSession, Session, SessionId, Status, Timers, Timestamp};
use crate::repo::decide::{self, PatchPlan};
use crate::repo::feed::ChangeKind;
use crate::repo::{
    CreateOutcome, DeleteOutcome, EndOutcome, EndRequest, MetadataPatch, Patched, PurgeOutcome,
    RepoError,
};

pub fn create(db: &mut Db, new: &NewSession, metadata: &str) -> Result<CreateOutcome, RepoError> {
    let conn = db.conn;
    let session = new.clone().into_session();
    let inserted = conn
        .prepare_cached(
            "INSERT INTO sessions (session_id, status, language, metadata, started_at, event_count,
                 inactivity_timeout_seconds, max_duration_seconds, timers_since, expires_at, redact)
             VALUES (?1, 'initiated', ?2, ?3, ?4, 0, ?5, ?6, ?4, ?7, ?8)
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
                session.redact.map(|r| r.bits()),
            ])
        })
        .map_err(map_err)?;
    if inserted == 1 {
        changes::session(conn, ChangeKind::SessionCreated, &session)?;
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

/// Applies a metadata patch ([`decide::plan_patch`]); the writer being the only one, nothing
/// changes between the read and the write. The open-session cache holds no metadata: nothing
/// of it to forget.
pub fn patch_metadata(
    db: &mut Db,
    id: &SessionId,
    patch: &MetadataPatch,
) -> Result<Patched, RepoError> {
    let stored = rows::session(db.conn, id)?.ok_or(RepoError::NotFound)?;
    let metadata = match decide::plan_patch(&stored, patch) {
        PatchPlan::Answer(answer) => return Ok(answer),
        PatchPlan::Write(metadata) => metadata,
    };
    let written = db
        .conn
        .prepare_cached(
            "UPDATE sessions SET metadata = ?2, metadata_revision = metadata_revision + 1
             WHERE session_id = ?1",
        )
        .and_then(|mut stmt| stmt.execute(params![id.as_str(), metadata.json()]))
        .map_err(map_err)?;
    if written != 1 {
        return Err(RepoError::Backend("the session row was not updated".into()));
    }
    let patched = decide::patched(stored, metadata, patch.at);
    if let Patched::Done(session) = &patched {
        changes::session(db.conn, ChangeKind::SessionUpdated, session)?;
    }
    Ok(patched)
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

pub fn end(db: &mut Db, id: &SessionId, request: &EndRequest) -> Result<EndOutcome, RepoError> {
    let conn = db.conn;
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
    let ended_now = record_end(
        conn,
        &ended.session_id,
        ended.status,
        ended_at,
        ended.ended_reason.as_ref(),
    )?;
    if ended_now {
        changes::session(conn, ChangeKind::SessionEnded, ended)?;
        stats::count(
            conn,
            &Counted {
                started_at: ended.started_at,
                ended_at,
                status: ended.status.as_str(),
                ended_reason: ended.ended_reason.as_ref().map(EndReason::as_str),
                language: ended.language.as_str(),
                events: ended.event_count,
            },
        )?;
    }
    Ok(ended_now)
}

pub fn expire(db: &mut Db, id: &SessionId, now: Timestamp) -> Result<EndOutcome, RepoError> {
    let conn = db.conn;
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

pub fn delete(db: &mut Db, id: &SessionId, at: Timestamp) -> Result<DeleteOutcome, RepoError> {
    let conn = db.conn;
    type Row = (String, i64, Option<i64>, Option<String>, String, i64);
    let (status, started_at, ended_at, reason, language, events): Row = conn
        .prepare_cached(
            "SELECT status, started_at, ended_at, ended_reason, language, event_count
             FROM sessions WHERE session_id = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([id.as_str()], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .optional()
        })
        .map_err(map_err)?
        .ok_or(RepoError::NotFound)?;
    if status == "deleted" {
        return Ok(DeleteOutcome { deleted_now: false });
    }
    if let Some(ended_at) = ended_at {
        stats::uncount(
            conn,
            &Counted {
                started_at: rows::timestamp(started_at)?,
                ended_at: rows::timestamp(ended_at)?,
                status: &status,
                ended_reason: reason.as_deref(),
                language: &language,
                events: u64::try_from(events).map_err(|_| rows::corrupt("event_count"))?,
            },
        )?;
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
    changes::erased(conn, id)?;
    Ok(DeleteOutcome { deleted_now: true })
}

/// Removes up to `max` of the erased session's first events and counts down what is left (the
/// search index removes their rows when it follows the `session.deleted` change).
fn remove_events(conn: &Connection, id: &SessionId, max: u64) -> Result<u64, RepoError> {
    let upto: Option<i64> = conn
        .prepare_cached(
            "SELECT max(seq) FROM
                 (SELECT seq FROM events WHERE session_id = ?1 ORDER BY seq LIMIT ?2)",
        )
        .and_then(|mut stmt| {
            stmt.query_row(
                params![id.as_str(), i64::try_from(max).unwrap_or(i64::MAX)],
                |r| r.get(0),
            )
        })
        .map_err(map_err)?;
    let mut removed = 0;
    if let Some(upto) = upto {
        removed = conn
            .prepare_cached("DELETE FROM events WHERE session_id = ?1 AND seq <= ?2")
            .and_then(|mut stmt| stmt.execute(params![id.as_str(), upto]))
            .map_err(map_err)? as u64;
    }
    let left: i64 = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM events WHERE session_id = ?1)")
        .and_then(|mut stmt| stmt.query_row([id.as_str()], |r| r.get(0)))
        .map_err(map_err)?;
    conn.prepare_cached("UPDATE sessions SET event_count = ?2 WHERE session_id = ?1")
        .and_then(|mut stmt| stmt.execute(params![id.as_str(), left]))
        .map_err(map_err)?;
    Ok(removed)
}

pub fn purge(db: &mut Db, max_events: u64, cutoff: Timestamp) -> Result<PurgeOutcome, RepoError> {
    let conn = db.conn;
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
pub fn adopt(db: &mut Db, defaults: Timers, now: Timestamp) -> Result<u64, RepoError> {
    let conn = db.conn;
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
