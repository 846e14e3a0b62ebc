//! Errors at the HTTP edge, and the one place that knows status codes and wire `code`s.
//!
//! The policy, layer by layer (inner layers know nothing of the outer ones):
//! - `domain::Invalid`: why one value was refused (a message, no field name). Built by the
//!   validating constructors; the API attaches the field or parameter name ([`FieldError`]).
//! - `repo::RepoError`: what storage reported: `NotFound`, `Unavailable` (retry may help) or
//!   `Backend`. Each backend maps its driver's errors into it; no driver type crosses the trait.
//!   Outcomes that are not failures (a replay, an ended session) are values, not errors.
//! - `service::ServiceError`: what went wrong in the domain (`SessionNotFound`,
//!   `EventIdConflict`, `SessionEnded`, …, `Storage(RepoError)`), with no HTTP in it.
//! - [`AppError`] (here): what extractors and handlers return. [`From<ServiceError>`] below is
//!   the single mapping of every domain failure to a status, a stable snake_case `code` and a
//!   detail; request parsing builds `AppError`s directly, because only it knows field names.
//! - Startup (`config::ConfigError`, `app::StartupError`) never reaches a client: `main` prints
//!   it and exits non-zero.
//!
//! Who logs: nobody below this layer logs an error it returns. [`AppError`]'s `IntoResponse` logs
//! each answer once, inside the request's span: a 5xx at `error` with its whole source chain, a
//! 4xx at `debug`. The client gets problem JSON (RFC 9457) with a generic detail for a 5xx, never
//! driver text; a storage outage is a 503 with `Retry-After`, not a 500.

use std::error::Error as _;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::request_id::current_request_id;
use crate::repo::{BoxError, RepoError};
use crate::service::ServiceError;

/// One violation in a request, named by the field (or query parameter) it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = FieldViolation)]
pub struct FieldError {
    #[schema(example = "sessionId")]
    pub field: String,
    #[schema(example = "may contain only A-Z a-z 0-9 . _ : -")]
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request's fields or parameters are invalid; lists every violation at once.
    #[error("request validation failed")]
    Validation(Vec<FieldError>),
    /// The request cannot be read at all (malformed JSON, a bad cursor, …).
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("{detail}")]
    NotFound { code: &'static str, detail: String },
    /// The resource existed and was erased.
    #[error("{detail}")]
    Gone { code: &'static str, detail: String },
    /// A change-feed cursor older than the changes retained: read again from `earliest`.
    #[error("{detail}")]
    CursorExpired { detail: String, earliest: String },
    /// The request contradicts what is stored; `errors` names the offending items of a batch
    /// (empty otherwise).
    #[error("{detail}")]
    Conflict {
        code: &'static str,
        detail: String,
        errors: Vec<FieldError>,
    },
    /// A precondition the request named does not hold (`Expected-Seq`, `If-Match`); nothing
    /// changed. `current_seq`: the session's last seq, when the precondition was about it.
    #[error("{detail}")]
    PreconditionFailed {
        code: &'static str,
        detail: String,
        current_seq: Option<u64>,
    },
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A valid API key whose scope does not allow the request.
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{detail}")]
    UnsupportedMediaType { detail: String },
    /// The client is over RATE_LIMIT_PER_SECOND / RATE_LIMIT_BURST; it may retry after this long.
    #[error("rate limit exceeded; retry in {0:?}")]
    RateLimited(std::time::Duration),
    /// `MAX_STREAMS` live streams are open; the client may retry shortly.
    #[error("{0} live streams are open, the most this instance serves")]
    TooManyStreams(usize),
    /// The request took longer than the configured request timeout.
    #[error("the request took longer than {0:?}")]
    Timeout(std::time::Duration),
    /// Storage cannot be reached right now; the client may retry.
    #[error("storage unavailable")]
    Unavailable(#[source] BoxError),
    /// Storage is out of space: writes fail until it is freed; the client may retry later.
    #[error("storage full")]
    StorageFull(#[source] BoxError),
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl AppError {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        AppError::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        AppError::Conflict {
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// A conflict naming the offending items (`events[2].eventId`, …).
    pub fn conflict_items(
        code: &'static str,
        detail: impl Into<String>,
        errors: Vec<FieldError>,
    ) -> Self {
        AppError::Conflict {
            code,
            detail: detail.into(),
            errors,
        }
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        AppError::NotFound {
            code,
            detail: detail.into(),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Validation(vec![FieldError::new(field, message)])
    }

    /// A storage failure outside any domain operation (e.g. the readiness ping).
    pub fn from_repo(err: RepoError) -> Self {
        match err {
            RepoError::NotFound | RepoError::Deleted => {
                AppError::Internal("storage answered not found".into())
            }
            RepoError::Unavailable(source) if source.is::<crate::repo::StorageFull>() => {
                AppError::StorageFull(source)
            }
            RepoError::Unavailable(source) => AppError::Unavailable(source),
            RepoError::Backend(source) => AppError::Internal(source),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Validation(_) | AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppError::NotFound { .. } => StatusCode::NOT_FOUND,
            AppError::Gone { .. } | AppError::CursorExpired { .. } => StatusCode::GONE,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_)
            | AppError::StorageFull(_)
            | AppError::Timeout(_)
            | AppError::TooManyStreams(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Validation(_) => "validation_failed",
            AppError::BadRequest { code, .. }
            | AppError::NotFound { code, .. }
            | AppError::Gone { code, .. }
            | AppError::Conflict { code, .. }
            | AppError::PreconditionFailed { code, .. } => code,
            AppError::CursorExpired { .. } => "cursor_expired",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::MethodNotAllowed => "method_not_allowed",
            AppError::PayloadTooLarge { .. } => "payload_too_large",
            AppError::UnsupportedMediaType { .. } => "unsupported_media_type",
            AppError::RateLimited(_) => "rate_limited",
            AppError::Unavailable(_) => "storage_unavailable",
            AppError::StorageFull(_) => "storage_full",
            AppError::Timeout(_) => "request_timeout",
            AppError::TooManyStreams(_) => "too_many_streams",
            AppError::Internal(_) => "internal_error",
        }
    }

    fn detail(&self) -> String {
        match self {
            AppError::Validation(errors) => format!(
                "the request has {} invalid field{}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            ),
            AppError::MethodNotAllowed => "this route does not accept that method".into(),
            AppError::RateLimited(wait) => format!(
                "too many requests; retry in {} s",
                retry_after_seconds(*wait)
            ),
            AppError::Unavailable(_) => {
                "storage is unavailable right now; retry with the same request".into()
            }
            AppError::StorageFull(_) => {
                "storage is full; nothing was written; retry with the same request later".into()
            }
            AppError::Internal(_) => "an internal error occurred".into(),
            AppError::TooManyStreams(limit) => format!(
                "{limit} live streams are open, the most this instance serves (MAX_STREAMS); retry shortly"
            ),
            AppError::Timeout(limit) => format!(
                "the request did not finish within {} ms; retry with the same request",
                limit.as_millis()
            ),
            other => other.to_string(),
        }
    }
}

/// Marks a response that answered a storage failure (unavailable, or full).
#[derive(Debug, Clone, Copy)]
pub struct StorageFailed {
    pub full: bool,
}

/// Whole seconds for `Retry-After`: rounded up, at least 1.
fn retry_after_seconds(wait: std::time::Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

impl From<ServiceError> for AppError {
    fn from(err: ServiceError) -> Self {
        let detail = err.to_string();
        match err {
            ServiceError::SessionNotFound(_) => AppError::not_found("session_not_found", detail),
            ServiceError::EventNotFound { .. } => AppError::not_found("event_not_found", detail),
            ServiceError::EventIdConflict { .. } => AppError::conflict("event_id_conflict", detail),
            ServiceError::SessionEnded { .. } => AppError::conflict("session_ended", detail),
            ServiceError::BatchConflicts { items, .. } => AppError::conflict_items(
                "event_id_conflict",
                detail,
                items
                    .into_iter()
                    .map(|(i, _)| {
                        FieldError::new(
                            format!("events[{i}].eventId"),
                            "is already stored with different content",
                        )
                    })
                    .collect(),
            ),
            ServiceError::BatchSessionEnded { status, items, .. } => AppError::conflict_items(
                "session_ended",
                detail,
                items
                    .into_iter()
                    .map(|i| {
                        FieldError::new(
                            format!("events[{i}].eventId"),
                            format!("is a new event, and the session has ended ({status})"),
                        )
                    })
                    .collect(),
            ),
            ServiceError::SeqMismatch { current, .. } => AppError::PreconditionFailed {
                code: "seq_mismatch",
                detail,
                current_seq: Some(current),
            },
            ServiceError::VersionMismatch { .. } => AppError::PreconditionFailed {
                code: "precondition_failed",
                detail,
                current_seq: None,
            },
            ServiceError::InvalidMetadata(e) => AppError::invalid("metadata", e.0),
            ServiceError::InvalidBatch(e) => AppError::invalid("events", e.0),
            ServiceError::InvalidStats { field, invalid } => AppError::invalid(field, invalid.0),
            ServiceError::InvalidPayload { at, invalid } => AppError::invalid(
                at.map_or("payload".to_owned(), |i| format!("events[{i}].payload")),
                format!("once redacted, {}", invalid.0),
            ),
            ServiceError::SessionAlreadyEnded { .. } => {
                AppError::conflict("session_already_ended", detail)
            }
            ServiceError::SessionDeleted(_) => AppError::Gone {
                code: "session_deleted",
                detail,
            },
            ServiceError::SessionIdDeleted(_) => AppError::conflict("session_deleted", detail),
            ServiceError::CursorOrderMismatch | ServiceError::CursorSearchMismatch => {
                AppError::invalid("after", detail)
            }
            ServiceError::InvalidCursor => AppError::bad_request("invalid_cursor", detail),
            ServiceError::CursorExpired { earliest } => {
                AppError::CursorExpired { detail, earliest }
            }
            ServiceError::TooManyStreams(limit) => AppError::TooManyStreams(limit),
            // The stream handler names the parameter the start came from; this is the fallback.
            ServiceError::StartAfterLastEvent { .. } => AppError::invalid("Last-Event-ID", detail),
            ServiceError::Storage(e) => AppError::from_repo(e),
        }
    }
}

/// RFC 9457 problem details, served as `application/problem+json`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem<'a> {
    #[serde(rename = "type")]
    #[schema(example = "urn:session-service:problem:validation_failed")]
    kind: String,
    #[schema(example = "Bad Request")]
    title: &'a str,
    #[schema(example = 400)]
    status: u16,
    detail: String,
    /// Stable and machine-readable: `validation_failed`, `malformed_json`, `body_not_object`,
    /// `body_unreadable`, `invalid_path`, `invalid_cursor`, `session_not_found`,
    /// `event_not_found`, `webhook_not_found`, `route_not_found`, `method_not_allowed`,
    /// `session_deleted`, `cursor_expired`, `event_id_conflict`, `session_ended`,
    /// `session_already_ended`, `too_many_webhooks`, `webhook_contended`, `webhook_disabled`,
    /// `seq_mismatch`, `precondition_failed`, `unauthorized`, `forbidden`, `payload_too_large`,
    /// `unsupported_media_type`, `rate_limited`, `storage_unavailable`, `storage_full`,
    /// `request_timeout`, `too_many_streams`, `internal_error`.
    #[schema(example = "validation_failed")]
    code: &'a str,
    /// Every violation, for `validation_failed`; for a batch's 409 (`event_id_conflict`,
    /// `session_ended`), every offending item, named by its `eventId` field
    /// (`events[2].eventId`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<FieldError>>)]
    errors: Option<&'a [FieldError]>,
    /// For `seq_mismatch`: the session's last seq (its event count) when the write was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    current_seq: Option<u64>,
    /// For `cursor_expired`: the oldest cursor the change feed can be read from now.
    #[serde(skip_serializing_if = "Option::is_none")]
    earliest_cursor: Option<String>,
    /// The request's `x-request-id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && !matches!(self, AppError::TooManyStreams(_)) {
            let mut chain = String::new();
            let mut source = self.source();
            while let Some(cause) = source {
                chain.push_str(": ");
                chain.push_str(&cause.to_string());
                source = cause.source();
            }
            tracing::error!(code = self.code(), "{self}{chain}");
        } else {
            tracing::debug!(code = self.code(), "{self}");
        }
        let problem = Problem {
            kind: format!("urn:session-service:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.detail(),
            code: self.code(),
            errors: match &self {
                AppError::Validation(errors) => Some(errors),
                AppError::Conflict { errors, .. } if !errors.is_empty() => Some(errors),
                _ => None,
            },
            current_seq: match &self {
                AppError::PreconditionFailed { current_seq, .. } => *current_seq,
                _ => None,
            },
            earliest_cursor: match &self {
                AppError::CursorExpired { earliest, .. } => Some(earliest.clone()),
                _ => None,
            },
            request_id: current_request_id(),
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"session-service\""),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let AppError::RateLimited(wait) = &self {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_seconds(*wait)),
            );
        }
        if let AppError::Unavailable(_) | AppError::StorageFull(_) = &self {
            // For `api::health`: a write that failed this way makes `/ready` answer 503.
            let full = matches!(self, AppError::StorageFull(_));
            response.extensions_mut().insert(StorageFailed { full });
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::retry_after_seconds;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_seconds(Duration::from_millis(2500)), 3);
    }

    /// Storage out of space is 503 `storage_full`, other storage failures 503
    /// `storage_unavailable` (each backend's mapping to these is tested with the backend).
    #[test]
    fn storage_failures_are_503s_never_500s() {
        use super::AppError;
        use crate::repo::RepoError;
        let full = AppError::from_repo(RepoError::full("no space"));
        assert_eq!((full.status().as_u16(), full.code()), (503, "storage_full"));
        let down = AppError::from_repo(RepoError::Unavailable("i/o".into()));
        assert_eq!(
            (down.status().as_u16(), down.code()),
            (503, "storage_unavailable")
        );
    }
}
