//! Whether writes are failing, for `/ready`: a write answered with a storage failure (503
//! `storage_full` or `storage_unavailable`) marks storage as failing, the next write that
//! succeeds clears it, and `/ready` answers 503 `storage_full` / `storage_unavailable` meanwhile.
//! A ping alone cannot tell: a full disk still answers pings (and reads).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{AppError, StorageFailed};

const HEALTHY: u8 = 0;
const UNAVAILABLE: u8 = 1;
const FULL: u8 = 2;

#[derive(Clone, Default)]
pub struct StorageHealth(Arc<AtomicU8>);

/// Middleware on the session routes: records how each write ended.
pub async fn track_writes(
    State(health): State<StorageHealth>,
    req: Request,
    next: Next,
) -> Response {
    let write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let response = next.run(req).await;
    if write {
        if response.status().is_success() {
            health.0.store(HEALTHY, Ordering::Relaxed);
        } else if let Some(StorageFailed { full }) = response.extensions().get() {
            let state = if *full { FULL } else { UNAVAILABLE };
            health.0.store(state, Ordering::Relaxed);
        }
    }
    response
}

/// Middleware on `/ready`: 503 while the last write failed on storage.
pub async fn ready_gate(State(health): State<StorageHealth>, req: Request, next: Next) -> Response {
    match health.0.load(Ordering::Relaxed) {
        FULL => AppError::StorageFull("the last write found storage full".into()).into_response(),
        UNAVAILABLE => {
            AppError::Unavailable("the last write found storage unavailable".into()).into_response()
        }
        _ => next.run(req).await,
    }
}
