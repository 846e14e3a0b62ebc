//! Per-request observation: a request id (taken from `x-request-id` or generated) that is echoed
//! in the response, carried by the request's tracing span and put into problem JSON; a bounded
//! request time; one access log line; and the HTTP metrics.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::error::AppError;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// A client's id is kept if it is 1–128 visible ASCII characters; otherwise a new one is made.
fn request_id(req: &Request) -> String {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id)
}

/// A random v4 UUID, from a thread-local generator (`uuid`'s `fast-rng`): no system call per id.
fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub async fn observe(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&req);
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("request", %method, route, request_id = %id);
    let served = async {
        match tokio::time::timeout(timeout, next.run(req)).await {
            Ok(response) => response,
            Err(_) => AppError::Timeout(timeout).into_response(),
        }
    };
    let mut response = REQUEST_ID
        .scope(id.clone(), served.instrument(span.clone()))
        .await;

    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request served"
        );
    });
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}
