//! The rules of the service: idempotency outcomes, state transitions, timers, listing, erasure
//! and pagination. Handlers call these with validated domain types; atomicity itself lives in the
//! repositories.

mod changes;
mod counters;
mod cursor;
mod error;
pub mod live;
mod maintenance;
mod read;
mod redaction;
mod search;
mod stats;
pub mod webhooks;
mod write;

use std::sync::Arc;

use crate::domain::{Session, SessionId, Timers, Timestamp};
use crate::repo::{RepoError, Repositories};

pub use changes::{
    ChangesFrom, ChangesPage, ChangesRequest, DEFAULT_CHANGES_LIMIT, MAX_CHANGES_LIMIT,
    MAX_CHANGES_WAIT_SECONDS,
};
pub use counters::ServiceMetrics;
pub use cursor::{Cursor, SessionCursor};
pub use error::ServiceError;
pub use maintenance::Maintenance;
pub use read::{ListRequest, PageMode, PageRequest, SessionList, SessionPage};
pub use redaction::Redaction;
pub use search::{MAX_SEARCH_CANDIDATES, SearchCursor, SearchHit, SearchRequest, SearchResults};
pub use stats::{StatsAnswer, StatsRequest};
pub use write::Written;

/// Page sizes accepted by the read endpoints.
pub const MAX_PAGE_LIMIT: u32 = 100;
pub const DEFAULT_PAGE_LIMIT: u32 = 20;
/// The most sessions one list request examines; with selective filters a page may come back
/// short, with `has_more` and a cursor to go on.
pub const MAX_LIST_CANDIDATES: usize = 5_000;

/// The lifecycle settings the service runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    /// The timers of a session created without its own.
    pub default_timers: Timers,
    /// How long a deleted session's tombstone keeps its id taken, in seconds.
    pub tombstone_retention_seconds: u64,
    /// Ended sessions older than this are erased; `0` keeps them forever.
    pub retention_seconds: u64,
    /// How long the change feed keeps changes, in seconds.
    pub changes_retention_seconds: u64,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            default_timers: Timers {
                inactivity_seconds: 3600,
                max_duration_seconds: 0,
            },
            tombstone_retention_seconds: 30 * 24 * 3600,
            retention_seconds: 0,
            changes_retention_seconds: 7 * 24 * 3600,
        }
    }
}

/// The service: cheap to clone (one reference count), as every request's handler takes a copy.
#[derive(Clone)]
pub struct SessionService(Arc<Shared>);

pub struct Shared {
    repos: Repositories,
    lifecycle: Lifecycle,
    /// Live streams' announcements: every write through this service is announced here.
    hub: live::Hub,
    metrics: ServiceMetrics,
    /// What is redacted from event payloads before they are stored.
    redaction: Arc<Redaction>,
}

impl std::ops::Deref for SessionService {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Records the timer end of `id` if its deadline has come by `now` (a conditional write, so one
/// of several callers records it), counts it and tells its live streams; whether this call
/// recorded it. The sweeper and a live stream at its session's deadline both end sessions so.
async fn expire(
    repos: &Repositories,
    hub: &live::Hub,
    id: &SessionId,
    now: Timestamp,
) -> Result<bool, RepoError> {
    let outcome = repos.sessions.expire(id, now).await?;
    if outcome.ended_now {
        count_end(&outcome.session);
        hub.poke(id);
    }
    Ok(outcome.ended_now)
}

/// A repository error, with `NotFound` and `Deleted` meaning the session `id`.
fn session_error(id: &SessionId) -> impl FnOnce(RepoError) -> ServiceError + '_ {
    move |e| match e {
        RepoError::NotFound => ServiceError::SessionNotFound(id.clone()),
        RepoError::Deleted => ServiceError::SessionDeleted(id.clone()),
        other => ServiceError::Storage(other),
    }
}

fn count_end(session: &Session) {
    metrics::counter!("sessions_ended_total", "status" => session.status.as_str()).increment(1);
    let reason = session
        .ended_reason
        .as_ref()
        .map_or("none".to_owned(), |r| r.as_str().to_owned());
    metrics::counter!("sessions_ended_by_reason_total", "reason" => reason).increment(1);
}

impl SessionService {
    /// A service over `repos`. Its live streams run with the default settings
    /// ([`Self::with_live`]), and its per-event counters are looked up as they count
    /// ([`Self::with_metrics`]).
    pub fn new(repos: Repositories, lifecycle: Lifecycle) -> Self {
        Self(Arc::new(Shared {
            repos,
            lifecycle,
            hub: live::Hub::new(live::LiveSettings::default()),
            metrics: ServiceMetrics::default(),
            redaction: Arc::new(Redaction::new(crate::domain::Redact::NONE)),
        }))
    }

    /// The same service, redacting `kinds` from the payloads of sessions that chose none of
    /// their own (`REDACT`).
    pub fn with_redaction(self, kinds: crate::domain::Redact) -> Self {
        Self(Arc::new(Shared {
            repos: self.repos.clone(),
            lifecycle: self.lifecycle,
            hub: self.hub.clone(),
            metrics: self.metrics.clone(),
            redaction: Arc::new(Redaction::new(kinds)),
        }))
    }

    /// The same service with live streams run by `settings`.
    pub fn with_live(self, settings: live::LiveSettings) -> Self {
        Self(Arc::new(Shared {
            repos: self.repos.clone(),
            lifecycle: self.lifecycle,
            hub: live::Hub::new(settings),
            metrics: self.metrics.clone(),
            redaction: self.redaction.clone(),
        }))
    }

    /// The same service, counting appends with `metrics`.
    pub fn with_metrics(self, metrics: ServiceMetrics) -> Self {
        Self(Arc::new(Shared {
            repos: self.repos.clone(),
            lifecycle: self.lifecycle,
            hub: self.hub.clone(),
            metrics,
            redaction: self.redaction.clone(),
        }))
    }

    /// The hub of this service's live streams.
    pub fn hub(&self) -> &live::Hub {
        &self.hub
    }

    /// Starts what tells the live streams of other writers' changes (stopped when dropped).
    pub fn watch_changes(&self) -> live::Watchers {
        live::Watchers::start(self.hub.clone(), self.repos.clone())
    }

    /// Opens a live stream of the session's events from `start` on: stored ones, then new ones as
    /// they are stored by anyone, then its end. Refused when too many streams are open, when the
    /// session does not exist or was erased, and when `start` is past its last event.
    pub async fn follow(
        &self,
        id: &SessionId,
        start: live::Start,
    ) -> Result<live::Follow, ServiceError> {
        self.hub.follow(&self.repos, id, start).await
    }

    pub fn repositories(&self) -> &Repositories {
        &self.repos
    }

    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle
    }

    /// Whether storage answers.
    pub async fn ready(&self) -> Result<(), RepoError> {
        self.repos.sessions.ping().await
    }
}
