//! Request bodies parsed into domain types, and response bodies as the API writes them.

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::AppError;
use super::extract::Fields;
use crate::domain::{
    Event, EventId, EventType, JsonObject, Language, NewEvent, NewSession, Session, SessionId,
    TerminalStatus, Timestamp,
};
use crate::service::SessionPage;

/// `POST /sessions` `{sessionId, language, metadata?}`
pub fn new_session(body: Map<String, Value>) -> Result<NewSession, AppError> {
    let mut f = Fields::new(body);
    let session_id = f
        .required_string("sessionId")
        .and_then(|s| f.check("sessionId", SessionId::parse(s)));
    let language = f
        .required_string("language")
        .and_then(|s| f.check("language", Language::parse(s)));
    let metadata = match f.optional_value("metadata") {
        None => Some(JsonObject::default()),
        Some(v) => f.check("metadata", JsonObject::parse(v)),
    };
    f.finish()?;
    match (session_id, language, metadata) {
        (Some(session_id), Some(language), Some(metadata)) => Ok(NewSession {
            session_id,
            language,
            metadata,
            started_at: Timestamp::now(),
        }),
        _ => Err(unreachable_invalid()),
    }
}

/// `Fields::finish` fails whenever a field is missing, so this is only reached through a bug.
fn unreachable_invalid() -> AppError {
    AppError::Internal("validation passed without a value".into())
}

/// `POST /sessions/{sessionId}/events` `{eventId, type, payload, timestamp?}`
pub fn new_event(session_id: SessionId, body: Map<String, Value>) -> Result<NewEvent, AppError> {
    let mut f = Fields::new(body);
    let event_id = f
        .required_string("eventId")
        .and_then(|s| f.check("eventId", EventId::parse(s)));
    let event_type = f
        .required_string("type")
        .and_then(|s| f.check("type", EventType::parse(&s)));
    let payload = f
        .required_value("payload")
        .and_then(|v| f.check("payload", JsonObject::parse(v)));
    let client_timestamp = match f.optional_string("timestamp") {
        None => Some(None),
        Some(t) => f.check("timestamp", Timestamp::parse(&t)).map(Some),
    };
    f.finish()?;
    match (event_id, event_type, payload, client_timestamp) {
        (Some(event_id), Some(event_type), Some(payload), Some(client_timestamp)) => Ok(NewEvent {
            session_id,
            event_id,
            event_type,
            payload,
            client_timestamp,
            received_at: Timestamp::now(),
        }),
        _ => Err(unreachable_invalid()),
    }
}

/// `POST /sessions/{sessionId}/complete` with optional `{status}`.
pub fn terminal_status(body: Option<Map<String, Value>>) -> Result<TerminalStatus, AppError> {
    let Some(body) = body else {
        return Ok(TerminalStatus::default());
    };
    let mut f = Fields::new(body);
    let status = match f.optional_string("status") {
        None => Some(TerminalStatus::default()),
        Some(s) => f.check("status", TerminalStatus::parse(&s)),
    };
    f.finish()?;
    status.ok_or_else(unreachable_invalid)
}

/// A path segment parsed as a session id; invalid ids are a 400 naming the parameter.
pub fn path_session_id(raw: String) -> Result<SessionId, AppError> {
    SessionId::parse(raw).map_err(|e| AppError::invalid("sessionId", e.0))
}

pub fn path_event_id(raw: String) -> Result<EventId, AppError> {
    EventId::parse(raw).map_err(|e| AppError::invalid("eventId", e.0))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionBody<'a> {
    session_id: &'a str,
    status: &'static str,
    language: &'a str,
    metadata: &'a Map<String, Value>,
    started_at: Timestamp,
    ended_at: Option<Timestamp>,
    event_count: u64,
}

impl<'a> From<&'a Session> for SessionBody<'a> {
    fn from(s: &'a Session) -> Self {
        SessionBody {
            session_id: s.session_id.as_str(),
            status: s.status.as_str(),
            language: s.language.as_str(),
            metadata: s.metadata.as_map(),
            started_at: s.started_at,
            ended_at: s.ended_at,
            event_count: s.event_count,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventBody<'a> {
    session_id: &'a str,
    event_id: &'a str,
    seq: u64,
    #[serde(rename = "type")]
    event_type: &'static str,
    payload: &'a Map<String, Value>,
    timestamp: Timestamp,
}

impl<'a> From<&'a Event> for EventBody<'a> {
    fn from(e: &'a Event) -> Self {
        EventBody {
            session_id: e.session_id.as_str(),
            event_id: e.event_id.as_str(),
            seq: e.seq,
            event_type: e.event_type.as_str(),
            payload: e.payload.as_map(),
            timestamp: e.timestamp,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionPageBody<'a> {
    #[serde(flatten)]
    session: SessionBody<'a>,
    events: Vec<EventBody<'a>>,
    pagination: PaginationBody,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PaginationBody {
    total: u64,
    limit: u32,
    page: Option<u64>,
    total_pages: u64,
    has_more: bool,
    next_cursor: Option<String>,
}

impl<'a> From<&'a SessionPage> for SessionPageBody<'a> {
    fn from(p: &'a SessionPage) -> Self {
        SessionPageBody {
            session: (&p.session).into(),
            events: p.events.iter().map(EventBody::from).collect(),
            pagination: PaginationBody {
                total: p.session.event_count,
                limit: p.limit,
                page: p.page,
                total_pages: p.total_pages,
                has_more: p.has_more,
                next_cursor: p.next_cursor.map(|c| c.encode()),
            },
        }
    }
}
