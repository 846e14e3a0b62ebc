//! The request id: taken from `x-request-id` or made, and known to everything that runs on the
//! request's task (problem JSON names it). The `observe` layer sets it for each request.

use std::future::Future;

use axum::extract::Request;
use axum::http::HeaderValue;
use tokio::task::futures::TaskLocalFuture;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    /// Kept as the header value it is answered with (visible ASCII, so also valid text).
    static REQUEST_ID: HeaderValue;
}

/// The id of the request being served on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID
        .try_with(|id| id.to_str().map(str::to_owned).ok())
        .ok()
        .flatten()
}

/// A client's id is kept if it is 1–128 visible ASCII characters; otherwise a new one is made.
pub(super) fn of(req: &Request) -> HeaderValue {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .filter(|v| (1..=128).contains(&v.len()) && v.as_bytes().iter().all(u8::is_ascii_graphic))
        .cloned()
        .unwrap_or_else(new_request_id)
}

/// A random v4 UUID, from a thread-local generator (`uuid`'s `fast-rng`): no system call per id.
fn new_request_id() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    // Hex digits and hyphens are always a valid header value.
    HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// `future`, run with `id` as the request id of its task.
pub(super) fn scope<F: Future>(id: HeaderValue, future: F) -> TaskLocalFuture<HeaderValue, F> {
    REQUEST_ID.scope(id, future)
}
