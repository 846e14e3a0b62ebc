//! Row ⇄ domain conversions. Stored rows were validated on the way in; a row that no longer parses
//! is reported as a backend error, never passed on.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Map, Value};

use super::map_err;
use crate::domain::{
    Event, EventId, EventType, JsonObject, Language, Session, SessionId, Status, Timestamp,
};
use crate::repo::RepoError;

fn corrupt(what: impl Into<String>) -> RepoError {
    RepoError::Backend(format!("stored row does not parse: {}", what.into()).into())
}

pub fn json_text(object: &JsonObject) -> String {
    Value::Object(object.as_map().clone()).to_string()
}

fn json_object(text: &str) -> Result<JsonObject, RepoError> {
    serde_json::from_str::<Map<String, Value>>(text)
        .map(JsonObject::from_stored)
        .map_err(|e| corrupt(e.to_string()))
}

fn timestamp(millis: i64) -> Result<Timestamp, RepoError> {
    Timestamp::from_millis(millis).map_err(|e| corrupt(e.0))
}

fn count(value: i64) -> Result<u64, RepoError> {
    u64::try_from(value).map_err(|_| corrupt("negative count"))
}

pub const SESSION_COLUMNS: &str =
    "session_id, status, language, metadata, started_at, ended_at, event_count";

/// Raw columns, read inside rusqlite's row callback; parsing happens after, with our own errors.
type SessionRow = (String, String, String, String, i64, Option<i64>, i64);

fn session_row(row: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

fn to_session(raw: SessionRow) -> Result<Session, RepoError> {
    let (id, status, language, metadata, started_at, ended_at, event_count) = raw;
    Ok(Session {
        session_id: SessionId::parse(id).map_err(|e| corrupt(e.0))?,
        status: status.parse::<Status>().map_err(|e| corrupt(e.0))?,
        language: Language::parse(language).map_err(|e| corrupt(e.0))?,
        metadata: json_object(&metadata)?,
        started_at: timestamp(started_at)?,
        ended_at: ended_at.map(timestamp).transpose()?,
        event_count: count(event_count)?,
    })
}

pub fn session(conn: &Connection, id: &SessionId) -> Result<Option<Session>, RepoError> {
    let raw = conn
        .prepare_cached(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ?1"
        ))
        .and_then(|mut stmt| stmt.query_row([id.as_str()], session_row).optional())
        .map_err(map_err)?;
    raw.map(to_session).transpose()
}

/// `seq, event_id, type, payload, timestamp`
type EventRow = (i64, String, String, String, i64);

fn event_row(row: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn to_event(session_id: &SessionId, raw: EventRow) -> Result<Event, RepoError> {
    let (seq, event_id, event_type, payload, ts) = raw;
    Ok(Event {
        session_id: session_id.clone(),
        event_id: EventId::parse(event_id).map_err(|e| corrupt(e.0))?,
        seq: count(seq)?,
        event_type: EventType::parse(&event_type).map_err(|e| corrupt(e.0))?,
        payload: json_object(&payload)?,
        timestamp: timestamp(ts)?,
    })
}

pub fn event_by_id(
    conn: &Connection,
    session_id: &SessionId,
    event_id: &EventId,
) -> Result<Option<Event>, RepoError> {
    let raw = conn
        .prepare_cached(
            "SELECT seq, event_id, type, payload, timestamp FROM events
             WHERE session_id = ?1 AND event_id = ?2",
        )
        .and_then(|mut stmt| {
            stmt.query_row([session_id.as_str(), event_id.as_str()], event_row)
                .optional()
        })
        .map_err(map_err)?;
    raw.map(|r| to_event(session_id, r)).transpose()
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
    let raw: Vec<EventRow> = conn
        .prepare_cached(sql)
        .and_then(|mut stmt| {
            stmt.query_map(
                params![
                    session_id.as_str(),
                    clamp(low_excl),
                    clamp(high_incl),
                    clamp(limit)
                ],
                event_row,
            )?
            .collect()
        })
        .map_err(map_err)?;
    raw.into_iter().map(|r| to_event(session_id, r)).collect()
}
