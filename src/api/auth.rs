//! Optional API keys: when configured, the session routes (and `/metrics`, unless told otherwise)
//! need `Authorization: Bearer <key>`. Keys are compared in constant time and never logged.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::AppError;
use crate::config::ApiKeys;

#[derive(Clone)]
pub struct AuthPolicy {
    pub keys: Arc<ApiKeys>,
    pub protect_metrics: bool,
}

impl AuthPolicy {
    /// Whether `presented` matches a configured key. Every key is compared, each in constant
    /// time, so the answer's timing does not depend on which key (or how much of one) matched.
    fn accepts(&self, presented: &[u8]) -> bool {
        self.keys
            .exposed()
            .fold(subtle::Choice::from(0), |found, key| {
                found | key.ct_eq(presented)
            })
            .into()
    }
}

/// Middleware for the routes that need a key (`api::router` puts it on them with `route_layer`).
pub async fn require_api_key(
    State(policy): State<AuthPolicy>,
    req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(key) if policy.accepts(key.as_bytes()) => next.run(req).await,
        Some(_) => AppError::Unauthorized("the API key is not valid").into_response(),
        None => AppError::Unauthorized("this route needs Authorization: Bearer <API key>")
            .into_response(),
    }
}
