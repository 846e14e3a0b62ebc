//! The OpenAPI 3.1 description, generated from the handlers' annotations and these schema types.
//! `openapi.json` in the repository is this document; a test fails when the two differ
//! (regenerate with `cargo run -- --openapi > openapi.json`).
#![allow(dead_code)] // the types below exist for their schemas

use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// A call. `status` is `initiated` on creation, `active` from the first event, then `completed`
/// or `failed`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    #[schema(pattern = r"^[A-Za-z0-9._:-]{1,128}$", example = "call-42")]
    session_id: String,
    status: SessionStatus,
    #[schema(
        example = "en-US",
        max_length = 35,
        pattern = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"
    )]
    language: String,
    /// Free-form JSON object, stored and returned exactly.
    #[schema(value_type = Object)]
    metadata: serde_json::Value,
    #[schema(format = DateTime, example = "2025-12-21T15:30:15.123Z")]
    started_at: String,
    /// `null` until the session ends.
    #[schema(format = DateTime)]
    ended_at: Option<String>,
    /// Exactly the number of stored events; also the highest `seq`.
    #[schema(minimum = 0)]
    event_count: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Initiated,
    Active,
    Completed,
    Failed,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    UserSpeech,
    BotSpeech,
    System,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    Asc,
    Desc,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TerminalStatus {
    Completed,
    Failed,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[schema(example = "call-42")]
    session_id: String,
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "utt-1")]
    event_id: String,
    /// Assigned by the server: 1, 2, 3… in the order events were accepted, never reused.
    #[schema(minimum = 1)]
    seq: u64,
    #[serde(rename = "type")]
    event_type: EventType,
    #[schema(value_type = Object)]
    payload: serde_json::Value,
    /// The client's timestamp if it sent one, else when the server accepted the event.
    #[schema(format = DateTime, example = "2025-12-21T15:30:15.123Z")]
    timestamp: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
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

/// The session's fields, one page of its events, and how to go on.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionPage {
    #[serde(flatten)]
    session: Session,
    events: Vec<Event>,
    pagination: Pagination,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSession {
    #[schema(pattern = r"^[A-Za-z0-9._:-]{1,128}$", example = "call-42")]
    session_id: String,
    #[schema(
        example = "en-US",
        max_length = 35,
        pattern = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"
    )]
    language: String,
    /// A JSON object (default `{}`): nested at most 32 deep, at most 1,000 keys per object, at
    /// most 1 MiB as JSON; no key may contain NUL or start with `$`; integers must fit in 64
    /// signed bits.
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddEvent {
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "utt-1")]
    event_id: String,
    #[serde(rename = "type")]
    event_type: EventType,
    /// A JSON object, with the same rules as a session's `metadata`.
    #[schema(value_type = Object)]
    payload: serde_json::Value,
    /// RFC 3339; stored in UTC with millisecond precision.
    #[schema(format = DateTime)]
    timestamp: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteSession {
    /// Default `completed`.
    status: Option<TerminalStatus>,
}

/// RFC 9457 problem details, served as `application/problem+json`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    #[serde(rename = "type")]
    #[schema(example = "urn:session-service:problem:validation_failed")]
    kind: String,
    #[schema(example = "Bad Request")]
    title: String,
    #[schema(example = 400)]
    status: u16,
    detail: String,
    /// Stable and machine-readable: `validation_failed`, `malformed_json`, `body_not_object`,
    /// `invalid_path`, `session_not_found`, `event_not_found`, `route_not_found`,
    /// `method_not_allowed`, `event_id_conflict`, `session_ended`, `session_already_ended`,
    /// `payload_too_large`, `unsupported_media_type`, `storage_unavailable`, `request_timeout`,
    /// `internal_error`.
    #[schema(example = "validation_failed")]
    code: String,
    /// Every violation, for `validation_failed`.
    errors: Option<Vec<FieldViolation>>,
    /// The request's `x-request-id`.
    request_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FieldViolation {
    #[schema(example = "sessionId")]
    field: String,
    #[schema(example = "may contain only A-Z a-z 0-9 . _ : -")]
    message: String,
}

#[derive(Serialize, ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    status: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Conversation Session Service",
        description = "Records phone-call sessions and their events for a Voice AI platform. \
            Every write is idempotent; every error is RFC 9457 problem JSON \
            (application/problem+json). Unknown routes answer 404 `route_not_found`, wrong \
            methods 405 `method_not_allowed` with an `Allow` header, and any request may answer \
            503 `request_timeout` or 500 `internal_error`. Every response carries `x-request-id`."
    ),
    paths(
        super::create_session,
        super::add_event,
        super::get_session,
        super::get_event,
        super::complete_session,
        super::health,
        super::ready,
        super::metrics,
        super::openapi_json,
    ),
    modifiers(&OptionalApiKeys),
    tags(
        (name = "sessions", description = "Calls and their events"),
        (name = "operations", description = "Health, readiness, metrics and this description"),
    )
)]
pub struct ApiDoc;

/// Documents the optional API keys: a bearer scheme, and the 401 that `/sessions` routes (and
/// `/metrics`, unless METRICS_REQUIRE_KEY=false) answer when keys are configured.
struct OptionalApiKeys;

impl utoipa::Modify for OptionalApiKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Required when the service runs with API_KEYS or API_KEYS_FILE set",
                    ))
                    .build(),
            ),
        );
        let unauthorized = ResponseBuilder::new()
            .description(
                "API keys are configured and the request has no valid `Authorization: Bearer` \
                 key (`unauthorized`, with `WWW-Authenticate`)",
            )
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !(path.starts_with("/sessions") || path == "/metrics") {
                continue;
            }
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                op.responses
                    .responses
                    .insert("401".into(), unauthorized.clone().into());
                op.security = Some(vec![
                    SecurityRequirement::default(),
                    SecurityRequirement::new("apiKey", Vec::<String>::new()),
                ]);
            }
        }
    }
}

/// The document as served at `/openapi.json` and kept in `openapi.json`.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned())
}
