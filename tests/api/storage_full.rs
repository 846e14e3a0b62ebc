//! Storage full or failing: a write that finds storage out of space answers 503 `storage_full`
//! with `Retry-After` (never 500), `/ready` answers 503 until a write succeeds again, and nothing
//! acknowledged is lost; no restart. The fault is injected in front of a real SQLite store, as
//! the `RepoError` its backend gives for `SQLITE_FULL` (`repo::sqlite::map_err`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use session_service::domain::{
    Event, EventId, NewEvent, NewEvents, NewSession, Session, SessionId, Timers, Timestamp,
};
use session_service::repo::{
    Appended, BatchAppended, CreateOutcome, DeleteOutcome, EndOutcome, EndRequest, EventPage,
    EventRange, EventRepository, PurgeOutcome, RepoError, Repositories, SessionRepository,
    SessionScan,
};

use crate::support::app::{TestApp, spawn_app};
use crate::support::{Backend, StoreCtx, TestStore};

const OK: u8 = 0;
const FULL: u8 = 1;
const UNAVAILABLE: u8 = 2;

/// Forwards to the real store; while the switch says so, every write fails as a full (or
/// unreachable) store fails, before reaching it. Reads always work, as on a full disk.
#[derive(Clone)]
struct Faulty {
    inner: Repositories,
    mode: Arc<AtomicU8>,
}

impl Faulty {
    fn check(&self) -> Result<(), RepoError> {
        match self.mode.load(Ordering::SeqCst) {
            FULL => Err(RepoError::full("database or disk is full (injected)")),
            UNAVAILABLE => Err(RepoError::Unavailable("disk I/O error (injected)".into())),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl SessionRepository for Faulty {
    async fn create_or_get(&self, new: NewSession) -> Result<CreateOutcome, RepoError> {
        self.check()?;
        self.inner.sessions.create_or_get(new).await
    }
    async fn get(&self, id: &SessionId) -> Result<Session, RepoError> {
        self.inner.sessions.get(id).await
    }
    async fn end(&self, id: &SessionId, request: EndRequest) -> Result<EndOutcome, RepoError> {
        self.check()?;
        self.inner.sessions.end(id, request).await
    }
    async fn expire(&self, id: &SessionId, now: Timestamp) -> Result<EndOutcome, RepoError> {
        self.check()?;
        self.inner.sessions.expire(id, now).await
    }
    async fn expired(&self, now: Timestamp, limit: u32) -> Result<Vec<SessionId>, RepoError> {
        self.inner.sessions.expired(now, limit).await
    }
    async fn list(&self, scan: &SessionScan) -> Result<Vec<Session>, RepoError> {
        self.inner.sessions.list(scan).await
    }
    async fn delete(&self, id: &SessionId, at: Timestamp) -> Result<DeleteOutcome, RepoError> {
        self.check()?;
        self.inner.sessions.delete(id, at).await
    }
    async fn purge(&self, max: u64, before: Timestamp) -> Result<PurgeOutcome, RepoError> {
        self.check()?;
        self.inner.sessions.purge(max, before).await
    }
    async fn patch_metadata(
        &self,
        id: &SessionId,
        patch: session_service::repo::MetadataPatch,
    ) -> Result<session_service::repo::Patched, RepoError> {
        self.check()?;
        self.inner.sessions.patch_metadata(id, patch).await
    }
    async fn ended_before(
        &self,
        cutoff: Timestamp,
        limit: u32,
    ) -> Result<Vec<SessionId>, RepoError> {
        self.inner.sessions.ended_before(cutoff, limit).await
    }
    async fn adopt_legacy_sessions(&self, d: Timers, now: Timestamp) -> Result<u64, RepoError> {
        self.check()?;
        self.inner.sessions.adopt_legacy_sessions(d, now).await
    }
    async fn ping(&self) -> Result<(), RepoError> {
        // A full store still answers pings: only the writes tell.
        self.inner.sessions.ping().await
    }
}

#[async_trait]
impl EventRepository for Faulty {
    async fn append(&self, new: NewEvent) -> Result<Appended, RepoError> {
        self.check()?;
        self.inner.events.append(new).await
    }
    async fn append_batch(&self, batch: NewEvents) -> Result<BatchAppended, RepoError> {
        self.check()?;
        self.inner.events.append_batch(batch).await
    }
    async fn get(&self, session_id: &SessionId, event_id: &EventId) -> Result<Event, RepoError> {
        self.inner.events.get(session_id, event_id).await
    }
    async fn page(
        &self,
        session_id: &SessionId,
        range: EventRange,
    ) -> Result<EventPage, RepoError> {
        self.inner.events.page(session_id, range).await
    }
}

/// The application over a real SQLite store behind [`Faulty`], and the switch of its fault. The
/// store is returned so that it lives as long as the test.
async fn app_over_faulty_sqlite() -> (TestApp, Arc<AtomicU8>, TestStore) {
    let store = TestStore::open(Backend::Sqlite).await;
    let ctx = store.ctx();
    let mode = Arc::new(AtomicU8::new(OK));
    let faulty = Faulty {
        inner: ctx.repos.clone(),
        mode: mode.clone(),
    };
    let app = spawn_app(StoreCtx {
        backend: ctx.backend,
        config: ctx.config.clone(),
        repos: Repositories {
            sessions: Arc::new(faulty.clone()),
            events: Arc::new(faulty),
            changes: None,
            feed: ctx.repos.feed.clone(),
            search: ctx.repos.search.clone(),
            stats: ctx.repos.stats.clone(),
            webhooks: ctx.repos.webhooks.clone(),
        },
    })
    .await;
    (app, mode, store)
}

fn event(n: usize) -> serde_json::Value {
    json!({"eventId": format!("e-{n}"), "type": "user_speech", "payload": {"n": n}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_answers_503_storage_full_and_ready_recovers_with_the_first_good_write() {
    let (app, mode, _store) = app_over_faulty_sqlite().await;
    app.create_session("full-1").await;
    let mut acknowledged = Vec::new();
    for n in 0..5 {
        let r = app.post_json("/sessions/full-1/events", &event(n)).await;
        assert_eq!(r.status, 201, "{}", r.text);
        acknowledged.push(n);
    }
    assert_eq!(app.get("/ready").await.status, 200);

    for (fault, code) in [(FULL, "storage_full"), (UNAVAILABLE, "storage_unavailable")] {
        mode.store(fault, Ordering::SeqCst);
        for n in 100..105 {
            let r = app.post_json("/sessions/full-1/events", &event(n)).await;
            r.assert_problem(503, code);
            assert_eq!(r.header("retry-after"), Some("1"));
        }
        let batch = json!({"events": [event(200), event(201)]});
        let r = app.post_json("/sessions/full-1/events:batch", &batch).await;
        r.assert_problem(503, code);
        assert_eq!(r.header("retry-after"), Some("1"));
        let r = app
            .post_json(
                "/sessions",
                &json!({"sessionId": "full-2", "language": "en"}),
            )
            .await;
        r.assert_problem(503, code);
        // Reads still work; readiness says writes do not.
        assert_eq!(app.get("/sessions/full-1").await.status, 200);
        app.get("/ready").await.assert_problem(503, code);

        // Space is freed: the next write succeeds, and readiness follows, without a restart.
        mode.store(OK, Ordering::SeqCst);
        let n = acknowledged.len();
        let r = app.post_json("/sessions/full-1/events", &event(n)).await;
        assert_eq!(r.status, 201, "{}", r.text);
        acknowledged.push(n);
        assert_eq!(app.get("/ready").await.status, 200);
    }

    // Every acknowledged event is there, and none of the refused ones.
    let page = app.get("/sessions/full-1/events?limit=100").await;
    assert_eq!(page.status, 200, "{}", page.text);
    let ids: Vec<String> = page.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventId"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = acknowledged.iter().map(|n| format!("e-{n}")).collect();
    assert_eq!(ids, expected);
    assert_eq!(app.get("/sessions/full-2").await.status, 404);
}

/// An instance taken out of rotation after a failed write gets no more writes, so readiness must
/// come back by itself once storage does: after the hold, `/ready` asks storage again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ready_recovers_by_itself_after_the_hold_without_any_write() {
    let (app, mode, _store) = app_over_faulty_sqlite().await;
    app.create_session("full-1").await;
    mode.store(FULL, Ordering::SeqCst);
    app.post_json("/sessions/full-1/events", &event(1))
        .await
        .assert_problem(503, "storage_full");
    app.get("/ready").await.assert_problem(503, "storage_full");

    mode.store(OK, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while app.get("/ready").await.status != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "/ready did not recover by itself"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
