//! `/webhooks`: endpoints that receive the change feed as signed messages (Standard Webhooks),
//! their delivery log, replay and tests. Every route needs the `admin` scope.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::error::{AppError, FieldError, Problem};
use super::extract::JsonBytes;
use super::{AppState, openapi};

use crate::domain::Timestamp;
use crate::repo::webhooks::{Attempt, Delivery, DeliveryStatus, Endpoint};
use crate::service::webhooks::{
    DEFAULT_DELIVERIES_LIMIT, EndpointPatch, MAX_DELIVERIES_LIMIT, NewEndpoint, WebhookError,
};

impl From<WebhookError> for AppError {
    fn from(err: WebhookError) -> Self {
        let detail = err.to_string();
        match err {
            WebhookError::NotFound(_) => AppError::not_found("webhook_not_found", detail),
            WebhookError::Invalid(errors) => AppError::Validation(
                errors
                    .into_iter()
                    .map(|(field, message)| FieldError::new(field, message))
                    .collect(),
            ),
            WebhookError::TooMany => AppError::conflict_items("too_many_webhooks", detail, vec![]),
            WebhookError::Contended => {
                AppError::conflict_items("webhook_contended", detail, vec![])
            }
            WebhookError::Storage(e) => AppError::from_repo(e),
        }
    }
}

fn millis_text(millis: i64) -> Option<String> {
    Timestamp::from_millis(millis)
        .ok()
        .map(|t| String::from_utf8_lossy(&t.rfc3339()).into_owned())
}

/// Which sessions an endpoint receives.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookFilter)]
pub struct FilterBody {
    /// Only sessions whose metadata has each of these top-level keys with this value.
    #[schema(value_type = Object, example = json!({"tenant": "acme"}))]
    metadata: Map<String, Value>,
}

/// A webhook endpoint.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Webhook)]
pub struct EndpointBody {
    #[schema(example = "ep_3f1c2d4e5a6b7c8d9e0f1a2b3c4d5e6f")]
    id: String,
    #[schema(example = "https://hooks.example.com/calls")]
    url: String,
    /// The change types it receives.
    #[schema(example = json!(["session.created", "session.ended"]))]
    types: Vec<String>,
    description: Option<String>,
    filter: FilterBody,
    enabled: bool,
    /// Why the service disabled it (410 Gone, or every attempt failing too long).
    disabled_reason: Option<String>,
    /// Since when every attempt has failed (`null`: the last attempt succeeded, or none was
    /// made yet); at WEBHOOK_DISABLE_AFTER_SECONDS the endpoint is disabled.
    #[schema(value_type = Option<String>, format = DateTime)]
    failing_since: Option<String>,
    /// Only in the answer to the create.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    secret: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Option<String>,
}

impl EndpointBody {
    fn new(e: Endpoint, with_secret: bool) -> Self {
        EndpointBody {
            secret: with_secret.then(|| e.secret.expose().to_owned()),
            id: e.id.as_str().to_owned(),
            url: e.url,
            types: e.types,
            description: e.description,
            filter: FilterBody {
                metadata: e.metadata_filter,
            },
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since.and_then(millis_text),
            created_at: millis_text(e.created_at),
        }
    }
}

/// Every endpoint, oldest first.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookList)]
pub struct EndpointsBody {
    webhooks: Vec<EndpointBody>,
}

/// An endpoint's signing secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WebhookSecret)]
pub struct SecretBody {
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    secret: String,
    /// Until when messages are also signed with the secret before the last rotation (`null`:
    /// only this one signs).
    #[schema(value_type = Option<String>, format = DateTime)]
    previous_secret_expires_at: Option<String>,
}

impl SecretBody {
    fn of(e: &Endpoint) -> Self {
        let now = Timestamp::now().millis();
        SecretBody {
            secret: e.secret.expose().to_owned(),
            previous_secret_expires_at: e
                .previous_secret
                .as_ref()
                .filter(|(_, until)| *until > now)
                .and_then(|(_, until)| millis_text(*until)),
        }
    }
}

/// One attempt to deliver a message.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WebhookAttempt)]
pub struct AttemptBody {
    #[schema(value_type = String, format = DateTime)]
    at: Option<String>,
    /// The receiver's status; `null` when there was no answer.
    response_status: Option<u16>,
    duration_ms: u64,
    /// Why there was no answer (timeout, refused connection, a forbidden address).
    error: Option<String>,
}

impl From<Attempt> for AttemptBody {
    fn from(a: Attempt) -> Self {
        AttemptBody {
            at: millis_text(a.at),
            response_status: a.response_status,
            duration_ms: a.duration_ms,
            error: a.error,
        }
    }
}

/// One message to one endpoint, with its attempts.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WebhookDelivery)]
pub struct DeliveryBody {
    /// The `webhook-id` header: the same on every attempt, and for one change on every endpoint.
    #[schema(example = "msg_5b0c2a3f4e1d6c7b8a9f0e1d2c3b4a59")]
    message_id: String,
    #[serde(rename = "type")]
    #[schema(example = "session.ended")]
    kind: String,
    session_id: Option<String>,
    /// `pending`, `succeeded` or `failed`.
    status: &'static str,
    attempts: Vec<AttemptBody>,
    #[schema(value_type = Option<String>, format = DateTime)]
    next_attempt_at: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Option<String>,
}

impl From<Delivery> for DeliveryBody {
    fn from(d: Delivery) -> Self {
        DeliveryBody {
            message_id: d.message_id,
            kind: d.kind,
            session_id: d.session_id,
            status: d.status.as_str(),
            attempts: d.attempts.into_iter().map(AttemptBody::from).collect(),
            next_attempt_at: d.next_attempt_at.and_then(|t| millis_text(t.millis())),
            created_at: millis_text(d.created_at.millis()),
        }
    }
}

/// A page of an endpoint's delivery log, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WebhookDeliveryPage)]
pub struct DeliveriesBody {
    deliveries: Vec<DeliveryBody>,
    /// Pass as `after` for the next (older) page; `null` on the last page.
    next_cursor: Option<String>,
}

/// What `recover` queued again.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookRecovery)]
pub struct RecoverBody {
    requeued: u64,
}

/// The test message queued.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WebhookTest)]
pub struct TestBody {
    message_id: String,
}

/// A new endpoint (the body of `POST /webhooks`; read field by field, described here).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CreateWebhook {
    /// `http` or `https`; no credentials, no fragment; at most 2,048 bytes.
    #[schema(example = "https://hooks.example.com/calls")]
    url: String,
    /// Change types: `session.created`, `session.updated`, `session.ended`, `session.deleted`,
    /// `event.appended` (default: every `session.*` type).
    types: Option<Vec<String>>,
    /// At most 500 characters.
    description: Option<String>,
    /// `{"metadata": {KEY: VALUE}}`: only sessions whose metadata has each pair (at most 16;
    /// values strings, numbers or booleans). Deletions reach every endpoint that takes them.
    #[schema(value_type = Option<Object>, example = json!({"metadata": {"tenant": "acme"}}))]
    filter: Option<Value>,
}

/// A change to an endpoint (the body of `PATCH /webhooks/{id}`): the fields to replace.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PatchWebhook {
    url: Option<String>,
    types: Option<Vec<String>>,
    /// `null` removes it.
    description: Option<String>,
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
    enabled: Option<bool>,
}

/// Since when to send an endpoint's messages again.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RecoverWebhook {
    #[schema(value_type = String, format = DateTime, example = "2026-12-06T08:00:00Z")]
    since: String,
}

/// The body as a JSON object whose members are all among `allowed`.
fn object(body: &[u8], allowed: &[&str]) -> Result<Map<String, Value>, AppError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        AppError::bad_request("malformed_json", format!("the body is not JSON: {e}"))
    })?;
    let Value::Object(map) = value else {
        return Err(AppError::invalid("body", "must be a JSON object"));
    };
    let unknown: Vec<FieldError> = map
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| {
            FieldError::new(
                k.clone(),
                format!("is not a field; fields are {}", allowed.join(", ")),
            )
        })
        .collect();
    if !unknown.is_empty() {
        return Err(AppError::Validation(unknown));
    }
    Ok(map)
}

fn string(
    map: &Map<String, Value>,
    field: &'static str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match map.get(field) {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::new(field, "must be a string"));
            None
        }
    }
}

fn strings(
    map: &Map<String, Value>,
    field: &'static str,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<String>> {
    let value = map.get(field)?;
    let list = value.as_array().and_then(|items| {
        items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
    });
    if list.is_none() {
        errors.push(FieldError::new(field, "must be an array of strings"));
    }
    list
}

/// `filter` as `{"metadata": {...}}`: its metadata object, unchecked (the service checks it).
fn filter(map: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Value> {
    let value = map.get("filter")?;
    match value {
        Value::Null => Some(Value::Object(Map::new())),
        Value::Object(f) if f.keys().all(|k| k == "metadata") => Some(
            f.get("metadata")
                .cloned()
                .unwrap_or(Value::Object(Map::new())),
        ),
        _ => {
            errors.push(FieldError::new(
                "filter",
                "must be {\"metadata\": {KEY: VALUE, …}}",
            ));
            None
        }
    }
}

#[utoipa::path(
    post,
    path = "/webhooks",
    tag = "webhooks",
    summary = "Register a webhook endpoint",
    description = "Registers a receiver for the change feed. `types` defaults to every `session.*` type (`event.appended` only when listed). The URL must be `http` or `https`, and its host must not resolve to a loopback, private, link-local or unspecified address (unless WEBHOOK_ALLOW_PRIVATE_NETWORKS=true). The answer holds the signing secret (`whsec_…`); `GET /webhooks/{id}/secret` gives it again.",
    request_body(content = CreateWebhook, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered", body = EndpointBody),
        (status = 400, description = "An invalid field (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "100 endpoints exist already (`too_many_webhooks`)", body = Problem, content_type = "application/problem+json"),
        openapi::PayloadTooLarge,
        openapi::NotJson,
        openapi::Unavailable,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    JsonBytes(body): JsonBytes,
) -> Result<Response, AppError> {
    let map = object(&body, &["url", "types", "description", "filter"])?;
    let mut errors = Vec::new();
    let new = NewEndpoint {
        url: string(&map, "url", &mut errors),
        types: strings(&map, "types", &mut errors),
        description: string(&map, "description", &mut errors),
        metadata_filter: filter(&map, &mut errors),
    };
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let endpoint = state.webhooks.create(new).await?;
    let location = format!("/webhooks/{}", endpoint.id.as_str());
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(EndpointBody::new(endpoint, true)),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/webhooks",
    tag = "webhooks",
    summary = "List webhook endpoints",
    responses(
        (status = 200, description = "Every endpoint, oldest first (secrets not included)", body = EndpointsBody),
        openapi::Unavailable,
    )
)]
pub async fn list(State(state): State<AppState>) -> Result<Response, AppError> {
    let webhooks = state.webhooks.list().await?;
    Ok(Json(EndpointsBody {
        webhooks: webhooks
            .into_iter()
            .map(|e| EndpointBody::new(e, false))
            .collect(),
    })
    .into_response())
}

#[utoipa::path(
    get,
    path = "/webhooks/{id}",
    tag = "webhooks",
    summary = "Get a webhook endpoint",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint (without its secret)", body = EndpointBody),
        (status = 404, description = "No such endpoint (`webhook_not_found`)", body = Problem, content_type = "application/problem+json"),
        openapi::Unavailable,
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let endpoint = state.webhooks.get(&id).await?;
    Ok(Json(EndpointBody::new(endpoint, false)).into_response())
}

#[utoipa::path(
    get,
    path = "/webhooks/{id}/secret",
    tag = "webhooks",
    summary = "Get a webhook endpoint's signing secret",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The current secret", body = SecretBody),
        (status = 404, description = "No such endpoint (`webhook_not_found`)", body = Problem, content_type = "application/problem+json"),
        openapi::Unavailable,
    )
)]
pub async fn secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let endpoint = state.webhooks.get(&id).await?;
    Ok(Json(SecretBody::of(&endpoint)).into_response())
}

#[utoipa::path(
    patch,
    path = "/webhooks/{id}",
    tag = "webhooks",
    summary = "Change a webhook endpoint",
    description = "Each field given replaces the stored one (`description: null` removes it). `enabled: true` re-enables an endpoint the service disabled; messages queued meanwhile were not kept for it (use `recover` for those it had).",
    params(("id" = String, Path, description = "The endpoint's id")),
    request_body(content = PatchWebhook, content_type = "application/json"),
    responses(
        (status = 200, description = "The endpoint as changed", body = EndpointBody),
        (status = 400, description = "An invalid field (`validation_failed`); nothing changed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint (`webhook_not_found`)", body = Problem, content_type = "application/problem+json"),
        openapi::PayloadTooLarge,
        openapi::NotJson,
        (status = 409, description = "The endpoint kept changing under this request (`webhook_contended`); retry it", body = Problem, content_type = "application/problem+json"),
        openapi::Unavailable,
    )
)]
pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBytes(body): JsonBytes,
) -> Result<Response, AppError> {
    let map = object(&body, &["url", "types", "description", "filter", "enabled"])?;
    let mut errors = Vec::new();
    let description = match map.get("description") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(_) => string(&map, "description", &mut errors).map(Some),
    };
    let enabled = match map.get("enabled") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errors.push(FieldError::new("enabled", "must be true or false"));
            None
        }
    };
    let patch = EndpointPatch {
        url: string(&map, "url", &mut errors),
        types: strings(&map, "types", &mut errors),
        description,
        metadata_filter: filter(&map, &mut errors),
        enabled,
    };
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let endpoint = state.webhooks.update(&id, patch).await?;
    Ok(Json(EndpointBody::new(endpoint, false)).into_response())
}

#[utoipa::path(
    delete,
    path = "/webhooks/{id}",
    tag = "webhooks",
    summary = "Remove a webhook endpoint and its delivery log",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such endpoint (`webhook_not_found`)", body = Problem, content_type = "application/problem+json"),
        openapi::Unavailable,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    state.webhooks.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    post,
    path = "/webhooks/{id}/rotate-secret",
    tag = "webhooks",
    summary = "Give a webhook endpoint a new signing secret",
    description = "Messages are signed with both the new and the old secret (two `v1,` signatures) for WEBHOOK_SECRET_OVERLAP_SECONDS, then with the new one only.",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The new secret", body = SecretBody),
        (status = 404, description = "No such endpoint (`webhook_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The endpoint kept changing under this request (`webhook_contended`); retry it", body = Problem, content_type = "application/problem+json"),
        openapi::Unavailable,
    )
)]
pub async fn rotate(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let endpoint = state.webhooks.rotate(&id).await?;
    Ok(Json(SecretBody::of(&endpoint)).into_response())
}

/// `after` as the order it names.
fn before_order(cursor: &str) -> Option<u64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix("d.")?
        .parse()
        .ok()
}

#[utoipa::path(
    get,
    path = "/webhooks/{id}/deliveries",
    tag = "webhooks",
    summary = "An endpoint's delivery log",
    description = "Messages to this endpoint, newest first, each with every attempt (the newest 50). Kept for WEBHOOK_RETENTION_SECONDS after they were made.",
    params(
        ("id" = String, Path, description = "The endpoint's id"),
        ("status" = Option<String>, Query, description = "`pending`, `succeeded` or `failed`"),
        ("after" = Option<String>, Query, description = "`nextCursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "1 to 100 (default 20)"),
    ),
    responses(
        (status = 200, description = "A page of the log", body = DeliveriesBody),
        (status = 400, description = "An invalid parameter (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint (`webhook_not_found`)", body = Problem, content_type = "application/problem+json"),
        openapi::Unavailable,
    )
)]
pub async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let mut errors = Vec::new();
    let (mut status, mut before, mut limit) = (None, None, DEFAULT_DELIVERIES_LIMIT);
    let mut seen = std::collections::HashSet::new();
    for (key, value) in form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes()) {
        if !seen.insert(key.clone().into_owned()) {
            errors.push(FieldError::new(
                key.into_owned(),
                "must be given at most once",
            ));
            continue;
        }
        match key.as_ref() {
            "status" => match DeliveryStatus::parse(&value) {
                Some(s) => status = Some(s),
                None => errors.push(FieldError::new(
                    "status",
                    "must be pending, succeeded or failed",
                )),
            },
            "after" => match before_order(&value) {
                Some(o) => before = Some(o),
                None => errors.push(FieldError::new(
                    "after",
                    "is not a cursor this service gave out",
                )),
            },
            "limit" => match value.parse::<u32>() {
                Ok(n) if (1..=MAX_DELIVERIES_LIMIT).contains(&n) => limit = n,
                _ => errors.push(FieldError::new(
                    "limit",
                    format!("must be 1 to {MAX_DELIVERIES_LIMIT}"),
                )),
            },
            other => errors.push(FieldError::new(
                other.to_owned(),
                "is not a parameter; parameters are status, after, limit",
            )),
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let found = state
        .webhooks
        .deliveries(&id, status, before, limit)
        .await?;
    let next_cursor = (found.len() == limit as usize)
        .then(|| {
            found
                .last()
                .map(|d| URL_SAFE_NO_PAD.encode(format!("d.{}", d.order)))
        })
        .flatten();
    Ok(Json(DeliveriesBody {
        deliveries: found.into_iter().map(DeliveryBody::from).collect(),
        next_cursor,
    })
    .into_response())
}

#[utoipa::path(
    post,
    path = "/webhooks/{id}/recover",
    tag = "webhooks",
    summary = "Send an endpoint's messages again",
    description = "Queues again every message for this endpoint made at or after `since` that is not pending (delivered or failed), due now and from the start of the retry schedule; each keeps its `webhook-id` and is signed with the current secret. Messages older than WEBHOOK_RETENTION_SECONDS are gone.",
    params(("id" = String, Path, description = "The endpoint's id")),
    request_body(content = RecoverWebhook, content_type = "application/json"),
    responses(
        (status = 202, description = "Queued", body = RecoverBody),
        (status = 400, description = "`since` missing or not RFC 3339 (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint (`webhook_not_found`)", body = Problem, content_type = "application/problem+json"),
        openapi::PayloadTooLarge,
        openapi::NotJson,
        openapi::Unavailable,
    )
)]
pub async fn recover(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBytes(body): JsonBytes,
) -> Result<Response, AppError> {
    let map = object(&body, &["since"])?;
    let since = match map.get("since") {
        Some(Value::String(s)) => {
            Timestamp::parse(s).map_err(|e| AppError::invalid("since", e.0))?
        }
        Some(_) => return Err(AppError::invalid("since", "must be an RFC 3339 date-time")),
        None => return Err(AppError::invalid("since", "is required")),
    };
    let requeued = state.webhooks.recover(&id, since).await?;
    Ok((StatusCode::ACCEPTED, Json(RecoverBody { requeued })).into_response())
}

#[utoipa::path(
    post,
    path = "/webhooks/{id}/test",
    tag = "webhooks",
    summary = "Send a test message to an endpoint",
    description = "Queues a `webhook.test` message (`data: {\"endpointId\"}`), delivered and logged like any other.",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 202, description = "Queued", body = TestBody),
        (status = 404, description = "No such endpoint (`webhook_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The endpoint kept changing under this request (`webhook_contended`); retry it", body = Problem, content_type = "application/problem+json"),
        openapi::Unavailable,
    )
)]
pub async fn test(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let message_id = state.webhooks.send_test(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(TestBody { message_id })).into_response())
}
