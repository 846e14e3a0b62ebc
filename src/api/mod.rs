//! The HTTP API: routes, handlers and the extractors and bodies they use.

mod dto;
mod extract;
mod json;
mod observe;
mod query;

pub use observe::{REQUEST_ID_HEADER, current_request_id, observe};

use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::AppError;
use crate::service::{SessionService, Written};
use extract::{JsonObjectBody, OptionalJsonObjectBody, PathParams};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub service: SessionService,
    pub max_body_bytes: usize,
}

/// The API's routes, with problem-JSON answers for unknown routes and wrong methods.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/sessions", post(create_session))
        .route("/sessions/{session_id}", get(get_session))
        .route("/sessions/{session_id}/events", post(add_event))
        .route("/sessions/{session_id}/events/{event_id}", get(get_event))
        .route("/sessions/{session_id}/complete", post(complete_session))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
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

async fn create_session(
    State(state): State<AppState>,
    JsonObjectBody(body): JsonObjectBody,
) -> Result<Response, AppError> {
    let new = dto::new_session(body)?;
    let (session, written) = state.service.create(new).await?;
    let location = format!("/sessions/{}", session.session_id);
    Ok(respond(written, location, dto::SessionBody::from(&session)))
}

async fn get_session(
    State(state): State<AppState>,
    PathParams(session_id): PathParams<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, AppError> {
    let session_id = dto::path_session_id(session_id);
    let request = query::page_request(raw_query.as_deref());
    let (session_id, request) = query::both(session_id, request)?;
    let page = state.service.page(&session_id, request).await?;
    Ok(Json(dto::SessionPageBody::from(&page)).into_response())
}

async fn add_event(
    State(state): State<AppState>,
    PathParams(session_id): PathParams<String>,
    JsonObjectBody(body): JsonObjectBody,
) -> Result<Response, AppError> {
    let session_id = dto::path_session_id(session_id)?;
    let new = dto::new_event(session_id, body)?;
    let (event, written) = state.service.add_event(new).await?;
    let location = format!("/sessions/{}/events/{}", event.session_id, event.event_id);
    Ok(respond(written, location, dto::EventBody::from(&event)))
}

async fn get_event(
    State(state): State<AppState>,
    PathParams((session_id, event_id)): PathParams<(String, String)>,
) -> Result<Response, AppError> {
    let (session_id, event_id) = query::both(
        dto::path_session_id(session_id),
        dto::path_event_id(event_id),
    )?;
    let event = state.service.event(&session_id, &event_id).await?;
    Ok(Json(dto::EventBody::from(&event)).into_response())
}

async fn complete_session(
    State(state): State<AppState>,
    PathParams(session_id): PathParams<String>,
    OptionalJsonObjectBody(body): OptionalJsonObjectBody,
) -> Result<Response, AppError> {
    let (session_id, status) =
        query::both(dto::path_session_id(session_id), dto::terminal_status(body))?;
    let session = state.service.end(&session_id, status).await?;
    Ok(Json(dto::SessionBody::from(&session)).into_response())
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics_handle().render(),
    )
        .into_response()
}

async fn ready(State(state): State<AppState>) -> Result<Json<serde_json::Value>, AppError> {
    state.service.ready().await.map_err(|e| {
        AppError::from_repo(e, || AppError::Internal("ping returned not found".into()))
    })?;
    Ok(Json(serde_json::json!({ "status": "ready" })))
}
