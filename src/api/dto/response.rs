//! The response bodies, as the API writes them.

use serde::Serialize;
use utoipa::ToSchema;

use super::schema::FreeFormObject;

use crate::domain::{EndReason, Event, EventType, JsonObject, PiiKind, Session, Status, Timestamp};
use crate::service::{SessionList, SessionPage};

/// `initiated` on creation, `active` from the first event, then `completed` or `failed`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = SessionStatus)]
pub enum SessionStatus {
    Initiated,
    Active,
    Completed,
    Failed,
}

impl From<Status> for SessionStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Initiated => SessionStatus::Initiated,
            Status::Active => SessionStatus::Active,
            Status::Completed => SessionStatus::Completed,
            Status::Failed => SessionStatus::Failed,
        }
    }
}

/// What an event records.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = EventType)]
pub enum EventKind {
    UserSpeech,
    BotSpeech,
    System,
}

impl EventKind {
    /// Its name in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::UserSpeech => "user_speech",
            EventKind::BotSpeech => "bot_speech",
            EventKind::System => "system",
        }
    }
}

impl From<EventType> for EventKind {
    fn from(t: EventType) -> Self {
        match t {
            EventType::UserSpeech => EventKind::UserSpeech,
            EventType::BotSpeech => EventKind::BotSpeech,
            EventType::System => EventKind::System,
        }
    }
}

/// A kind of personal data replaced in event payloads before they are stored, by
/// `[REDACTED:<kind>]`: `card` (13–19 digits passing the Luhn check), `email`, `phone` (at least
/// 10 digits), `ssn` (`ddd-dd-dddd`).
#[derive(Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum RedactKind {
    Card,
    Email,
    Phone,
    Ssn,
}

impl From<PiiKind> for RedactKind {
    fn from(kind: PiiKind) -> Self {
        match kind {
            PiiKind::Card => RedactKind::Card,
            PiiKind::Email => RedactKind::Email,
            PiiKind::Phone => RedactKind::Phone,
            PiiKind::Ssn => RedactKind::Ssn,
        }
    }
}

/// A call.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Session)]
pub struct SessionBody<'a> {
    #[schema(pattern = r"^[A-Za-z0-9._:-]{1,128}$", example = "call-42")]
    session_id: &'a str,
    status: SessionStatus,
    #[schema(
        example = "en-US",
        max_length = 35,
        pattern = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"
    )]
    language: &'a str,
    #[schema(value_type = FreeFormObject)]
    metadata: &'a JsonObject,
    #[schema(value_type = String, format = DateTime, example = "2025-12-21T15:30:15.123Z")]
    started_at: Timestamp,
    /// `null` until the session ends.
    #[schema(value_type = Option<String>, format = DateTime)]
    ended_at: Option<Timestamp>,
    /// Exactly the number of stored events; also the highest `seq`.
    #[schema(minimum = 0)]
    event_count: u64,
    /// `null` until ended; then the reason given to `complete`, `inactivity_timeout` or
    /// `max_duration_exceeded` (or `null` if it was ended without one).
    #[schema(example = "caller_hangup")]
    ended_reason: Option<&'a str>,
    /// When the last event was accepted (server time); `null` before the first.
    #[schema(value_type = Option<String>, format = DateTime)]
    last_event_at: Option<Timestamp>,
    /// The session's inactivity timer in seconds (`0`: off).
    inactivity_timeout_seconds: u32,
    /// The session's maximum duration in seconds (`0`: off).
    max_duration_seconds: u32,
    /// When the session ends by itself if nothing more happens; `null` when no timer applies or
    /// it has ended.
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Timestamp>,
    /// The kinds of personal data the call chose at create to have replaced in its event
    /// payloads; `null`: it chose none, and the service's `REDACT` applies.
    redact: Option<Vec<RedactKind>>,
}

impl<'a> From<&'a Session> for SessionBody<'a> {
    fn from(s: &'a Session) -> Self {
        SessionBody {
            session_id: s.session_id.as_str(),
            status: s.status.into(),
            language: s.language.as_str(),
            metadata: &s.metadata,
            started_at: s.started_at,
            ended_at: s.ended_at,
            event_count: s.event_count,
            ended_reason: s.ended_reason.as_ref().map(EndReason::as_str),
            last_event_at: s.last_event_at,
            inactivity_timeout_seconds: s.timers.inactivity_seconds,
            max_duration_seconds: s.timers.max_duration_seconds,
            expires_at: s.deadline().map(|d| d.at),
            redact: s.redact.map(|r| r.kinds().map(RedactKind::from).collect()),
        }
    }
}

/// One thing that happened in a call.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Event)]
pub struct EventBody<'a> {
    #[schema(example = "call-42")]
    session_id: &'a str,
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "utt-1")]
    event_id: &'a str,
    /// Assigned by the server: 1, 2, 3… in the order events were accepted, never reused.
    #[schema(minimum = 1)]
    seq: u64,
    #[serde(rename = "type")]
    event_type: EventKind,
    #[schema(value_type = FreeFormObject)]
    payload: &'a JsonObject,
    /// The client's timestamp if it sent one, else when the server accepted the event.
    #[schema(value_type = String, format = DateTime, example = "2025-12-21T15:30:15.123Z")]
    timestamp: Timestamp,
}

impl<'a> From<&'a Event> for EventBody<'a> {
    fn from(e: &'a Event) -> Self {
        EventBody {
            session_id: e.session_id.as_str(),
            event_id: e.event_id.as_str(),
            seq: e.seq,
            event_type: e.event_type.into(),
            payload: &e.payload,
            timestamp: e.timestamp,
        }
    }
}

impl EventBody<'_> {
    /// The event as JSON text, written directly: byte for byte what `serde_json` makes of it
    /// (a unit test compares), for a fraction of the instructions. Single events are answered
    /// with this; it is on the ingest path.
    pub fn to_json(&self) -> Vec<u8> {
        let payload = self.payload.json();
        let mut out =
            Vec::with_capacity(96 + self.session_id.len() + self.event_id.len() + payload.len());
        out.extend_from_slice(b"{\"sessionId\":");
        push_json_str(&mut out, self.session_id);
        out.extend_from_slice(b",\"eventId\":");
        push_json_str(&mut out, self.event_id);
        out.extend_from_slice(b",\"seq\":");
        push_u64(&mut out, self.seq);
        out.extend_from_slice(b",\"type\":\"");
        out.extend_from_slice(self.event_type.as_str().as_bytes());
        out.extend_from_slice(b"\",\"payload\":");
        out.extend_from_slice(payload.as_bytes());
        out.extend_from_slice(b",\"timestamp\":\"");
        out.extend_from_slice(&self.timestamp.rfc3339());
        out.extend_from_slice(b"\"}");
        out
    }
}

/// A JSON string: copied as is when nothing in it needs an escape (ids never do), else written
/// by `serde_json`.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, s).is_err() {
        // Writing to a Vec does not fail; an empty string keeps the text valid regardless.
        out.extend_from_slice(b"\"\"");
    }
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The answer of a batch: the stored event for each event of the request, in its order.
#[derive(Serialize, ToSchema)]
#[schema(as = EventBatch)]
pub struct EventBatchBody<'a> {
    events: Vec<EventBody<'a>>,
}

impl<'a> From<&'a [Event]> for EventBatchBody<'a> {
    fn from(events: &'a [Event]) -> Self {
        EventBatchBody {
            events: events.iter().map(EventBody::from).collect(),
        }
    }
}

/// The session's fields, one page of its events, and how to go on.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SessionPage)]
pub struct SessionPageBody<'a> {
    #[serde(flatten)]
    session: SessionBody<'a>,
    events: Vec<EventBody<'a>>,
    pagination: PaginationBody,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Pagination)]
struct PaginationBody {
    /// Equals `eventCount`.
    total: u64,
    limit: u32,
    /// `null` in cursor mode (`after`).
    page: Option<u64>,
    total_pages: u64,
    has_more: bool,
    /// Pass as `after` to get the next page; `null` on the last page.
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

/// One page of a session's events, without the session.
#[derive(Serialize, ToSchema)]
#[schema(as = EventPage)]
pub struct EventPageBody<'a> {
    events: Vec<EventBody<'a>>,
    pagination: PaginationBody,
}

impl<'a> From<&'a SessionPage> for EventPageBody<'a> {
    fn from(p: &'a SessionPage) -> Self {
        let SessionPageBody {
            events, pagination, ..
        } = SessionPageBody::from(p);
        EventPageBody { events, pagination }
    }
}

/// One page of sessions, and how to go on.
#[derive(Serialize, ToSchema)]
#[schema(as = SessionList)]
pub struct SessionListBody<'a> {
    sessions: Vec<SessionBody<'a>>,
    pagination: ListPaginationBody,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ListPagination)]
struct ListPaginationBody {
    limit: u32,
    /// Whether more sessions may match: a page can be short (even empty) and still have more
    /// when selective filters matched few of the sessions it examined.
    has_more: bool,
    /// Pass as `after` to go on; `null` when there is nothing more.
    next_cursor: Option<String>,
}

impl<'a> From<&'a SessionList> for SessionListBody<'a> {
    fn from(l: &'a SessionList) -> Self {
        SessionListBody {
            sessions: l.sessions.iter().map(SessionBody::from).collect(),
            pagination: ListPaginationBody {
                limit: l.limit,
                has_more: l.has_more,
                next_cursor: l.next_cursor.as_ref().map(|c| c.encode()),
            },
        }
    }
}

/// The answer of `/health` and `/ready`.
#[derive(Serialize, ToSchema)]
#[schema(as = Status)]
pub struct StatusBody {
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{EventBody, EventKind};
    use crate::domain::{JsonObject, Timestamp};

    fn serde_text(body: &EventBody) -> Vec<u8> {
        serde_json::to_vec(body).expect("an event serializes")
    }

    proptest! {
        /// The hand-written event JSON is byte for byte what `serde_json` writes, whatever the
        /// strings hold (ids never need escapes, but the writer must not depend on that).
        #[test]
        fn event_json_is_what_serde_json_writes(
            session_id in any::<String>(),
            event_id in "[A-Za-z0-9._:-]{1,128}|\\PC*",
            seq in any::<u64>(),
            kind in 0..3u8,
            millis in 0i64..253_402_300_800_000,
            payload in prop::sample::select(vec![
                "{}",
                r#"{"text":"hello","confidence":0.93,"turn":7}"#,
                r#"{"nested":{"a":[1,2,{"b":null}],"s":"tab\there \"quoted\" é ☃"}}"#,
            ]),
        ) {
            let payload = JsonObject::from_json_text(payload).expect("a valid payload");
            let body = EventBody {
                session_id: &session_id,
                event_id: &event_id,
                seq,
                event_type: [EventKind::UserSpeech, EventKind::BotSpeech, EventKind::System]
                    [kind as usize],
                payload: &payload,
                timestamp: Timestamp::from_millis(millis).expect("in range"),
            };
            prop_assert_eq!(
                String::from_utf8(body.to_json()).expect("UTF-8"),
                String::from_utf8(serde_text(&body)).expect("UTF-8")
            );
        }
    }
}
