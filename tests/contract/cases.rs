use std::collections::HashSet;

use serde_json::{Value, json};
use session_service::domain::Order;
use session_service::domain::{
    EventId, EventType, JsonObject, Language, NewEvent, NewSession, SessionId, Status,
    TerminalStatus, Timers, Timestamp,
};
use session_service::repo::{Appended, EndRequest, EventRange, RepoError, Repositories, Start};

use crate::support::StoreCtx;

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
    }
}

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

pub async fn create_makes_a_session_once_and_then_returns_it_unchanged(s: StoreCtx) {
    let first = s
        .repos
        .sessions
        .create_or_get(new_session("call-1"))
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.session.status, Status::Initiated);
    assert_eq!(first.session.event_count, 0);
    assert_eq!(first.session.ended_at, None);

    let mut different = new_session("call-1");
    different.language = Language::parse("fr").unwrap();
    different.metadata = JsonObject::default();
    different.started_at = Timestamp::from_millis(0).unwrap();
    let second = s.repos.sessions.create_or_get(different).await.unwrap();
    assert!(!second.created);
    assert_eq!(second.session, first.session);
    assert_eq!(
        s.repos.sessions.get(&sid("call-1")).await.unwrap(),
        first.session
    );
}

pub async fn concurrent_creates_make_exactly_one_session(s: StoreCtx) {
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let repos = s.repos.clone();
            tokio::spawn(async move {
                let mut new = new_session("race");
                new.started_at = Timestamp::from_millis(1_000 + i).unwrap();
                repos.sessions.create_or_get(new).await.unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    assert_eq!(outcomes.iter().filter(|o| o.created).count(), 1);
    let stored = s.repos.sessions.get(&sid("race")).await.unwrap();
    assert!(outcomes.iter().all(|o| o.session == stored));
}

pub async fn unknown_sessions_are_not_found(s: StoreCtx) {
    let r = s.repos.sessions.get(&sid("nobody")).await;
    assert!(matches!(r, Err(RepoError::NotFound)), "{r:?}");
    let r = s
        .repos
        .events
        .page(&sid("nobody"), range(Order::Asc, Start::Offset(0), 20))
        .await;
    assert!(matches!(r, Err(RepoError::NotFound)), "{r:?}");
}

pub async fn appends_get_dense_seqs_and_activate_the_session(s: StoreCtx) {
    created(&s.repos, "c").await;
    assert_eq!(append_new(&s.repos, "c", "e1").await, 1);
    let session = s.repos.sessions.get(&sid("c")).await.unwrap();
    assert_eq!((session.status, session.event_count), (Status::Active, 1));
    assert_eq!(append_new(&s.repos, "c", "e2").await, 2);
    assert_eq!(append_new(&s.repos, "c", "e3").await, 3);
    assert_eq!(
        s.repos.sessions.get(&sid("c")).await.unwrap().event_count,
        3
    );
}

pub async fn a_repeated_append_returns_the_stored_event_and_changes_nothing(s: StoreCtx) {
    created(&s.repos, "c").await;
    append_new(&s.repos, "c", "e1").await;
    let Appended::Existing(stored) = s
        .repos
        .events
        .append(new_event("c", "e1", json!({"text": "something else"})))
        .await
        .unwrap()
    else {
        panic!("expected the stored event");
    };
    assert_eq!(stored.seq, 1);
    assert_eq!(stored.payload.as_map()["text"], json!("e1"));
    assert_eq!(
        s.repos.sessions.get(&sid("c")).await.unwrap().event_count,
        1
    );
}

pub async fn concurrent_identical_appends_store_one_event(s: StoreCtx) {
    created(&s.repos, "c").await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let repos = s.repos.clone();
            tokio::spawn(async move {
                repos
                    .events
                    .append(new_event("c", "same", json!({"n": 1})))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut news = 0;
    for t in tasks {
        let event = match t.await.unwrap() {
            Appended::New(e) => {
                news += 1;
                e
            }
            Appended::Existing(e) => e,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(event.seq, 1);
    }
    assert_eq!(news, 1, "exactly one append stores the event");
    let session = s.repos.sessions.get(&sid("c")).await.unwrap();
    assert_eq!(session.event_count, 1);
    let page = s
        .repos
        .events
        .page(&sid("c"), range(Order::Asc, Start::Offset(0), 100))
        .await
        .unwrap();
    assert_eq!(seqs(&page), vec![1]);
}

pub async fn concurrent_distinct_appends_get_unique_dense_seqs_and_an_exact_count(s: StoreCtx) {
    created(&s.repos, "c").await;
    let n = 100u64;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let repos = s.repos.clone();
            tokio::spawn(async move { append_new(&repos, "c", &format!("e{i}")).await })
        })
        .collect();
    let mut got = HashSet::new();
    for t in tasks {
        assert!(got.insert(t.await.unwrap()), "a seq was handed out twice");
    }
    assert_eq!(got, (1..=n).collect::<HashSet<_>>());
    let session = s.repos.sessions.get(&sid("c")).await.unwrap();
    assert_eq!(session.event_count, n);
    let page = s
        .repos
        .events
        .page(&sid("c"), range(Order::Asc, Start::Offset(0), 100))
        .await
        .unwrap();
    assert_eq!(seqs(&page), (1..=n).collect::<Vec<_>>());
}

pub async fn appends_to_an_unknown_session_are_not_found(s: StoreCtx) {
    let r = s
        .repos
        .events
        .append(new_event("ghost", "e1", json!({})))
        .await;
    assert!(matches!(r, Err(RepoError::NotFound)), "{r:?}");
}

pub async fn an_ended_session_refuses_new_events_but_returns_stored_ones(s: StoreCtx) {
    created(&s.repos, "c").await;
    append_new(&s.repos, "c", "e1").await;
    let at = Timestamp::from_millis(1_766_331_100_000).unwrap();
    s.repos
        .sessions
        .end(&sid("c"), end_as(TerminalStatus::Failed, at))
        .await
        .unwrap();
    let r = s
        .repos
        .events
        .append(new_event("c", "e2", json!({})))
        .await
        .unwrap();
    assert_eq!(r, Appended::SessionEnded(Status::Failed));
    let r = s
        .repos
        .events
        .append(new_event("c", "e1", json!({"text": "e1"})))
        .await
        .unwrap();
    assert!(matches!(r, Appended::Existing(e) if e.seq == 1));
    assert_eq!(
        s.repos.sessions.get(&sid("c")).await.unwrap().event_count,
        1
    );
}

pub async fn ending_is_idempotent_and_concurrent_ends_agree_on_one_ended_at(s: StoreCtx) {
    created(&s.repos, "c").await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let repos = s.repos.clone();
            tokio::spawn(async move {
                let at = Timestamp::from_millis(1_766_331_100_000 + i).unwrap();
                repos
                    .sessions
                    .end(&sid("c"), end_as(TerminalStatus::Completed, at))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ended = HashSet::new();
    let mut ended_now = 0;
    for t in tasks {
        let outcome = t.await.unwrap();
        ended_now += usize::from(outcome.ended_now);
        let session = outcome.session;
        assert_eq!(session.status, Status::Completed);
        ended.insert(session.ended_at.expect("ended_at set"));
    }
    assert_eq!(ended.len(), 1, "every caller must see the same ended_at");
    assert_eq!(ended_now, 1, "exactly one caller ended it");
    // Asking for the other status later changes nothing and shows what is stored.
    let later = Timestamp::from_millis(1_766_331_200_000).unwrap();
    let again = s
        .repos
        .sessions
        .end(&sid("c"), end_as(TerminalStatus::Failed, later))
        .await
        .unwrap();
    assert_eq!(again.session.status, Status::Completed);
    assert_eq!(
        Some(again.session.ended_at.unwrap()),
        ended.into_iter().next()
    );
    assert!(!again.ended_now);
}

pub async fn ending_an_unknown_session_is_not_found(s: StoreCtx) {
    let r = s
        .repos
        .sessions
        .end(
            &sid("ghost"),
            end_as(TerminalStatus::Completed, Timestamp::now()),
        )
        .await;
    assert!(matches!(r, Err(RepoError::NotFound)), "{r:?}");
}

pub async fn event_ids_are_scoped_to_their_session(s: StoreCtx) {
    created(&s.repos, "a").await;
    created(&s.repos, "b").await;
    assert_eq!(append_new(&s.repos, "a", "e1").await, 1);
    assert_eq!(append_new(&s.repos, "b", "e1").await, 1);
    assert_eq!(append_new(&s.repos, "b", "e2").await, 2);
    assert_eq!(
        s.repos.sessions.get(&sid("a")).await.unwrap().event_count,
        1
    );
}

pub async fn single_events_are_found_by_id(s: StoreCtx) {
    created(&s.repos, "c").await;
    append_new(&s.repos, "c", "e1").await;
    let mut with_time = new_event("c", "e2", json!({"k": [1, 2.5, "x", null, true]}));
    with_time.event_type = EventType::BotSpeech;
    with_time.client_timestamp = Some(Timestamp::parse("2025-12-21T15:30:15.123Z").unwrap());
    s.repos.events.append(with_time.clone()).await.unwrap();

    let e = s
        .repos
        .events
        .get(&sid("c"), &EventId::parse("e2").unwrap())
        .await
        .unwrap();
    assert_eq!(e.seq, 2);
    assert_eq!(e.event_type, EventType::BotSpeech);
    assert_eq!(e.payload, with_time.payload);
    assert_eq!(e.timestamp.to_string(), "2025-12-21T15:30:15.123Z");

    let missing = s
        .repos
        .events
        .get(&sid("c"), &EventId::parse("nope").unwrap())
        .await;
    assert!(matches!(missing, Err(RepoError::NotFound)));
    let no_session = s
        .repos
        .events
        .get(&sid("ghost"), &EventId::parse("e1").unwrap())
        .await;
    assert!(matches!(no_session, Err(RepoError::NotFound)));
}

async fn session_with_events(repos: &Repositories, id: &str, n: u64) {
    created(repos, id).await;
    for i in 1..=n {
        append_new(repos, id, &format!("e{i}")).await;
    }
}

pub async fn pages_by_offset_in_both_orders(s: StoreCtx) {
    session_with_events(&s.repos, "c", 7).await;
    let page = |order, skip, limit| {
        let repos = s.repos.clone();
        async move {
            repos
                .events
                .page(&sid("c"), range(order, Start::Offset(skip), limit))
                .await
                .unwrap()
        }
    };
    let p = page(Order::Asc, 0, 3).await;
    assert_eq!(
        (seqs(&p), p.has_more, p.session.event_count),
        (vec![1, 2, 3], true, 7)
    );
    let p = page(Order::Asc, 6, 3).await;
    assert_eq!((seqs(&p), p.has_more), (vec![7], false));
    let p = page(Order::Desc, 0, 3).await;
    assert_eq!((seqs(&p), p.has_more), (vec![7, 6, 5], true));
    let p = page(Order::Desc, 3, 3).await;
    assert_eq!((seqs(&p), p.has_more), (vec![4, 3, 2], true));
    let p = page(Order::Desc, 6, 3).await;
    assert_eq!((seqs(&p), p.has_more), (vec![1], false));
}

pub async fn pages_after_a_seq_in_both_orders(s: StoreCtx) {
    session_with_events(&s.repos, "c", 7).await;
    let page = |order, after, limit| {
        let repos = s.repos.clone();
        async move {
            repos
                .events
                .page(&sid("c"), range(order, Start::AfterSeq(after), limit))
                .await
                .unwrap()
        }
    };
    let p = page(Order::Asc, 3, 3).await;
    assert_eq!((seqs(&p), p.has_more), (vec![4, 5, 6], true));
    let p = page(Order::Asc, 6, 3).await;
    assert_eq!((seqs(&p), p.has_more), (vec![7], false));
    let p = page(Order::Desc, 5, 3).await;
    assert_eq!((seqs(&p), p.has_more), (vec![4, 3, 2], true));
    let p = page(Order::Desc, 2, 3).await;
    assert_eq!((seqs(&p), p.has_more), (vec![1], false));
}

pub async fn pages_past_the_end_are_empty(s: StoreCtx) {
    session_with_events(&s.repos, "c", 2).await;
    for r in [
        range(Order::Asc, Start::Offset(2), 5),
        range(Order::Asc, Start::Offset(u64::MAX), 5),
        range(Order::Desc, Start::Offset(2), 5),
        range(Order::Asc, Start::AfterSeq(2), 5),
        range(Order::Asc, Start::AfterSeq(u64::MAX), 5),
        range(Order::Desc, Start::AfterSeq(1), 5),
        range(Order::Desc, Start::AfterSeq(0), 5),
    ] {
        let p = s.repos.events.page(&sid("c"), r).await.unwrap();
        assert!(
            p.events.is_empty() && !p.has_more,
            "{r:?} gave {:?}",
            seqs(&p)
        );
    }
}

pub async fn a_page_read_during_appends_never_shows_more_than_its_count(s: StoreCtx) {
    created(&s.repos, "c").await;
    let writer = {
        let repos = s.repos.clone();
        tokio::spawn(async move {
            for i in 0..60 {
                append_new(&repos, "c", &format!("e{i}")).await;
            }
        })
    };
    while !writer.is_finished() {
        let p = s
            .repos
            .events
            .page(&sid("c"), range(Order::Asc, Start::Offset(0), 100))
            .await
            .unwrap();
        assert_eq!(seqs(&p), (1..=p.session.event_count).collect::<Vec<_>>());
    }
    writer.await.unwrap();
}

pub async fn accepted_json_round_trips_exactly(s: StoreCtx) {
    let payload = json!({
        "z": 1, "a": 2, "m": {"y": null, "b": [true, false]},
        "max": i64::MAX, "min": i64::MIN, "zero": 0, "neg": -17,
        "float": 1.0, "tenth": 0.1, "big": 1e300, "tiny": 5e-324, "negzero": -0.0,
        "text": "héllo \u{1F600} \"quoted\" \\ \n\t \u{0}nul-in-value",
        "dotted.key": "ok", "dollar$inside": "ok", "": "empty key",
        "empty": {}, "list": [], "nested": [[[{"deep": [1, [2, [3]]]}]]],
    });
    created(&s.repos, "c").await;
    let new = new_event("c", "json", payload.clone());
    let Appended::New(stored) = s.repos.events.append(new).await.unwrap() else {
        panic!("expected a new event");
    };
    let read = s
        .repos
        .events
        .get(&sid("c"), &EventId::parse("json").unwrap())
        .await
        .unwrap();
    for event in [&stored, &read] {
        // Same JSON text: same keys in the same order, same numbers written the same way.
        assert_eq!(
            serde_json::to_string(event.payload.as_map()).unwrap(),
            serde_json::to_string(&payload).unwrap()
        );
    }

    let mut session = new_session("meta");
    session.metadata = JsonObject::parse(payload.clone()).unwrap();
    s.repos.sessions.create_or_get(session).await.unwrap();
    let read = s.repos.sessions.get(&sid("meta")).await.unwrap();
    assert_eq!(
        serde_json::to_string(read.metadata.as_map()).unwrap(),
        serde_json::to_string(&payload).unwrap()
    );
}

pub async fn everything_survives_reopening_the_store(s: StoreCtx) {
    session_with_events(&s.repos, "c", 3).await;
    s.repos
        .sessions
        .end(
            &sid("c"),
            end_as(TerminalStatus::Completed, Timestamp::now()),
        )
        .await
        .unwrap();
    let before = s.repos.sessions.get(&sid("c")).await.unwrap();
    let reopened = s.reopen().await;
    assert_eq!(reopened.sessions.get(&sid("c")).await.unwrap(), before);
    let p = reopened
        .events
        .page(&sid("c"), range(Order::Asc, Start::Offset(0), 10))
        .await
        .unwrap();
    assert_eq!(seqs(&p), vec![1, 2, 3]);
}

pub async fn ping_answers_when_the_store_is_up(s: StoreCtx) {
    s.repos.sessions.ping().await.unwrap();
}

pub async fn two_instances_appending_to_one_session_keep_seqs_dense_and_counts_exact(s: StoreCtx) {
    // A second store on the same database, as a second service instance would have: appends from
    // the two meet only in the database itself.
    let other = s.reopen().await;
    created(&s.repos, "c").await;
    let tasks: Vec<_> = (0..60u64)
        .map(|i| {
            let repos = if i % 2 == 0 {
                s.repos.clone()
            } else {
                other.clone()
            };
            tokio::spawn(async move { append_new(&repos, "c", &format!("e{i}")).await })
        })
        .collect();
    let mut got = HashSet::new();
    for t in tasks {
        assert!(got.insert(t.await.unwrap()), "a seq was handed out twice");
    }
    assert_eq!(got, (1..=60).collect::<HashSet<_>>());
    assert_eq!(
        s.repos.sessions.get(&sid("c")).await.unwrap().event_count,
        60
    );
}
