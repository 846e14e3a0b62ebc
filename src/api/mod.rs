//! The HTTP API: routes, handlers and the extractors and bodies they use.

pub mod auth;
mod changes;
mod console;
mod dto;
mod error;
mod extract;
mod fields;
mod health;
mod limit;
mod list_query;
mod observe;
pub mod openapi;
mod patch;
mod preconditions;
mod query;
mod request_id;
mod search;
mod stats;
mod stream;
mod webhooks;
pub use stream::LiveStream;

pub use auth::{ApiKeys, AuthPolicy, Scope, require_api_key};
pub use changes::webhook_body;
pub use error::{AppError, FieldError};
pub use health::StorageHealth;
pub use limit::{RateLimit, rate_limit};
pub use observe::Observe;
pub use request_id::{REQUEST_ID_HEADER, current_request_id};

use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::domain::{Event, Timestamp};
use crate::service::{self, SessionService, Written};
use error::Problem;
use extract::{JsonBytes, OptionalJsonObjectBody, PathParams};
use preconditions::{ExpectedSeq, with_etag};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub service: SessionService,
    pub max_body_bytes: usize,
    /// What `/metrics` renders.
    pub metrics: crate::telemetry::Metrics,
    /// Webhook endpoints and their deliveries.
    pub webhooks: crate::service::webhooks::Webhooks,
}

/// The API's routes, with problem-JSON answers for unknown routes and wrong methods. With API
/// keys configured, the session routes (and `/metrics`, if the policy says so) need one; the
/// rest stays open. With a rate limit, every route but `/health` and `/ready` is limited, after
/// the key check (so a client with a key is counted by its key).
pub fn router(
    state: AppState,
    auth: AuthPolicy,
    limit: Option<RateLimit>,
    storage_health: StorageHealth,
) -> Router {
    let require_key = from_fn_with_state(auth.clone(), require_api_key);
    let limited = |routes: Router<AppState>| match &limit {
        Some(limit) => routes.route_layer(from_fn_with_state(limit.clone(), rate_limit)),
        None => routes,
    };
    let guard = |routes: Router<AppState>, protect: bool| {
        let routes = limited(routes);
        if protect && !auth.keys().is_empty() {
            routes.route_layer(require_key.clone())
        } else {
            routes
        }
    };
    let sessions = Router::new()
        .route("/sessions", post(create_session).get(list_sessions))
        .route(
            "/sessions/{session_id}",
            get(get_session)
                .delete(delete_session)
                .patch(patch::patch_session),
        )
        .route(
            "/sessions/{session_id}/events",
            post(add_event).get(list_events),
        )
        .route("/sessions/{session_id}/events:batch", post(add_events))
        .route("/sessions/{session_id}/events/{event_id}", get(get_event))
        .route("/sessions/{session_id}/complete", post(complete_session))
        .route("/changes", get(changes::list_changes))
        .route("/search", get(search::search))
        .route("/stats", get(stats::stats))
        .route("/webhooks", post(webhooks::create).get(webhooks::list))
        .route(
            "/webhooks/{id}",
            get(webhooks::get_one)
                .patch(webhooks::patch)
                .delete(webhooks::delete),
        )
        .route("/webhooks/{id}/secret", get(webhooks::secret))
        .route("/webhooks/{id}/rotate-secret", post(webhooks::rotate))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/webhooks/{id}/recover", post(webhooks::recover))
        .route("/webhooks/{id}/test", post(webhooks::test));
    let metrics = Router::new().route("/metrics", get(metrics));
    // Writes that fail on storage make `/ready` answer 503 until one succeeds (the `observe`
    // layer records how each write ended in `storage_health`).
    let probes = Router::new()
        .route(
            "/ready",
            get(ready).route_layer(from_fn_with_state(storage_health, health::ready_gate)),
        )
        .route("/health", get(health));
    // The console is a page and its files, not an API: public (the page holds no data; the
    // calls it makes need the key) and not in openapi.json.
    let public = Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/", get(console::root))
        .route(console::CONSOLE_PATH, get(console::page))
        .route("/console/{file}", get(console::asset));
    Router::new()
        .merge(guard(sessions, true))
        .merge(guard(metrics, auth.protect_metrics))
        .merge(guard(public, false))
        .merge(probes)
        .fallback(|| async { AppError::not_found("route_not_found", "no such route") })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .with_state(state)
}

/// The path's session id and what else the request asked for, every violation of both in one
/// 400.
fn in_session<T>(
    path: dto::SessionPath,
    rest: Result<T, AppError>,
) -> Result<(crate::domain::SessionId, T), AppError> {
    query::both(dto::path_session_id(path.session_id), rest)
}

fn status_for(written: Written) -> StatusCode {
    match written {
        Written::Created => StatusCode::CREATED,
        Written::Existing => StatusCode::OK,
    }
}

/// A JSON response, with `Location` when something was created.
fn respond(written: Written, location: String, body: impl serde::Serialize) -> Response {
    let mut response = (status_for(written), Json(body)).into_response();
    if written == Written::Created
        && let Ok(value) = HeaderValue::from_str(&location)
    {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// An event as the answer: its JSON written directly ([`dto::EventBody::to_json`]), with
/// `Location` when it was created.
fn respond_event(written: Written, event: &Event) -> Response {
    let body = dto::EventBody::from(event).to_json();
    let mut response = Response::new(axum::body::Body::from(body));
    *response.status_mut() = status_for(written);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if written == Written::Created {
        let (session, id) = (event.session_id.as_str(), event.event_id.as_str());
        let mut location = String::with_capacity(18 + session.len() + id.len());
        for part in ["/sessions/", session, "/events/", id] {
            location.push_str(part);
        }
        if let Ok(value) = HeaderValue::try_from(location) {
            headers.insert(header::LOCATION, value);
        }
    }
    response
}

#[utoipa::path(
    post,
    path = "/sessions",
    tag = "sessions",
    summary = "Create a session",
    description = "Creates a session, or returns the stored one unchanged when the id exists (language, metadata and startedAt are never overwritten). Of concurrent identical calls exactly one gets 201.",
    request_body(content = dto::CreateSession, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = dto::SessionBody, headers(("Location" = String, description = "Where the created resource can be read"), ("ETag" = String, description = "The session's version: any change to it gives another"))),
        (status = 200, description = "It existed: the stored session, unchanged", body = dto::SessionBody, headers(("ETag" = String, description = "The session's version: any change to it gives another"))),
        openapi::InvalidBody,
        (status = 409, description = "The id belongs to a deleted session (`session_deleted`): a late retry of its create must not bring it back", body = Problem, content_type = "application/problem+json"),
        openapi::PayloadTooLarge,
        openapi::NotJson,
        openapi::Unavailable,
    )
)]
async fn create_session(
    State(state): State<AppState>,
    JsonBytes(body): JsonBytes,
) -> Result<Response, AppError> {
    let defaults = state.service.lifecycle().default_timers;
    let new = dto::CreateSession::parse(&body)?.into_new(Timestamp::now(), defaults);
    let (session, written) = state.service.create(new).await?;
    let location = format!("/sessions/{}", session.session_id);
    let response = respond(written, location, dto::SessionBody::from(&session));
    Ok(with_etag(response, &session))
}

#[utoipa::path(
    get,
    path = "/sessions/{sessionId}",
    tag = "sessions",
    summary = "Read a session with a page of its events",
    description = "The session with one page of its events. Page by number (`page`) or by cursor (`after`, a `nextCursor` from a previous response); both cost the same on any page.",
    params(dto::SessionPath, query::PageQuery),
    responses(
        (status = 200, description = "The session and one page of events", body = dto::SessionPageBody, headers(("ETag" = String, description = "The session's version: any change to it gives another"))),
        (status = 400, description = "Invalid path or query parameters (`validation_failed`), including page together with after", body = Problem, content_type = "application/problem+json"),
        openapi::SessionNotFound,
        openapi::SessionDeleted,
        openapi::Unavailable,
    )
)]
async fn get_session(
    State(state): State<AppState>,
    PathParams(path): PathParams<dto::SessionPath>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, AppError> {
    let (session_id, request) = in_session(path, query::page_request(raw_query.as_deref()))?;
    let page = state.service.page(&session_id, request).await?;
    let response = Json(dto::SessionPageBody::from(&page)).into_response();
    Ok(with_etag(response, &page.session))
}

#[utoipa::path(
    post,
    path = "/sessions/{sessionId}/events",
    tag = "sessions",
    summary = "Add an event to a session",
    description = "Adds an event. The eventId is an idempotency key: the same eventId with the same type, payload (and timestamp, if sent) returns the stored event with 200; with other content it is a 409.",
    request_body(content = dto::AddEvent, content_type = "application/json"),
    params(dto::SessionPath, ("Expected-Seq" = Option<u64>, Header, nullable = false, minimum = 0, description = "Append only if the session's last seq is this one (0: no events yet); else 412 `seq_mismatch` with `currentSeq`, nothing stored. A replay is answered as stored whatever it says.")),
    responses(
        (status = 201, description = "Stored with the next seq", body = dto::EventBody, headers(("Location" = String, description = "Where the created resource can be read"))),
        (status = 200, description = "A retry: the stored event, unchanged", body = dto::EventBody),
        openapi::InvalidBody,
        openapi::PayloadTooLarge,
        openapi::NotJson,
        openapi::SessionNotFound,
        openapi::SessionDeleted,
        (status = 409, description = "The eventId exists with other content (`event_id_conflict`), or the session has ended (`session_ended`)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "`Expected-Seq` was sent and the session's last seq is another one (`seq_mismatch`, the last seq in `currentSeq`); nothing was stored", body = Problem, content_type = "application/problem+json"),
        openapi::Unavailable,
    )
)]
async fn add_event(
    State(state): State<AppState>,
    PathParams(path): PathParams<dto::SessionPath>,
    ExpectedSeq(expected): ExpectedSeq,
    JsonBytes(body): JsonBytes,
) -> Result<Response, AppError> {
    let session_id = dto::path_session_id(path.session_id)?;
    let new = dto::AddEvent::parse(&body)?.into_new(session_id, Timestamp::now(), expected);
    let (event, written) = state.service.add_event(new).await?;
    Ok(respond_event(written, &event))
}

#[utoipa::path(
    post,
    path = "/sessions/{sessionId}/events:batch",
    tag = "sessions",
    summary = "Add a batch of events to a session, atomically",
    description = "Adds 1 to 100 events at once: every new one is stored, with consecutive seqs in request order, or none is. Each event is validated and is idempotent as on `POST /sessions/{sessionId}/events`: an event whose eventId is stored with the same content is a replay, answered as stored; the same eventId twice in one batch is stored once if both are identical (else 400). Nothing is stored, and the answer is 409 naming the offending events in `errors` (`events[2].eventId`), when any eventId is stored with other content (`event_id_conflict`), or when the session has ended, also by its timer, and any event is new (`session_ended`). A retried batch after a lost answer gets 200 with the same seqs.",
    request_body(content = dto::AddEvents, content_type = "application/json"),
    params(dto::SessionPath, ("Expected-Seq" = Option<u64>, Header, nullable = false, minimum = 0, description = "Append only if the session's last seq is this one (0: no events yet); else 412 `seq_mismatch` with `currentSeq`, nothing stored. A replay is answered as stored whatever it says.")),
    responses(
        (status = 201, description = "Stored: every event of the request, in its order (new ones with their new seqs, replays as stored)", body = dto::EventBatchBody),
        (status = 200, description = "Every event was a replay: the stored events, unchanged", body = dto::EventBatchBody),
        (status = 400, description = "Invalid fields (`validation_failed`, every violation in `errors`, named by path such as `events[3].eventId`), including 0 or more than 100 events and one eventId twice with different content; malformed JSON (`malformed_json`) or a body that is not an object (`body_not_object`)", body = Problem, content_type = "application/problem+json"),
        openapi::PayloadTooLarge,
        openapi::NotJson,
        openapi::SessionNotFound,
        openapi::SessionDeleted,
        (status = 409, description = "Nothing was stored: some eventIds exist with other content (`event_id_conflict`), or the session has ended and some events are new (`session_ended`); `errors` lists each offending event as `{field: \"events[i].eventId\", message}`", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "`Expected-Seq` was sent and the session's last seq is another one (`seq_mismatch`, the last seq in `currentSeq`); nothing was stored", body = Problem, content_type = "application/problem+json"),
        openapi::Unavailable,
    )
)]
async fn add_events(
    State(state): State<AppState>,
    PathParams(path): PathParams<dto::SessionPath>,
    ExpectedSeq(expected): ExpectedSeq,
    JsonBytes(body): JsonBytes,
) -> Result<Response, AppError> {
    let (session_id, batch) = in_session(path, dto::AddEvents::parse(&body))?;
    let new = batch.into_new(&session_id, Timestamp::now(), expected);
    let (events, written) = state.service.add_events(new).await?;
    let body = dto::EventBatchBody::from(events.as_slice());
    Ok((status_for(written), Json(body)).into_response())
}

#[utoipa::path(
    get,
    path = "/sessions/{sessionId}/events/{eventId}",
    tag = "sessions",
    summary = "Read one event",
    description = "One event of a session, by its eventId.",
    params(dto::EventPath),
    responses(
        (status = 200, description = "The event", body = dto::EventBody),
        (status = 400, description = "Invalid ids (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event or session (`event_not_found`)", body = Problem, content_type = "application/problem+json"),
        openapi::SessionDeleted,
        openapi::Unavailable,
    )
)]
async fn get_event(
    State(state): State<AppState>,
    PathParams(path): PathParams<dto::EventPath>,
) -> Result<Response, AppError> {
    let (session_id, event_id) = query::both(
        dto::path_session_id(path.session_id),
        dto::path_event_id(path.event_id),
    )?;
    let event = state.service.event(&session_id, &event_id).await?;
    Ok(respond_event(Written::Existing, &event))
}

#[utoipa::path(
    post,
    path = "/sessions/{sessionId}/complete",
    tag = "sessions",
    summary = "End a session",
    description = "Ends the session (the body is optional; status defaults to completed). Repeating it returns the same session with the same endedAt.",
    request_body(content = Option<dto::CompleteSession>, content_type = "application/json",
        description = "Optional: no body ends the session as completed"),
    params(dto::SessionPath),
    responses(
        (status = 200, description = "The ended session", body = dto::SessionBody, headers(("ETag" = String, description = "The session's version: any change to it gives another"))),
        openapi::InvalidBody,
        openapi::PayloadTooLarge,
        openapi::NotJson,
        openapi::SessionNotFound,
        openapi::SessionDeleted,
        (status = 409, description = "The session ended with the other status (`session_already_ended`)", body = Problem, content_type = "application/problem+json"),
        openapi::Unavailable,
    )
)]
async fn complete_session(
    State(state): State<AppState>,
    PathParams(path): PathParams<dto::SessionPath>,
    OptionalJsonObjectBody(body): OptionalJsonObjectBody,
) -> Result<Response, AppError> {
    let (session_id, end) = in_session(path, dto::CompleteSession::parse(body))?;
    let session = state
        .service
        .end(&session_id, end.terminal_status(), end.reason)
        .await?;
    let response = Json(dto::SessionBody::from(&session)).into_response();
    Ok(with_etag(response, &session))
}

#[utoipa::path(
    get,
    path = "/sessions",
    tag = "sessions",
    summary = "List sessions",
    description = "Sessions, newest first by default, filtered by status, start time, end reason and top-level metadata values (`metadata.KEY=VALUE`, up to 5, e.g. `metadata.userId=u-17`). Paged by cursor (`after`). One request examines at most 5,000 candidate sessions: when selective filters (metadata, endedReason) match fewer than `limit` of them, the page comes back short, possibly empty, with `hasMore: true` and a `nextCursor` to go on.",
    params(list_query::ListQuery),
    responses(
        (status = 200, description = "One page of sessions", body = dto::SessionListBody),
        (status = 400, description = "Invalid or unknown query parameters (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        openapi::Unavailable,
    )
)]
async fn list_sessions(
    State(state): State<AppState>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, AppError> {
    let request = list_query::list_request(raw_query.as_deref())?;
    let list = state.service.list(request).await?;
    Ok(Json(dto::SessionListBody::from(&list)).into_response())
}

#[utoipa::path(
    delete,
    path = "/sessions/{sessionId}",
    tag = "sessions",
    summary = "Erase a session",
    description = "Erases the session and all its events. From the moment it answers, every route for this id answers 410 `session_deleted`, and creating a session with this id answers 409 `session_deleted`, until the tombstone expires (TOMBSTONE_RETENTION_SECONDS). Repeating it is 204.",
    params(dto::SessionPath),
    responses(
        (status = 204, description = "Erased (or it already was)"),
        (status = 400, description = "Invalid session id (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        openapi::SessionNotFound,
        openapi::Unavailable,
    )
)]
async fn delete_session(
    State(state): State<AppState>,
    PathParams(path): PathParams<dto::SessionPath>,
) -> Result<Response, AppError> {
    let session_id = dto::path_session_id(path.session_id)?;
    state.service.delete(&session_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// What an export sends next.
enum Next {
    Chunk(Vec<crate::domain::Event>, u64),
    Failed,
    Done,
}

/// Events per storage read while exporting: what the export holds in memory at a time.
const EXPORT_CHUNK: u32 = 500;

#[utoipa::path(
    get,
    path = "/sessions/{sessionId}/events",
    tag = "sessions",
    summary = "Read, export or follow a session's events",
    description = "One page of the session's events, without the session: `limit`, `order`, `after` and `page` as on `GET /sessions/{sessionId}`.\n\nWith `Accept: application/x-ndjson`: every event from `after` (an ascending cursor; default: the first) to the last one stored when the export began, one JSON object per line, streamed in constant memory; only `after` may be given then.\n\nWith `Accept: text/event-stream`: the live transcript as Server-Sent Events. It starts after the seq in `Last-Event-ID`, else after `after`, else at the first event; sends `retry: 2000`, then each stored event as `id: <seq>`, `event: event`, `data: <event JSON>`; then `event: caught-up` with `data: {\"seq\": N}` once; then new events as they are stored (by any instance); a `: keepalive` comment every STREAM_KEEPALIVE_SECONDS while idle. When the session ends: every event up to the last, then `event: session-ended` with the session JSON, and the stream closes (so does a stream opened on an ended session, after its replay). When it is erased: `event: session-deleted`, and the stream closes. A client that resumes with the last `id` it saw receives every event exactly once, in seq order. Only `after` may be given as a query parameter.",
    params(
        dto::SessionPath,
        query::PageQuery,
        ("Last-Event-ID" = Option<String>, Header, nullable = false, description = "With `Accept: text/event-stream`: the `id` (seq) of the last event received; the stream resumes after it"),
    ),
    responses(
        (status = 200, description = "A page of events; with Accept: application/x-ndjson, the export; with Accept: text/event-stream, the live transcript", content(
            (dto::EventPageBody = "application/json"),
            (dto::EventBody = "application/x-ndjson"),
            (String = "text/event-stream", example = json!("retry: 2000\n\nid: 1\nevent: event\ndata: {\"sessionId\":\"call-1\",\"eventId\":\"e-1\",\"seq\":1,\"type\":\"user_speech\",\"payload\":{\"text\":\"Hello\"},\"timestamp\":\"2026-12-01T10:00:00.000Z\"}\n\nevent: caught-up\ndata: {\"seq\":1}\n\n")),
        )),
        (status = 400, description = "Invalid path or query parameters or Last-Event-ID (`validation_failed`), including a start past the last event", body = Problem, content_type = "application/problem+json"),
        openapi::SessionNotFound,
        openapi::SessionDeleted,
        (status = 503, description = "Storage is unavailable (`storage_unavailable`), or MAX_STREAMS live streams are open (`too_many_streams`); retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    )
)]
async fn list_events(
    State(state): State<AppState>,
    PathParams(path): PathParams<dto::SessionPath>,
    RawQuery(raw_query): RawQuery,
    headers: axum::http::HeaderMap,
) -> Result<Response, AppError> {
    let (session_id, request) = in_session(path, query::page_request(raw_query.as_deref()))?;
    if accepts(&headers, "text/event-stream") {
        return stream::follow(state, session_id, raw_query.as_deref(), request, &headers).await;
    }
    if accepts(&headers, "application/x-ndjson") {
        return export(state, session_id, raw_query.as_deref(), request).await;
    }
    let page = state.service.page(&session_id, request).await?;
    Ok(Json(dto::EventPageBody::from(&page)).into_response())
}

/// Whether `Accept` lists this media type.
fn accepts(headers: &axum::http::HeaderMap, media_type: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.split(';').next().unwrap_or_default().trim() == media_type)
}

/// Streams the events as NDJSON, one storage read of [`EXPORT_CHUNK`] events at a time. The first
/// read happens before the answer starts, so an unknown or erased session is a proper 404 / 410;
/// a storage failure later can only cut the stream short (the client sees a truncated body).
async fn export(
    state: AppState,
    session_id: crate::domain::SessionId,
    raw_query: Option<&str>,
    request: service::PageRequest,
) -> Result<Response, AppError> {
    let after = query::ascending_after(raw_query, &request, "an application/x-ndjson export")?;
    let service = state.service.clone();
    let first = match service
        .export_chunk(&session_id, after, None, EXPORT_CHUNK)
        .await?
    {
        Some((events, up_to)) => Next::Chunk(events, up_to),
        None => Next::Done,
    };
    let stream = futures_util::stream::unfold(first, move |next| {
        let service = service.clone();
        let session_id = session_id.clone();
        async move {
            let (events, up_to) = match next {
                Next::Done => return None,
                Next::Failed => {
                    let cut = std::io::Error::other("storage failed during the export");
                    return Some((Err(cut), Next::Done));
                }
                Next::Chunk(events, up_to) => (events, up_to),
            };
            let mut lines = Vec::with_capacity(events.len() * 256);
            for event in &events {
                // Serializing our own types into memory cannot fail.
                let _ = serde_json::to_writer(&mut lines, &dto::EventBody::from(event));
                lines.push(b'\n');
            }
            let last = events.last().map_or(up_to, |e| e.seq);
            let following = if last >= up_to {
                Next::Done
            } else {
                match service
                    .export_chunk(&session_id, last, Some(up_to), EXPORT_CHUNK)
                    .await
                {
                    Ok(Some((events, up_to))) => Next::Chunk(events, up_to),
                    Ok(None) => Next::Done,
                    Err(e) => {
                        tracing::error!(error = %e, "an export was cut short by a storage error");
                        Next::Failed
                    }
                }
            };
            Some((Ok(axum::body::Bytes::from(lines)), following))
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    summary = "Liveness",
    description = "The process is up.",
    responses(
        (status = 200, description = "Up", body = dto::StatusBody),
    )
)]
async fn health() -> Json<dto::StatusBody> {
    Json(dto::StatusBody { status: "ok" })
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "Prometheus metrics in the text exposition format.",
    responses(
        (status = 200, description = "Metrics", body = String, content_type = "text/plain"),
    )
)]
async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    summary = "Readiness",
    description = "Storage answers.",
    responses(
        (status = 200, description = "Ready", body = dto::StatusBody),
        (status = 503, description = "Storage does not answer (`storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn ready(State(state): State<AppState>) -> Result<Json<dto::StatusBody>, AppError> {
    state.service.ready().await.map_err(AppError::from_repo)?;
    Ok(Json(dto::StatusBody { status: "ready" }))
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    summary = "This OpenAPI document",
    description = "This description (OpenAPI 3.1).",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json"))
)]
async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi::document(),
    )
        .into_response()
}
