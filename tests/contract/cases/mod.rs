//! The repository contract's cases, each run on every backend.

use std::future::Future;

use serde_json::{Value, json};
use session_service::domain::{
    Event, EventId, EventType, JsonObject, Language, NewEvent, NewSession, SessionId, Status,
    TerminalStatus, Timers, Timestamp,
};
use session_service::repo::{
    Appended, EndRequest, EventPage, EventRange, RepoError, Repositories, Start,
};

use crate::support::{Order, StoreCtx};

fn sid(raw: &str) -> SessionId {
    SessionId::parse(raw).unwrap()
}

fn new_session(id: &str) -> NewSession {
    NewSession {
        session_id: sid(id),
        language: Language::parse("en-US").unwrap(),
        metadata: JsonObject::parse(json!({"caller": "+15550100", "tags": ["a", "b"]})).unwrap(),
        started_at: Timestamp::from_millis(1_766_331_015_123).unwrap(),
        timers: Timers::default(),
        redact: None,
    }
}

/// An end with `status` at `at`, without a reason.
fn end_as(status: TerminalStatus, at: Timestamp) -> EndRequest {
    EndRequest {
        status,
        at,
        reason: None,
    }
}

fn new_event(session: &str, event: &str, payload: Value) -> NewEvent {
    NewEvent {
        session_id: sid(session),
        event_id: EventId::parse(event).unwrap(),
        event_type: EventType::UserSpeech,
        payload: JsonObject::parse(payload).unwrap(),
        client_timestamp: None,
        received_at: Timestamp::from_millis(1_766_331_016_000).unwrap(),
        expected_seq: None,
        redact: None,
    }
}

async fn created(repos: &Repositories, id: &str) {
    let outcome = repos.sessions.create_or_get(new_session(id)).await.unwrap();
    assert!(outcome.created);
}

async fn append_new(repos: &Repositories, session: &str, event: &str) -> u64 {
    match repos
        .events
        .append(new_event(session, event, json!({"text": event})))
        .await
        .unwrap()
    {
        Appended::New(e) => e.seq,
        other => panic!("expected a new event, got {other:?}"),
    }
}

fn range(order: Order, start: Start, limit: u32) -> EventRange {
    EventRange {
        order,
        start,
        limit,
    }
}

fn seqs(page: &session_service::repo::EventPage) -> Vec<u64> {
    page.events.iter().map(|e| e.seq).collect()
}

/// The session's stored `event_count`.
async fn event_count(repos: &Repositories, session: &str) -> u64 {
    repos.sessions.get(&sid(session)).await.unwrap().event_count
}

/// The event `event` of `session`, as the repository finds it.
async fn get_event(repos: &Repositories, session: &str, event: &str) -> Result<Event, RepoError> {
    repos
        .events
        .get(&sid(session), &EventId::parse(event).unwrap())
        .await
}

/// The page `range` of `session`'s events, or the repository's error.
async fn try_page(
    repos: &Repositories,
    session: &str,
    range: EventRange,
) -> Result<EventPage, RepoError> {
    repos.events.page(&sid(session), range).await
}

/// The page `range` of `session`'s events.
async fn read_page(repos: &Repositories, session: &str, range: EventRange) -> EventPage {
    try_page(repos, session, range).await.unwrap()
}

/// The first `limit` events of `session` in ascending order.
async fn first_page(repos: &Repositories, session: &str, limit: u32) -> EventPage {
    read_page(repos, session, range(Order::Asc, Start::Offset(0), limit)).await
}

/// Runs `task(repos, i)` for every `i` of `items`, each in a task of its own, all started before
/// any is awaited; the results in the order of `items`.
async fn concurrently<I, T, F, Fut>(repos: &Repositories, items: I, task: F) -> Vec<T>
where
    I: IntoIterator,
    F: Fn(Repositories, I::Item) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = items
        .into_iter()
        .map(|i| tokio::spawn(task(repos.clone(), i)))
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    results
}

mod batch;
mod expected_seq;
mod failures;
mod feed;
mod lifecycle;
mod lifecycle_store;
mod patch;
mod reads;
mod redact;
mod search;
mod stats;
mod webhooks;
mod writes;
