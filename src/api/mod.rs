//! The HTTP API: routes, handlers and the extractors and bodies they use.

mod auth;
mod dto;
mod error;
mod extract;
mod health;
mod json;
mod limit;
mod list_query;
mod observe;
pub mod openapi;
mod query;

pub use auth::{AuthPolicy, require_api_key};
pub use error::{AppError, FieldError};
pub use health::StorageHealth;
pub use limit::{RateLimit, rate_limit};
pub use observe::{REQUEST_ID_HEADER, current_request_id, observe};

use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::domain::Timestamp;
use crate::service::{self, SessionService, Written};
use error::Problem;
use extract::{JsonObjectBody, OptionalJsonObjectBody, PathParams};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub service: SessionService,
    pub max_body_bytes: usize,
}

/// The API's routes, with problem-JSON answers for unknown routes and wrong methods. With API
/// keys configured, the session routes (and `/metrics`, if the policy says so) need one; the
/// rest stays open. With a rate limit, every route but `/health` and `/ready` is limited, after
/// the key check (so a client with a key is counted by its key).
pub fn router(state: AppState, auth: AuthPolicy, limit: Option<RateLimit>) -> Router {
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
            get(get_session).delete(delete_session),
        )
        .route(
            "/sessions/{session_id}/events",
            post(add_event).get(list_events),
        )
        .route("/sessions/{session_id}/events:batch", post(add_events))
        .route("/sessions/{session_id}/events/{event_id}", get(get_event))
        .route("/sessions/{session_id}/complete", post(complete_session));
    let metrics = Router::new().route("/metrics", get(metrics));
    // Writes that fail on storage make `/ready` answer 503 until one succeeds.
    let storage_health = StorageHealth::default();
    let sessions = sessions.route_layer(from_fn_with_state(
        storage_health.clone(),
        health::track_writes,
    ));
    let probes = Router::new()
        .route(
            "/ready",
            get(ready).route_layer(from_fn_with_state(storage_health, health::ready_gate)),
        )
        .route("/health", get(health));
    let public = Router::new().route("/openapi.json", get(openapi_json));
    Router::new()
        .merge(guard(sessions, true))
        .merge(guard(metrics, auth.protect_metrics))
        .merge(guard(public, false))
        .merge(probes)
        .fallback(|| async { AppError::not_found("route_not_found", "no such route") })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .with_state(state)
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

#[utoipa::path(
    post,
    path = "/sessions",
    tag = "sessions",
    summary = "Create a session",
    description = "Creates a session, or returns the stored one unchanged when the id exists (language, metadata and startedAt are never overwritten). Of concurrent identical calls exactly one gets 201.",
    request_body(content = dto::CreateSession, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = dto::SessionBody, headers(("Location" = String, description = "Where the created resource can be read"))),
        (status = 200, description = "It existed: the stored session, unchanged", body = dto::SessionBody),
        openapi::InvalidBody,
        (status = 409, description = "The id belongs to a deleted session (`session_deleted`): a late retry of its create must not bring it back", body = Problem, content_type = "application/problem+json"),
        openapi::PayloadTooLarge,
        openapi::NotJson,
        openapi::Unavailable,
    )
)]
async fn create_session(
    State(state): State<AppState>,
    JsonObjectBody(body): JsonObjectBody,
) -> Result<Response, AppError> {
    let defaults = state.service.lifecycle().default_timers;
    let new = dto::CreateSession::parse(body)?.into_new(Timestamp::now(), defaults);
    let (session, written) = state.service.create(new).await?;
    let location = format!("/sessions/{}", session.session_id);
    Ok(respond(written, location, dto::SessionBody::from(&session)))
}

#[utoipa::path(
    get,
    path = "/sessions/{sessionId}",
    tag = "sessions",
    summary = "Read a session with a page of its events",
    description = "The session with one page of its events. Page by number (`page`) or by cursor (`after`, a `nextCursor` from a previous response); both cost the same on any page.",
    params(dto::SessionPath, query::PageQuery),
    responses(
        (status = 200, description = "The session and one page of events", body = dto::SessionPageBody),
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
    let session_id = dto::path_session_id(path.session_id);
    let request = query::page_request(raw_query.as_deref());
    let (session_id, request) = query::both(session_id, request)?;
    let page = state.service.page(&session_id, request).await?;
    Ok(Json(dto::SessionPageBody::from(&page)).into_response())
}

#[utoipa::path(
    post,
    path = "/sessions/{sessionId}/events",
    tag = "sessions",
    summary = "Add an event to a session",
    description = "Adds an event. The eventId is an idempotency key: the same eventId with the same type, payload (and timestamp, if sent) returns the stored event with 200; with other content it is a 409.",
    request_body(content = dto::AddEvent, content_type = "application/json"),
    params(dto::SessionPath),
    responses(
        (status = 201, description = "Stored with the next seq", body = dto::EventBody, headers(("Location" = String, description = "Where the created resource can be read"))),
        (status = 200, description = "A retry: the stored event, unchanged", body = dto::EventBody),
        openapi::InvalidBody,
        openapi::PayloadTooLarge,
        openapi::NotJson,
        openapi::SessionNotFound,
        openapi::SessionDeleted,
        (status = 409, description = "The eventId exists with other content (`event_id_conflict`), or the session has ended (`session_ended`)", body = Problem, content_type = "application/problem+json"),
        openapi::Unavailable,
    )
)]
async fn add_event(
    State(state): State<AppState>,
    PathParams(path): PathParams<dto::SessionPath>,
    JsonObjectBody(body): JsonObjectBody,
) -> Result<Response, AppError> {
    let session_id = dto::path_session_id(path.session_id)?;
    let new = dto::AddEvent::parse(body)?.into_new(session_id, Timestamp::now());
    let (event, written) = state.service.add_event(new).await?;
    let location = format!("/sessions/{}/events/{}", event.session_id, event.event_id);
    Ok(respond(written, location, dto::EventBody::from(&event)))
}

#[utoipa::path(
    post,
    path = "/sessions/{sessionId}/events:batch",
    tag = "sessions",
    summary = "Add a batch of events to a session, atomically",
    description = "Adds 1 to 100 events at once: every new one is stored, with consecutive seqs in request order, or none is. Each event is validated and is idempotent as on `POST /sessions/{sessionId}/events`: an event whose eventId is stored with the same content is a replay, answered as stored; the same eventId twice in one batch is stored once if both are identical (else 400). Nothing is stored, and the answer is 409 naming the offending events in `errors` (`events[2].eventId`), when any eventId is stored with other content (`event_id_conflict`), or when the session has ended, also by its timer, and any event is new (`session_ended`). A retried batch after a lost answer gets 200 with the same seqs.",
    request_body(content = dto::AddEvents, content_type = "application/json"),
    params(dto::SessionPath),
    responses(
        (status = 201, description = "Stored: every event of the request, in its order (new ones with their new seqs, replays as stored)", body = dto::EventBatchBody),
        (status = 200, description = "Every event was a replay: the stored events, unchanged", body = dto::EventBatchBody),
        (status = 400, description = "Invalid fields (`validation_failed`, every violation in `errors`, named by path such as `events[3].eventId`), including 0 or more than 100 events and one eventId twice with different content; malformed JSON (`malformed_json`) or a body that is not an object (`body_not_object`)", body = Problem, content_type = "application/problem+json"),
        openapi::PayloadTooLarge,
        openapi::NotJson,
        openapi::SessionNotFound,
        openapi::SessionDeleted,
        (status = 409, description = "Nothing was stored: some eventIds exist with other content (`event_id_conflict`), or the session has ended and some events are new (`session_ended`); `errors` lists each offending event as `{field: \"events[i].eventId\", message}`", body = Problem, content_type = "application/problem+json"),
        openapi::Unavailable,
    )
)]
async fn add_events(
    State(state): State<AppState>,
    PathParams(path): PathParams<dto::SessionPath>,
    JsonObjectBody(body): JsonObjectBody,
) -> Result<Response, AppError> {
    let (session_id, batch) = query::both(
        dto::path_session_id(path.session_id),
        dto::AddEvents::parse(body),
    )?;
    let new = batch.into_new(&session_id, Timestamp::now());
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
    Ok(Json(dto::EventBody::from(&event)).into_response())
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
        (status = 200, description = "The ended session", body = dto::SessionBody),
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
    let (session_id, end) = query::both(
        dto::path_session_id(path.session_id),
        dto::CompleteSession::parse(body),
    )?;
    let session = state
        .service
        .end(&session_id, end.terminal_status(), end.reason)
        .await?;
    Ok(Json(dto::SessionBody::from(&session)).into_response())
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
    summary = "Read or export a session's events",
    description = "One page of the session's events, without the session: `limit`, `order`, `after` and `page` as on `GET /sessions/{sessionId}`. With `Accept: application/x-ndjson`, every event from `after` (an ascending cursor; default: the first) to the last one stored when the export began, one JSON object per line, streamed in constant memory; only `after` may be given then.",
    params(dto::SessionPath, query::PageQuery),
    responses(
        (status = 200, description = "A page of events, or with Accept: application/x-ndjson, the export", content(
            (dto::EventPageBody = "application/json"),
            (dto::EventBody = "application/x-ndjson"),
        )),
        (status = 400, description = "Invalid path or query parameters (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        openapi::SessionNotFound,
        openapi::SessionDeleted,
        openapi::Unavailable,
    )
)]
async fn list_events(
    State(state): State<AppState>,
    PathParams(path): PathParams<dto::SessionPath>,
    RawQuery(raw_query): RawQuery,
    headers: axum::http::HeaderMap,
) -> Result<Response, AppError> {
    let session_id = dto::path_session_id(path.session_id);
    let request = query::page_request(raw_query.as_deref());
    let (session_id, request) = query::both(session_id, request)?;
    if wants_ndjson(&headers) {
        return export(state, session_id, raw_query.as_deref(), request).await;
    }
    let page = state.service.page(&session_id, request).await?;
    Ok(Json(dto::EventPageBody::from(&page)).into_response())
}

fn wants_ndjson(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.split(';').next().unwrap_or_default().trim() == "application/x-ndjson")
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
    let others: Vec<String> = form_urlencoded::parse(raw_query.unwrap_or_default().as_bytes())
        .map(|(k, _)| k.into_owned())
        .filter(|k| k != "after")
        .collect();
    if !others.is_empty() {
        return Err(AppError::Validation(
            others
                .into_iter()
                .map(|k| {
                    FieldError::new(
                        k,
                        "is not used by an application/x-ndjson export; only after is",
                    )
                })
                .collect(),
        ));
    }
    let after = match request.mode {
        service::PageMode::After(cursor) if cursor.order != crate::domain::Order::Asc => {
            return Err(service::ServiceError::CursorOrderMismatch.into());
        }
        service::PageMode::After(cursor) => cursor.seq,
        service::PageMode::Page(_) => 0,
    };
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
async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics_handle().render(),
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
