//! Row ⇄ domain conversions. Stored rows were validated on the way in; a row that no longer parses
//! is reported as a backend error, never passed on.

use rusqlite::{Connection, Row, params};

use super::map_err;
use crate::domain::{
    EndReason, Event, EventId, EventType, JsonObject, Language, Redact, Session, SessionId, Status,
    Timers, Timestamp,
};
use crate::repo::RepoError;

pub fn corrupt(what: impl Into<String>) -> RepoError {
    RepoError::Backend(format!("stored row does not parse: {}", what.into()).into())
}

/// A stored session id.
pub fn session_id(stored: impl Into<String>) -> Result<SessionId, RepoError> {
    SessionId::parse(stored).map_err(|e| corrupt(e.0))
}

/// A stored timer (column `at`): `NULL`, from before timers, is off.
fn timer_seconds(row: &Row, at: usize) -> Result<u32, RepoError> {
    let stored: Option<i64> = row.get(at).map_err(map_err)?;
    stored.map_or(Ok(0), |v| Timers::check(v).map_err(|e| corrupt(e.0)))
}

/// What decides an open session's deadline, read from the columns `status,
/// inactivity_timeout_seconds, max_duration_seconds, timers_since, started_at, last_event_at`
/// (in that order, from `first`) without reading the rest of the session.
#[derive(Clone)]
pub struct Timing {
    pub status: Status,
    pub timers: Timers,
    pub timers_since: Timestamp,
    pub last_event_at: Option<Timestamp>,
}

/// The columns [`Timing::from_row`] reads, in its order (a macro, for `concat!`).
macro_rules! timing_columns {
    () => {
        "status, inactivity_timeout_seconds, max_duration_seconds, timers_since, started_at, \
         last_event_at"
    };
}
pub(crate) use timing_columns;

impl Timing {
    /// `RepoError::Deleted` for a tombstone.
    pub fn from_row(row: &Row, first: usize) -> Result<Self, RepoError> {
        let status: String = row.get(first).map_err(map_err)?;
        if status == "deleted" {
            return Err(RepoError::Deleted);
        }
        let timers = Timers {
            inactivity_seconds: timer_seconds(row, first + 1)?,
            max_duration_seconds: timer_seconds(row, first + 2)?,
        };
        let since: Option<i64> = row.get(first + 3).map_err(map_err)?;
        let started_at: i64 = row.get(first + 4).map_err(map_err)?;
        let last_event_at: Option<i64> = row.get(first + 5).map_err(map_err)?;
        Ok(Self {
            status: status.parse().map_err(|_| corrupt("status"))?,
            timers,
            timers_since: timestamp(since.unwrap_or(started_at))?,
            last_event_at: last_event_at.map(timestamp).transpose()?,
        })
    }

    /// The deadline of the session if it is open, as [`crate::domain::deadline`] has it.
    pub fn deadline(&self) -> Option<crate::domain::Deadline> {
        if self.status.is_terminal() {
            return None;
        }
        crate::domain::deadline(self.timers, self.timers_since, self.last_event_at)
    }
}

/// The stored text, checked to be one JSON object but not parsed into a tree.
fn json_object(text: &str) -> Result<JsonObject, RepoError> {
    JsonObject::from_stored_json(text).map_err(|e| corrupt(e.0))
}

pub fn timestamp(millis: i64) -> Result<Timestamp, RepoError> {
    Timestamp::from_millis(millis).map_err(|e| corrupt(e.0))
}

fn count(value: i64) -> Result<u64, RepoError> {
    u64::try_from(value).map_err(|_| corrupt("negative count"))
}

/// The columns [`session_row`] reads, in its order.
pub const SESSION_COLUMNS: &str = "session_id, status, language, metadata, started_at, ended_at, \
     event_count, ended_reason, last_event_at, inactivity_timeout_seconds, max_duration_seconds, \
     timers_since, metadata_revision, redact";

/// Written out (not formatted from [`SESSION_COLUMNS`]) so the cached statement is found without
/// building its text on every read.
const SESSION_BY_ID: &str = "SELECT session_id, status, language, metadata, started_at, ended_at, \
     event_count, ended_reason, last_event_at, inactivity_timeout_seconds, max_duration_seconds, \
     timers_since, metadata_revision, redact FROM sessions WHERE session_id = ?1";

/// The session, `None` if there is none, `Deleted` for a tombstone.
pub fn session(conn: &Connection, id: &SessionId) -> Result<Option<Session>, RepoError> {
    let mut stmt = conn.prepare_cached(SESSION_BY_ID).map_err(map_err)?;
    let mut rows = stmt.query([id.as_str()]).map_err(map_err)?;
    match rows.next().map_err(map_err)? {
        Some(row) => session_row(row).map(Some),
        None => Ok(None),
    }
}

/// Reads [`SESSION_COLUMNS`]; a tombstone is `Deleted`.
pub fn session_row(row: &Row<'_>) -> Result<Session, RepoError> {
    let status = text(row, 1)?;
    if status == "deleted" {
        return Err(RepoError::Deleted);
    }
    let optional_time = |i: usize| -> Result<Option<Timestamp>, RepoError> {
        let millis: Option<i64> = row.get(i).map_err(map_err)?;
        millis.map(timestamp).transpose()
    };
    let started_at = timestamp(int(row, 4)?)?;
    let ended_reason: Option<String> = row.get(7).map_err(map_err)?;
    Ok(Session {
        session_id: session_id(text(row, 0)?)?,
        status: status.parse::<Status>().map_err(|e| corrupt(e.0))?,
        language: Language::parse(text(row, 2)?).map_err(|e| corrupt(e.0))?,
        metadata: json_object(text(row, 3)?)?,
        started_at,
        ended_at: optional_time(5)?,
        event_count: count(int(row, 6)?)?,
        ended_reason: ended_reason
            .map(|r| EndReason::parse(r).map_err(|e| corrupt(e.0)))
            .transpose()?,
        last_event_at: optional_time(8)?,
        timers: Timers {
            inactivity_seconds: timer_seconds(row, 9)?,
            max_duration_seconds: timer_seconds(row, 10)?,
        },
        timers_since: optional_time(11)?.unwrap_or(started_at),
        revision: count(int(row, 12)?)?,
        redact: redact(row, 13)?,
    })
}

/// A stored `redact` (column `at`): `NULL` is the service's.
pub fn redact(row: &Row, at: usize) -> Result<Option<Redact>, RepoError> {
    let stored: Option<i64> = row.get(at).map_err(map_err)?;
    stored
        .map(|bits| {
            u8::try_from(bits)
                .ok()
                .and_then(Redact::from_bits)
                .ok_or_else(|| corrupt("redact"))
        })
        .transpose()
}

/// Fails unless the session exists and is not a tombstone.
pub fn require_session(conn: &Connection, id: &SessionId) -> Result<(), RepoError> {
    let mut stmt = conn
        .prepare_cached("SELECT status = 'deleted' FROM sessions WHERE session_id = ?1")
        .map_err(map_err)?;
    let mut rows = stmt.query([id.as_str()]).map_err(map_err)?;
    match rows.next().map_err(map_err)? {
        None => Err(RepoError::NotFound),
        Some(row) if row.get::<_, bool>(0).map_err(map_err)? => Err(RepoError::Deleted),
        Some(_) => Ok(()),
    }
}

/// A text column, borrowed from SQLite rather than copied into an intermediate string.
fn text<'r>(row: &'r Row<'_>, i: usize) -> Result<&'r str, RepoError> {
    row.get_ref(i)
        .map_err(map_err)?
        .as_str()
        .map_err(|e| corrupt(e.to_string()))
}

fn int(row: &Row<'_>, i: usize) -> Result<i64, RepoError> {
    row.get(i).map_err(map_err)
}

/// Reads `seq, event_id, type, payload, timestamp` (columns 0 to 4).
pub fn event(session_id: &SessionId, row: &Row<'_>) -> Result<Event, RepoError> {
    Ok(Event {
        session_id: session_id.clone(),
        event_id: EventId::parse(text(row, 1)?).map_err(|e| corrupt(e.0))?,
        seq: count(int(row, 0)?)?,
        event_type: EventType::parse(text(row, 2)?).map_err(|e| corrupt(e.0))?,
        payload: json_object(text(row, 3)?)?,
        timestamp: timestamp(int(row, 4)?)?,
    })
}

pub fn event_by_id(
    conn: &Connection,
    session_id: &SessionId,
    event_id: &EventId,
) -> Result<Option<Event>, RepoError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, event_id, type, payload, timestamp FROM events
             WHERE session_id = ?1 AND event_id = ?2",
        )
        .map_err(map_err)?;
    let mut rows = stmt
        .query([session_id.as_str(), event_id.as_str()])
        .map_err(map_err)?;
    match rows.next().map_err(map_err)? {
        Some(row) => event(session_id, row).map(Some),
        None => Ok(None),
    }
}

/// Runs `sql`, which takes `(session_id, low_excl, high_incl, limit)` and selects event columns.
pub fn events(
    conn: &Connection,
    sql: &str,
    session_id: &SessionId,
    low_excl: u64,
    high_incl: u64,
    limit: u64,
) -> Result<Vec<Event>, RepoError> {
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    let mut rows = stmt
        .query(params![
            session_id.as_str(),
            clamp(low_excl),
            clamp(high_incl),
            clamp(limit)
        ])
        .map_err(map_err)?;
    // Sized once: growing it row by row reallocated the page several times per read.
    let mut events = Vec::with_capacity(usize::try_from(limit).unwrap_or(0).min(1024));
    while let Some(row) = rows.next().map_err(map_err)? {
        events.push(event(session_id, row)?);
    }
    Ok(events)
}
