//! The request bodies and paths, read into domain types.
//!
//! A body is read field by field ([`Fields`]) rather than by serde, so that one answer lists
//! every violation; unknown fields are refused.

use utoipa::ToSchema;

use super::schema::FreeFormObject;

use super::response::{EventKind, RedactKind};
use crate::api::error::AppError;
use crate::api::fields::{Fields, REQUIRED};
use crate::domain::{
    EndReason, EventId, EventType, Invalid, JsonObject, Language, List, MAX_BATCH_EVENTS, Member,
    NewEvent, NewSession, PiiKind, Redact, SessionId, TerminalStatus, Timers, Timestamp,
};

/// `POST /sessions`. Creating a session that exists returns it unchanged.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct CreateSession {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9._:-]{1,128}$", example = "call-42")]
    pub session_id: SessionId,
    #[schema(
        value_type = String,
        example = "en-US",
        max_length = 35,
        pattern = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"
    )]
    pub language: Language,
    /// The call's metadata (default `{}`).
    #[schema(value_type = Option<FreeFormObject>, required = false)]
    pub metadata: JsonObject,
    /// The session ends (`failed`, `inactivity_timeout`) this long after its last event, or its
    /// start before the first. `0`: off. Default: `SESSION_INACTIVITY_TIMEOUT_SECONDS`.
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 31_536_000, required = false)]
    pub inactivity_timeout_seconds: Option<u32>,
    /// The session ends (`failed`, `max_duration_exceeded`) this long after its start. `0`: off.
    /// Default: `SESSION_MAX_DURATION_SECONDS`.
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 31_536_000, required = false)]
    pub max_duration_seconds: Option<u32>,
    /// The kinds of personal data replaced in this call's event payloads before they are stored
    /// (`[]`: none), instead of the service's `REDACT`. Set once, here.
    #[schema(value_type = Option<Vec<RedactKind>>, required = false, max_items = 4, nullable = false)]
    pub redact: Option<Redact>,
}

impl CreateSession {
    /// The member read as a list of kinds (`redact`).
    const LIST: List = List {
        name: "redact",
        max: PiiKind::ALL.len(),
    };

    /// Reads the body of `POST /sessions`: every violation at once, malformed JSON first.
    pub fn parse(body: &[u8]) -> Result<Self, AppError> {
        let mut f = Fields::read_with_list(body, Some(Self::LIST))?;
        let session_id = f
            .required_string("sessionId")
            .and_then(|s| f.check("sessionId", SessionId::parse(s.into_owned())));
        let language = f
            .required_string("language")
            .and_then(|s| f.check("language", Language::parse(s.into_owned())));
        let metadata = match f.optional_object("metadata") {
            None => Some(JsonObject::default()),
            Some(object) => object.ok(),
        };
        let inactivity = timer(&mut f, "inactivityTimeoutSeconds");
        let max_duration = timer(&mut f, "maxDurationSeconds");
        let redact = redact(&mut f);
        f.finish()?;
        match (
            session_id,
            language,
            metadata,
            inactivity,
            max_duration,
            redact,
        ) {
            (
                Some(session_id),
                Some(language),
                Some(metadata),
                Some(inactivity_timeout_seconds),
                Some(max_duration_seconds),
                Some(redact),
            ) => Ok(Self {
                session_id,
                language,
                metadata,
                inactivity_timeout_seconds,
                max_duration_seconds,
                redact,
            }),
            _ => Err(unreachable_invalid()),
        }
    }

    /// The session to create, with the server's `defaults` for timers the client did not set.
    pub fn into_new(self, started_at: Timestamp, defaults: Timers) -> NewSession {
        NewSession {
            session_id: self.session_id,
            language: self.language,
            metadata: self.metadata,
            started_at,
            timers: Timers {
                inactivity_seconds: self
                    .inactivity_timeout_seconds
                    .unwrap_or(defaults.inactivity_seconds),
                max_duration_seconds: self
                    .max_duration_seconds
                    .unwrap_or(defaults.max_duration_seconds),
            },
            redact: self.redact,
        }
    }
}

/// The optional `redact` list: `Some(None)` when absent or null, `None` when invalid (recorded).
fn redact(f: &mut Fields<'_>) -> Option<Option<Redact>> {
    const NAME: &str = "redact";
    let max = PiiKind::ALL.len();
    let items = match f.take(NAME) {
        None => return Some(None),
        Some(Member::List { items, count }) if count <= max => items,
        Some(Member::List { count, .. }) => {
            f.invalid(NAME, format!("must name at most {max} kinds, not {count}"));
            return None;
        }
        Some(_) => {
            f.invalid(NAME, "must be an array of kinds: card, email, phone, ssn");
            return None;
        }
    };
    let mut kinds = Vec::with_capacity(items.len());
    let mut valid = true;
    for (i, item) in items.into_iter().enumerate() {
        let field = format!("{NAME}[{i}]");
        let kind = match item {
            Member::Str(name) => f.check(&field, PiiKind::parse(&name)),
            _ => {
                f.invalid(field, "must be one of card, email, phone, ssn");
                None
            }
        };
        match kind {
            Some(kind) => kinds.push(kind),
            None => valid = false,
        }
    }
    valid.then(|| Some(Redact::from_kinds(kinds)))
}

/// An optional timer field: `Some(None)` when absent, `None` when invalid (recorded in `f`).
fn timer(f: &mut Fields<'_>, name: &str) -> Option<Option<u32>> {
    let seconds = match f.take(name) {
        None => return Some(None),
        Some(Member::Int(n)) => n,
        // Anything but an integer breaks the rule as a negative one does, with its message.
        Some(_) => -1,
    };
    f.check(name, Timers::check(seconds)).map(Some)
}

/// `Fields::finish` fails whenever a field is missing, so this is only reached through a bug.
fn unreachable_invalid() -> AppError {
    AppError::Internal("validation passed without a value".into())
}

/// `POST /sessions/{sessionId}/events`. The `eventId` is the idempotency key.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct AddEvent {
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "utt-1")]
    pub event_id: EventId,
    #[schema(rename = "type", value_type = EventKind)]
    pub event_type: EventType,
    /// What happened, e.g. `{"text": "…"}` for speech.
    #[schema(value_type = FreeFormObject)]
    pub payload: JsonObject,
    /// RFC 3339; stored in UTC with millisecond precision. Default: when the server accepts it.
    #[schema(value_type = Option<String>, format = DateTime, required = false)]
    pub timestamp: Option<Timestamp>,
}

impl AddEvent {
    /// Reads the body of `POST /sessions/{sessionId}/events`, in one pass: every violation at
    /// once, malformed JSON anywhere (a syntax error, a duplicate key at any depth, an integer
    /// beyond 64 signed bits) before any of them.
    pub fn parse(body: &[u8]) -> Result<Self, AppError> {
        Self::from_fields(Fields::read(body)?)
    }

    /// The event an object's fields describe, or every violation in them.
    fn from_fields(mut f: Fields<'_>) -> Result<Self, AppError> {
        let event_id = f
            .required_string("eventId")
            .and_then(|s| f.check("eventId", EventId::parse(s.into_owned())));
        let event_type = f
            .required_string("type")
            .and_then(|s| f.check("type", EventType::parse(&s)));
        let payload = f.required_object("payload");
        let timestamp = match f.optional_string("timestamp") {
            None => Some(None),
            Some(t) => f.check("timestamp", Timestamp::parse(&t)).map(Some),
        };
        f.finish()?;
        match (event_id, event_type, payload, timestamp) {
            (Some(event_id), Some(event_type), Some(payload), Some(timestamp)) => Ok(Self {
                event_id,
                event_type,
                payload,
                timestamp,
            }),
            _ => Err(unreachable_invalid()),
        }
    }

    /// Whether `other` says the same as this: type, payload and timestamp (or none).
    fn same_content(&self, other: &AddEvent) -> bool {
        self.event_type == other.event_type
            && self.payload == other.payload
            && self.timestamp == other.timestamp
    }

    pub fn into_new(
        self,
        session_id: SessionId,
        received_at: Timestamp,
        expected_seq: Option<u64>,
    ) -> NewEvent {
        NewEvent {
            session_id,
            event_id: self.event_id,
            event_type: self.event_type,
            payload: self.payload,
            client_timestamp: self.timestamp,
            received_at,
            expected_seq,
            // The service redacts the payload, and says under which rules.
            redact: None,
        }
    }
}

/// `POST /sessions/{sessionId}/events:batch`: stored atomically, in this order. The same
/// `eventId` twice is stored once if both copies are identical.
#[derive(Debug, ToSchema)]
pub struct AddEvents {
    /// 1 to 100 events, each as `POST /sessions/{sessionId}/events` takes it.
    #[schema(min_items = 1, max_items = 100)]
    pub events: Vec<AddEvent>,
}

impl AddEvents {
    /// Reads every event as [`AddEvent::parse`] does, naming each violation by its path
    /// (`events[3].eventId`), all at once; the same `eventId` twice with different content is
    /// one of them.
    pub fn parse(body: &[u8]) -> Result<Self, AppError> {
        let list = List {
            name: "events",
            max: MAX_BATCH_EVENTS,
        };
        let mut f = Fields::read_with_list(body, Some(list))?;
        let mut events = Vec::new();
        match f.take("events") {
            None => f.invalid("events", REQUIRED),
            Some(Member::List { count, .. }) if count == 0 || count > MAX_BATCH_EVENTS => f
                .invalid(
                    "events",
                    format!("must hold 1 to {MAX_BATCH_EVENTS} events, not {count}"),
                ),
            Some(Member::List { items, .. }) => {
                for (i, item) in items.into_iter().enumerate() {
                    let Member::Members(members) = item else {
                        f.invalid(format!("events[{i}]"), "must be an object");
                        continue;
                    };
                    match AddEvent::from_fields(Fields::new(members)) {
                        Ok(event) => events.push((i, event)),
                        Err(AppError::Validation(found)) => {
                            for e in found {
                                f.invalid(format!("events[{i}].{}", e.field), e.message);
                            }
                        }
                        Err(other) => return Err(other),
                    }
                }
            }
            Some(_) => f.invalid("events", "must be an array"),
        }
        for (at, (i, event)) in events.iter().enumerate() {
            let first = events[..at]
                .iter()
                .find(|(_, earlier)| earlier.event_id == event.event_id);
            if let Some((j, earlier)) = first
                && !earlier.same_content(event)
            {
                f.invalid(
                    format!("events[{i}].eventId"),
                    format!("repeats events[{j}].eventId with different content"),
                );
            }
        }
        f.finish()?;
        Ok(Self {
            events: events.into_iter().map(|(_, e)| e).collect(),
        })
    }

    /// The events to add, all received now.
    pub fn into_new(
        self,
        session_id: &SessionId,
        received_at: Timestamp,
        expected_seq: Option<u64>,
    ) -> Vec<NewEvent> {
        self.events
            .into_iter()
            .map(|e| e.into_new(session_id.clone(), received_at, expected_seq))
            .collect()
    }
}

/// `POST /sessions/{sessionId}/complete`, optional: no body ends the session as `completed`.
#[derive(Debug, Default, ToSchema)]
pub struct CompleteSession {
    /// Default `completed`.
    pub status: Option<EndStatus>,
    /// Why it ended, stored as `endedReason`: 1–64 characters of `a-z 0-9 _`, e.g.
    /// `caller_hangup`, `transferred`.
    #[schema(value_type = Option<String>, pattern = "^[a-z0-9_]{1,64}$", example = "caller_hangup")]
    pub reason: Option<EndReason>,
}

impl CompleteSession {
    pub fn parse(body: Option<Fields<'_>>) -> Result<Self, AppError> {
        let Some(mut f) = body else {
            return Ok(Self::default());
        };
        let status = match f.optional_string("status") {
            None => Some(None),
            Some(s) => f.check("status", EndStatus::parse(&s)).map(Some),
        };
        let reason = match f.optional_string("reason") {
            None => Some(None),
            Some(r) => f
                .check("reason", EndReason::parse(r.into_owned()))
                .map(Some),
        };
        f.finish()?;
        match (status, reason) {
            (Some(status), Some(reason)) => Ok(Self { status, reason }),
            _ => Err(unreachable_invalid()),
        }
    }

    pub fn terminal_status(&self) -> TerminalStatus {
        self.status.unwrap_or(EndStatus::Completed).into()
    }
}

/// How a session is ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "snake_case", as = TerminalStatus)]
pub enum EndStatus {
    Completed,
    Failed,
}

impl EndStatus {
    fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "completed" => Ok(EndStatus::Completed),
            "failed" => Ok(EndStatus::Failed),
            _ => Err(Invalid::new("must be \"completed\" or \"failed\"")),
        }
    }
}

impl From<EndStatus> for TerminalStatus {
    fn from(s: EndStatus) -> Self {
        match s {
            EndStatus::Completed => TerminalStatus::Completed,
            EndStatus::Failed => TerminalStatus::Failed,
        }
    }
}

/// A path segment parsed as a session id; invalid ids are a 400 naming the parameter.
pub fn path_session_id(raw: String) -> Result<SessionId, AppError> {
    SessionId::parse(raw).map_err(|e| AppError::invalid("sessionId", e.0))
}

pub fn path_event_id(raw: String) -> Result<EventId, AppError> {
    EventId::parse(raw).map_err(|e| AppError::invalid("eventId", e.0))
}

/// `PATCH /sessions/{sessionId}` (`application/merge-patch+json`, RFC 7396): the changes to the
/// session's metadata. A key set to `null` is removed, an object is merged into the key's object,
/// anything else replaces the key's value; keys not named are kept. Only `metadata` may be
/// patched.
#[derive(Debug, ToSchema)]
#[schema(as = SessionPatch)]
pub struct SessionPatch {
    /// The merge patch for `metadata` (keys to set, or to remove with `null`). Absent or `null`:
    /// nothing changes (metadata itself cannot be removed; remove its keys).
    #[schema(value_type = Option<FreeFormObject>, required = false)]
    pub metadata: JsonObject,
}

impl SessionPatch {
    /// Reads the patch; any field but `metadata` is refused, naming it.
    pub fn parse(mut f: Fields<'_>) -> Result<Self, AppError> {
        let metadata = match f.optional_object("metadata") {
            None => Some(JsonObject::default()),
            Some(object) => object.ok(),
        };
        f.finish()?;
        Ok(Self {
            metadata: metadata.unwrap_or_default(),
        })
    }
}

/// The path of every session route.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path, rename_all = "camelCase")]
pub struct SessionPath {
    /// The session id: 1–128 characters of A–Z a–z 0–9 . _ : - (not . or ..)
    #[param(pattern = r"^[A-Za-z0-9._:-]{1,128}$")]
    pub session_id: String,
}

/// The path of one event.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path, rename_all = "camelCase")]
pub struct EventPath {
    /// The session id: 1–128 characters of A–Z a–z 0–9 . _ : - (not . or ..)
    #[param(pattern = r"^[A-Za-z0-9._:-]{1,128}$")]
    pub session_id: String,
    /// The event id: 1–128 characters of A–Z a–z 0–9 . _ : - (not . or ..)
    #[param(pattern = r"^[A-Za-z0-9._:-]{1,128}$")]
    pub event_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The code of the answer, and the fields it names (in order) if it is a validation error.
    fn answer<T>(read: Result<T, AppError>) -> (&'static str, Vec<String>) {
        match read {
            Ok(_) => ("ok", Vec::new()),
            Err(AppError::Validation(errors)) => (
                "validation_failed",
                errors
                    .into_iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect(),
            ),
            Err(other) => (other.code(), Vec::new()),
        }
    }

    fn single(body: &str) -> (&'static str, Vec<String>) {
        answer(AddEvent::parse(body.as_bytes()))
    }

    fn batch_of(body: &str) -> (&'static str, Vec<String>) {
        answer(AddEvents::parse(body.as_bytes()))
    }

    #[test]
    fn every_violation_is_named_in_field_order() {
        let (code, fields) = single(
            r#"{"extra": 1, "timestamp": 5, "payload": {"$set": 1}, "type": "shout", "eventId": 7}"#,
        );
        assert_eq!(code, "validation_failed");
        assert_eq!(
            fields,
            [
                "eventId: must be a string",
                r#"type: must be one of "user_speech", "bot_speech", "system""#,
                "payload: has a key starting with '$': \"$set\"",
                "timestamp: must be a string",
                "extra: is not a known field",
            ]
        );
        let (_, fields) = single(r#"{"eventId": null, "payload": null}"#);
        assert_eq!(
            fields,
            [
                "eventId: is required",
                "type: is required",
                "payload: is required"
            ]
        );
        assert_eq!(
            single(r#"{"eventId": "e", "type": "system", "payload": {}, "timestamp": null}"#).0,
            "ok"
        );
    }

    #[test]
    fn malformed_json_anywhere_wins_over_every_violation() {
        for body in [
            r#"{"eventId": 1, "eventId": 2}"#,
            r#"{"eventId": 1, "payload": {"a": {"b": 1, "b": 2}}}"#,
            r#"{"eventId": 1, "extra": [{"k": 1, "k": 1}]}"#,
            r#"{"eventId": {"k": 1, "k": 1}}"#,
            r#"{"eventId": 1, "payload": {"n": 99999999999999999999}}"#,
            r#"{"eventId": 1, "payload": {"#,
            r#"[1, 2"#,
            r#"{} {}"#,
        ] {
            assert_eq!(single(body).0, "malformed_json", "{body}");
        }
        assert_eq!(single("[1, 2]").0, "body_not_object");
        assert_eq!(single("\"event\"").0, "body_not_object");
    }

    #[test]
    fn a_batch_names_each_event_by_its_index() {
        let good = r#"{"eventId": "a", "type": "system", "payload": {}}"#;
        let (code, fields) = batch_of(&format!(
            r#"{{"events": [{good}, 5, {{"eventId": "b"}}], "x": 1}}"#
        ));
        assert_eq!(code, "validation_failed");
        assert_eq!(
            fields,
            [
                "events[1]: must be an object",
                "events[2].type: is required",
                "events[2].payload: is required",
                "x: is not a known field",
            ]
        );
        let many = vec![good; MAX_BATCH_EVENTS + 1].join(",");
        let (_, fields) = batch_of(&format!(r#"{{"events": [{many}]}}"#));
        assert_eq!(fields, ["events: must hold 1 to 100 events, not 101"]);
        assert_eq!(
            batch_of(r#"{"events": []}"#).1,
            ["events: must hold 1 to 100 events, not 0"]
        );
        assert_eq!(
            batch_of(r#"{"events": {}}"#).1,
            ["events: must be an array"]
        );
        assert_eq!(batch_of(r#"{"events": null}"#).1, ["events: is required"]);
        assert_eq!(
            batch_of(r#"{"events": [{"k": 1, "k": 2}]}"#).0,
            "malformed_json"
        );
        assert_eq!(batch_of(r#"[]"#).0, "body_not_object");
        assert_eq!(batch_of(&format!(r#"{{"events": [{good}]}}"#)).0, "ok");
    }
}
