//! The repository contract's cases, each run on every backend.

use serde_json::{Value, json};
use session_service::domain::{
    EventId, EventType, JsonObject, Language, NewEvent, NewSession, SessionId, Status,
    TerminalStatus, Timestamp,
};
use session_service::repo::{Appended, EventRange, RepoError, Repositories, Start};

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

mod reads;
mod writes;
