//! A decorator that times every repository call: `storage_operation_duration_seconds` by backend,
//! operation and outcome. It forwards everything else untouched.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use metrics::Histogram;

use super::search::{Candidate, SearchRepository, SearchScan};
use super::stats::{StatsRepository, StatsScan};
use super::{
    Appended, BatchAppended, CreateOutcome, DeleteOutcome, EndOutcome, EndRequest, EventPage,
    EventRange, EventRepository, MetadataPatch, Patched, PurgeOutcome, RepoError, Repositories,
    SessionRepository, SessionScan,
};
use crate::domain::stats::Cell;
use crate::domain::{
    Event, EventId, NewEvent, NewEvents, NewSession, Session, SessionId, Timers, Timestamp,
};

/// The backend's name for the `backend` label, and the recorder the handles are registered with.
#[derive(Clone, Copy)]
struct Backend {
    name: &'static str,
    recorder: &'static (dyn metrics::Recorder + Sync),
}

struct Timed<R: ?Sized> {
    backend: Backend,
    inner: Arc<R>,
}

async fn timed<T>(
    backend: Backend,
    operation: &'static str,
    call: impl Future<Output = Result<T, RepoError>>,
) -> Result<T, RepoError> {
    let started = Instant::now();
    let result = call.await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(RepoError::NotFound) => "not_found",
        Err(RepoError::Deleted) => "deleted",
        Err(RepoError::Unavailable(_)) => "unavailable",
        Err(RepoError::Backend(_)) => "error",
    };
    let key = (backend.name, operation, outcome);
    let seconds = started.elapsed().as_secs_f64();
    HISTOGRAMS.with_borrow_mut(|cached| {
        // The names are the service's own literals: comparing where they are is usually enough.
        let same = |a: &str, b: &str| std::ptr::eq(a, b) || a == b;
        match cached
            .iter()
            .find(|(k, _)| same(k.1, key.1) && same(k.2, key.2) && same(k.0, key.0))
        {
            Some((_, histogram)) => histogram.record(seconds),
            None => {
                let made = metrics::with_local_recorder(backend.recorder, || histogram(key));
                made.record(seconds);
                cached.push((key, made));
            }
        }
    });
    result
}

/// (backend, operation, outcome): all the service's own names, so the cache below is bounded.
type OperationKey = (&'static str, &'static str, &'static str);

fn histogram((backend, operation, outcome): OperationKey) -> Histogram {
    metrics::histogram!(
        "storage_operation_duration_seconds",
        "backend" => backend,
        "operation" => operation,
        "outcome" => outcome,
    )
}

thread_local! {
    /// Handles looked up once per thread: building the key and finding it in the recorder's
    /// registry on every call cost more than recording. A handle is kept for good; it belongs to
    /// the recorder given to [`Repositories::instrumented`], the process's one.
    static HISTOGRAMS: RefCell<Vec<(OperationKey, Histogram)>> = const { RefCell::new(Vec::new()) };
}

#[async_trait]
impl SessionRepository for Timed<dyn SessionRepository> {
    async fn create_or_get(&self, new: NewSession) -> Result<CreateOutcome, RepoError> {
        timed(
            self.backend,
            "create_session",
            self.inner.create_or_get(new),
        )
        .await
    }

    async fn get(&self, id: &SessionId) -> Result<Session, RepoError> {
        timed(self.backend, "get_session", self.inner.get(id)).await
    }

    async fn end(&self, id: &SessionId, request: EndRequest) -> Result<EndOutcome, RepoError> {
        timed(self.backend, "end_session", self.inner.end(id, request)).await
    }

    async fn expire(&self, id: &SessionId, now: Timestamp) -> Result<EndOutcome, RepoError> {
        timed(self.backend, "expire_session", self.inner.expire(id, now)).await
    }

    async fn expired(&self, now: Timestamp, limit: u32) -> Result<Vec<SessionId>, RepoError> {
        timed(self.backend, "find_expired", self.inner.expired(now, limit)).await
    }

    async fn list(&self, scan: &SessionScan) -> Result<Vec<Session>, RepoError> {
        timed(self.backend, "list_sessions", self.inner.list(scan)).await
    }

    async fn delete(&self, id: &SessionId, at: Timestamp) -> Result<DeleteOutcome, RepoError> {
        timed(self.backend, "delete_session", self.inner.delete(id, at)).await
    }

    async fn patch_metadata(
        &self,
        id: &SessionId,
        patch: MetadataPatch,
    ) -> Result<Patched, RepoError> {
        let call = self.inner.patch_metadata(id, patch);
        timed(self.backend, "patch_metadata", call).await
    }

    async fn purge(
        &self,
        max_events: u64,
        tombstones_before: Timestamp,
    ) -> Result<PurgeOutcome, RepoError> {
        let call = self.inner.purge(max_events, tombstones_before);
        timed(self.backend, "purge", call).await
    }

    async fn ended_before(
        &self,
        cutoff: Timestamp,
        limit: u32,
    ) -> Result<Vec<SessionId>, RepoError> {
        let call = self.inner.ended_before(cutoff, limit);
        timed(self.backend, "find_ended_before", call).await
    }

    async fn adopt_legacy_sessions(
        &self,
        defaults: Timers,
        now: Timestamp,
    ) -> Result<u64, RepoError> {
        let call = self.inner.adopt_legacy_sessions(defaults, now);
        timed(self.backend, "adopt_legacy_sessions", call).await
    }

    async fn ping(&self) -> Result<(), RepoError> {
        timed(self.backend, "ping", self.inner.ping()).await
    }
}

#[async_trait]
impl EventRepository for Timed<dyn EventRepository> {
    async fn append(&self, new: NewEvent) -> Result<Appended, RepoError> {
        timed(self.backend, "append_event", self.inner.append(new)).await
    }

    async fn append_batch(&self, batch: NewEvents) -> Result<BatchAppended, RepoError> {
        let call = self.inner.append_batch(batch);
        timed(self.backend, "append_event_batch", call).await
    }

    async fn get(&self, session_id: &SessionId, event_id: &EventId) -> Result<Event, RepoError> {
        timed(
            self.backend,
            "get_event",
            self.inner.get(session_id, event_id),
        )
        .await
    }

    async fn page(
        &self,
        session_id: &SessionId,
        range: EventRange,
    ) -> Result<EventPage, RepoError> {
        timed(
            self.backend,
            "page_events",
            self.inner.page(session_id, range),
        )
        .await
    }
}

#[async_trait]
impl SearchRepository for Timed<dyn SearchRepository> {
    async fn search(&self, scan: &SearchScan) -> Result<Vec<Candidate>, RepoError> {
        timed(self.backend, "search", self.inner.search(scan)).await
    }

    async fn index_pending(&self) -> Result<u64, RepoError> {
        timed(self.backend, "index_pending", self.inner.index_pending()).await
    }
}

#[async_trait]
impl StatsRepository for Timed<dyn StatsRepository> {
    async fn tally(&self, scan: &StatsScan) -> Result<Vec<Cell>, RepoError> {
        timed(self.backend, "stats", self.inner.tally(scan)).await
    }

    async fn active_now(&self) -> Result<u64, RepoError> {
        timed(self.backend, "active_now", self.inner.active_now()).await
    }
}

impl Repositories {
    /// The same repositories, with every call timed under `backend` in `recorder` (whether or
    /// not it is installed as the global recorder yet).
    pub fn instrumented(
        self,
        backend: &'static str,
        recorder: &'static (dyn metrics::Recorder + Sync),
    ) -> Repositories {
        let backend = Backend {
            name: backend,
            recorder,
        };
        Repositories {
            sessions: Arc::new(Timed {
                backend,
                inner: self.sessions,
            }),
            events: Arc::new(Timed {
                backend,
                inner: self.events,
            }),
            changes: self.changes,
            feed: self.feed,
            search: Arc::new(Timed {
                backend,
                inner: self.search,
            }),
            stats: Arc::new(Timed {
                backend,
                inner: self.stats,
            }),
            // Background work and admin routes, timed by the webhook metrics themselves.
            webhooks: self.webhooks,
        }
    }
}
