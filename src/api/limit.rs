//! Optional rate limits (`RATE_LIMIT_PER_SECOND`, `RATE_LIMIT_BURST`): one GCRA bucket per
//! client in `governor`'s keyed limiter. A client is its API key when the request carried a valid
//! one (the key is never stored: a keyed hash of it is), else its peer IP address. Beyond the
//! limit: 429 `rate_limited` with `Retry-After`. `/health` and `/ready` are never limited
//! (`api::router` does not put this on them).
//!
//! Memory: the keyed store holds one small state per client seen; [`RateLimit::spawn_cleanup`]
//! calls `retain_recent` every [`CLEANUP_INTERVAL`], which drops every client whose bucket has
//! refilled (it would behave exactly as a new one), so the store holds only the clients active
//! within the last `burst / rate` seconds plus one interval.

use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::error::AppError;

pub const CLEANUP_INTERVAL: Duration = Duration::from_secs(10);

/// Who a request is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Client {
    /// A keyed hash of the API key the request authenticated with.
    Key(u64),
    Ip(IpAddr),
    /// No peer address known (a router served without connect info, as in unit tests).
    Unknown,
}

/// Put into the request's extensions by `auth` once a key is accepted.
#[derive(Debug, Clone, Copy)]
pub struct AuthenticatedKey(u64);

impl AuthenticatedKey {
    /// A hash of the key's bytes under a per-process random key: the same key always maps to the
    /// same client, and the value reveals nothing of the key.
    pub fn of(key: &[u8]) -> Self {
        static STATE: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
        AuthenticatedKey(STATE.get_or_init(Default::default).hash_one(key))
    }
}

#[derive(Clone)]
pub struct RateLimit {
    limiter: Arc<DefaultKeyedRateLimiter<Client>>,
}

impl RateLimit {
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Self {
            limiter: Arc::new(DefaultKeyedRateLimiter::keyed(quota)),
        }
    }

    /// How many clients the limiter holds state for now.
    pub fn tracked_clients(&self) -> usize {
        self.limiter.len()
    }

    /// Forgets the clients whose buckets are full again, every [`CLEANUP_INTERVAL`], until the
    /// returned task is aborted.
    pub fn spawn_cleanup(&self) -> tokio::task::JoinHandle<()> {
        let limiter = Arc::clone(&self.limiter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CLEANUP_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        })
    }

    /// `Err(wait)` when `client` is over its limit.
    fn check(&self, client: &Client) -> Result<(), Duration> {
        self.limiter
            .check_key(client)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// Middleware for the limited routes; inside `require_api_key`, so it sees the accepted key.
pub async fn rate_limit(State(limit): State<RateLimit>, req: Request, next: Next) -> Response {
    let client = match req.extensions().get::<AuthenticatedKey>() {
        Some(AuthenticatedKey(hash)) => Client::Key(*hash),
        None => req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| Client::Ip(peer.ip()))
            .unwrap_or(Client::Unknown),
    };
    match limit.check(&client) {
        Ok(()) => next.run(req).await,
        Err(wait) => AppError::RateLimited(wait).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_whose_buckets_refilled_are_forgotten() {
        let nz = |n| NonZeroU32::new(n).unwrap();
        let limit = RateLimit::new(nz(1000), nz(1));
        for n in 0..100u8 {
            let client = Client::Ip(IpAddr::from([10, 0, 0, n]));
            assert!(limit.check(&client).is_ok());
            assert!(limit.check(&client).is_err(), "a burst of 1");
        }
        assert_eq!(limit.tracked_clients(), 100);
        // At 1000 per second a bucket of 1 is full again after 1 ms.
        std::thread::sleep(Duration::from_millis(50));
        limit.limiter.retain_recent();
        assert_eq!(limit.tracked_clients(), 0, "the store shrinks back");
    }
}
