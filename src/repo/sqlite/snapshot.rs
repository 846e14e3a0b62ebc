//! A session as one JSON text, kept in the change log (`changes.data`) for the session's changes:
//! the session as it was when the change happened, read back as it was written.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::rows::{corrupt, session_id};
use crate::domain::{EndReason, JsonObject, Language, Redact, Session, Status, Timers, Timestamp};
use crate::repo::RepoError;

#[derive(Serialize, Deserialize)]
struct Snapshot<'a> {
    id: &'a str,
    status: &'a str,
    language: &'a str,
    #[serde(borrow)]
    metadata: &'a RawValue,
    started_at: i64,
    ended_at: Option<i64>,
    event_count: u64,
    ended_reason: Option<&'a str>,
    last_event_at: Option<i64>,
    inactivity_seconds: u32,
    max_duration_seconds: u32,
    timers_since: i64,
    revision: u64,
    redact: Option<u8>,
}

/// The session's JSON text.
pub fn write(session: &Session) -> Result<String, RepoError> {
    let metadata = RawValue::from_string(session.metadata.json().to_owned())
        .map_err(|e| RepoError::Backend(Box::new(e)))?;
    let snapshot = Snapshot {
        id: session.session_id.as_str(),
        status: session.status.as_str(),
        language: session.language.as_str(),
        metadata: &metadata,
        started_at: session.started_at.millis(),
        ended_at: session.ended_at.map(Timestamp::millis),
        event_count: session.event_count,
        ended_reason: session.ended_reason.as_ref().map(EndReason::as_str),
        last_event_at: session.last_event_at.map(Timestamp::millis),
        inactivity_seconds: session.timers.inactivity_seconds,
        max_duration_seconds: session.timers.max_duration_seconds,
        timers_since: session.timers_since.millis(),
        revision: session.revision,
        redact: session.redact.map(Redact::bits),
    };
    serde_json::to_string(&snapshot).map_err(|e| RepoError::Backend(Box::new(e)))
}

/// The session written by [`write`].
pub fn read(text: &str) -> Result<Session, RepoError> {
    let s: Snapshot = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    let time = |millis: i64| Timestamp::from_millis(millis).map_err(|e| corrupt(e.0));
    Ok(Session {
        session_id: session_id(s.id)?,
        status: s.status.parse::<Status>().map_err(|e| corrupt(e.0))?,
        language: Language::parse(s.language).map_err(|e| corrupt(e.0))?,
        metadata: JsonObject::from_stored_json(s.metadata.get()).map_err(|e| corrupt(e.0))?,
        started_at: time(s.started_at)?,
        ended_at: s.ended_at.map(time).transpose()?,
        event_count: s.event_count,
        ended_reason: s
            .ended_reason
            .map(|r| EndReason::parse(r).map_err(|e| corrupt(e.0)))
            .transpose()?,
        last_event_at: s.last_event_at.map(time).transpose()?,
        timers: Timers {
            inactivity_seconds: s.inactivity_seconds,
            max_duration_seconds: s.max_duration_seconds,
        },
        timers_since: time(s.timers_since)?,
        revision: s.revision,
        redact: s
            .redact
            .map(|bits| Redact::from_bits(bits).ok_or_else(|| corrupt("redact")))
            .transpose()?,
    })
}
