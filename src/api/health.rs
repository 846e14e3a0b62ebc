//! Whether writes are failing, for `/ready`: a write answered with a storage failure (503
//! `storage_full` or `storage_unavailable`) marks storage as failing, the next write that
//! succeeds clears it, and `/ready` answers 503 `storage_full` / `storage_unavailable` meanwhile
//! (a ping alone cannot tell: a full disk still answers pings and reads).
//!
//! Like a circuit breaker, the mark holds for [`HOLD`] after the last failed write; then `/ready`
//! asks storage again (its ping). Without that, an instance taken out of rotation for a failed
//! write would get no more writes, so nothing would ever clear the mark: it would stay unready
//! after the outage ended. While writes keep failing, each failure renews the mark.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{AppError, StorageFailed};

const HEALTHY: u8 = 0;
const UNAVAILABLE: u8 = 1;
const FULL: u8 = 2;

/// How long a failed write keeps `/ready` at 503 before storage is asked again.
pub const HOLD: Duration = Duration::from_secs(5);

#[derive(Clone, Default)]
pub struct StorageHealth(Arc<(AtomicU8, AtomicU64)>);

impl StorageHealth {
    fn now_millis() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    fn mark(&self, state: u8) {
        self.0.1.store(Self::now_millis(), Ordering::Relaxed);
        self.0.0.store(state, Ordering::Relaxed);
    }

    /// The failure recorded less than [`HOLD`] ago, if any.
    fn recent_failure(&self) -> u8 {
        let state = self.0.0.load(Ordering::Relaxed);
        let age = Self::now_millis().saturating_sub(self.0.1.load(Ordering::Relaxed));
        if state != HEALTHY && age < HOLD.as_millis() as u64 {
            state
        } else {
            HEALTHY
        }
    }

    /// Records how a request ended, if it was a write: a success clears the mark, a storage
    /// failure sets it. Called by the `observe` layer on every response (only the session routes
    /// take writes; nothing else answers a write with success or a storage failure).
    pub fn record(&self, method: &Method, response: &Response) {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return;
        }
        if response.status().is_success() {
            self.0.0.store(HEALTHY, Ordering::Relaxed);
        } else if let Some(StorageFailed { full }) = response.extensions().get() {
            self.mark(if *full { FULL } else { UNAVAILABLE });
            let kind = if *full { "full" } else { "unavailable" };
            metrics::counter!("storage_write_failures_total", "kind" => kind).increment(1);
        }
    }
}

/// Middleware on `/ready`: 503 while a write failed on storage less than [`HOLD`] ago; after
/// that, `/ready` asks storage itself.
pub async fn ready_gate(State(health): State<StorageHealth>, req: Request, next: Next) -> Response {
    match health.recent_failure() {
        FULL => AppError::StorageFull("the last write found storage full".into()).into_response(),
        UNAVAILABLE => {
            AppError::Unavailable("the last write found storage unavailable".into()).into_response()
        }
        _ => next.run(req).await,
    }
}
