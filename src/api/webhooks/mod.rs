//! `/webhooks`: endpoints that receive the change feed as signed messages (Standard Webhooks),
//! their delivery log, replay and tests. Every route needs the `admin` scope.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

mod bodies;

pub use bodies::{CreateWebhook, PatchWebhook, RecoverWebhook};
use bodies::{
    DeliveriesBody, DeliveryBody, EndpointBody, EndpointsBody, RecoverBody, SecretBody, TestBody,
    filter, object, string, strings,
};

use super::error::{AppError, FieldError, Problem};
use super::extract::{JsonBytes, PathParams};
use super::query::no_parameters;
use super::{AppState, openapi};

use crate::domain::Timestamp;
use crate::repo::webhooks::DeliveryStatus;
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
            WebhookError::Disabled(_) => {
                AppError::conflict_items("webhook_disabled", detail, vec![])
            }
            WebhookError::Storage(e) => AppError::from_repo(e),
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
        (status = 400, description = "An unknown query parameter (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        openapi::Unavailable,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    no_parameters(query.as_deref())?;
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
        (status = 400, description = "An unknown query parameter (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        openapi::WebhookNotFound,
        openapi::Unavailable,
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    no_parameters(query.as_deref())?;
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
        (status = 400, description = "An unknown query parameter (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        openapi::WebhookNotFound,
        openapi::Unavailable,
    )
)]
pub async fn secret(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    no_parameters(query.as_deref())?;
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
        openapi::WebhookNotFound,
        openapi::PayloadTooLarge,
        openapi::NotJson,
        openapi::WebhookContended,
        openapi::Unavailable,
    )
)]
pub async fn patch(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
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
        openapi::WebhookNotFound,
        openapi::Unavailable,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
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
        openapi::WebhookNotFound,
        openapi::WebhookContended,
        openapi::Unavailable,
    )
)]
pub async fn rotate(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
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
        openapi::WebhookNotFound,
        openapi::Unavailable,
    )
)]
pub async fn deliveries(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
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
        openapi::WebhookNotFound,
        openapi::WebhookDisabled,
        openapi::PayloadTooLarge,
        openapi::NotJson,
        openapi::Unavailable,
    )
)]
pub async fn recover(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
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
        openapi::WebhookNotFound,
        openapi::WebhookDisabledOrContended,
        openapi::Unavailable,
    )
)]
pub async fn test(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, AppError> {
    let message_id = state.webhooks.send_test(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(TestBody { message_id })).into_response())
}
