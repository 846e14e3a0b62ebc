//! The bodies of `/webhooks`: what the routes answer, what they read (checked field by field
//! here, described for OpenAPI by the request types), and the readers of those fields.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::super::error::{AppError, FieldError};
use crate::domain::Timestamp;
use crate::repo::webhooks::{Attempt, Delivery, Endpoint};

pub(super) fn millis_text(millis: i64) -> Option<String> {
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
    pub(super) fn new(e: Endpoint, with_secret: bool) -> Self {
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
    pub(super) webhooks: Vec<EndpointBody>,
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
    pub(super) fn of(e: &Endpoint) -> Self {
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
    pub(super) deliveries: Vec<DeliveryBody>,
    /// Pass as `after` for the next (older) page; `null` on the last page.
    pub(super) next_cursor: Option<String>,
}

/// What `recover` queued again.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookRecovery)]
pub struct RecoverBody {
    pub(super) requeued: u64,
}

/// The test message queued.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WebhookTest)]
pub struct TestBody {
    pub(super) message_id: String,
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
pub(super) fn object(body: &[u8], allowed: &[&str]) -> Result<Map<String, Value>, AppError> {
    // Read as strictly as every other body first: duplicate keys and integers beyond 64 bits are
    // `malformed_json`, anything but an object `body_not_object`.
    crate::api::fields::Fields::read(body)?;
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        AppError::bad_request("malformed_json", format!("the body is not JSON: {e}"))
    })?;
    let Value::Object(map) = value else {
        return Err(AppError::bad_request(
            "body_not_object",
            "the body must be a JSON object",
        ));
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

pub(super) fn string(
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

pub(super) fn strings(
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
pub(super) fn filter(map: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Value> {
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
