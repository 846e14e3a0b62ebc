//! Creating sessions, appending events, ending sessions.

use std::collections::HashSet;

use serde_json::json;

use super::*;

backend_test! { async fn create_makes_a_session_once_and_then_returns_it_unchanged(s: StoreCtx) {
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
}}

backend_test! { async fn concurrent_creates_make_exactly_one_session(s: StoreCtx) {
    let outcomes = concurrently(&s.repos, 0..32, |repos, i| async move {
        let mut new = new_session("race");
        new.started_at = Timestamp::from_millis(1_000 + i).unwrap();
        repos.sessions.create_or_get(new).await.unwrap()
    })
    .await;
    assert_eq!(outcomes.iter().filter(|o| o.created).count(), 1);
    let stored = s.repos.sessions.get(&sid("race")).await.unwrap();
    assert!(outcomes.iter().all(|o| o.session == stored));
}}

backend_test! { async fn unknown_sessions_are_not_found(s: StoreCtx) {
    let r = s.repos.sessions.get(&sid("nobody")).await;
    assert!(matches!(r, Err(RepoError::NotFound)), "{r:?}");
    let r = try_page(&s.repos, "nobody", range(Order::Asc, Start::Offset(0), 20)).await;
    assert!(matches!(r, Err(RepoError::NotFound)), "{r:?}");
}}

backend_test! { async fn appends_get_dense_seqs_and_activate_the_session(s: StoreCtx) {
    created(&s.repos, "c").await;
    assert_eq!(append_new(&s.repos, "c", "e1").await, 1);
    let session = s.repos.sessions.get(&sid("c")).await.unwrap();
    assert_eq!((session.status, session.event_count), (Status::Active, 1));
    assert_eq!(append_new(&s.repos, "c", "e2").await, 2);
    assert_eq!(append_new(&s.repos, "c", "e3").await, 3);
    assert_eq!(event_count(&s.repos, "c").await, 3);
}}

backend_test! { async fn a_repeated_append_returns_the_stored_event_and_changes_nothing(s: StoreCtx) {
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
    assert_eq!(event_count(&s.repos, "c").await, 1);
}}

backend_test! { async fn concurrent_identical_appends_store_one_event(s: StoreCtx) {
    created(&s.repos, "c").await;
    let outcomes = concurrently(&s.repos, 0..32, |repos, _| async move {
        repos
            .events
            .append(new_event("c", "same", json!({"n": 1})))
            .await
            .unwrap()
    })
    .await;
    let mut news = 0;
    for outcome in outcomes {
        let event = match outcome {
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
    let page = first_page(&s.repos, "c", 100).await;
    assert_eq!(seqs(&page), vec![1]);
}}

backend_test! { async fn concurrent_distinct_appends_get_unique_dense_seqs_and_an_exact_count(s: StoreCtx) {
    created(&s.repos, "c").await;
    let n = 100u64;
    let seqs_handed_out = concurrently(&s.repos, 0..n, |repos, i| async move {
        append_new(&repos, "c", &format!("e{i}")).await
    })
    .await;
    let mut got = HashSet::new();
    for seq in seqs_handed_out {
        assert!(got.insert(seq), "a seq was handed out twice");
    }
    assert_eq!(got, (1..=n).collect::<HashSet<_>>());
    let session = s.repos.sessions.get(&sid("c")).await.unwrap();
    assert_eq!(session.event_count, n);
    let page = first_page(&s.repos, "c", 100).await;
    assert_eq!(seqs(&page), (1..=n).collect::<Vec<_>>());
}}

backend_test! { async fn appends_to_an_unknown_session_are_not_found(s: StoreCtx) {
    let r = s
        .repos
        .events
        .append(new_event("ghost", "e1", json!({})))
        .await;
    assert!(matches!(r, Err(RepoError::NotFound)), "{r:?}");
}}

backend_test! { async fn an_ended_session_refuses_new_events_but_returns_stored_ones(s: StoreCtx) {
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
    assert_eq!(event_count(&s.repos, "c").await, 1);
}}

backend_test! { async fn ending_is_idempotent_and_concurrent_ends_agree_on_one_ended_at(s: StoreCtx) {
    created(&s.repos, "c").await;
    let outcomes = concurrently(&s.repos, 0..16, |repos, i| async move {
        let at = Timestamp::from_millis(1_766_331_100_000 + i).unwrap();
        repos
            .sessions
            .end(&sid("c"), end_as(TerminalStatus::Completed, at))
            .await
            .unwrap()
    })
    .await;
    let mut ended = HashSet::new();
    let mut ended_now = 0;
    for outcome in outcomes {
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
}}

backend_test! { async fn ending_an_unknown_session_is_not_found(s: StoreCtx) {
    let r = s
        .repos
        .sessions
        .end(&sid("ghost"), end_as(TerminalStatus::Completed, Timestamp::now()))
        .await;
    assert!(matches!(r, Err(RepoError::NotFound)), "{r:?}");
}}

backend_test! { async fn event_ids_are_scoped_to_their_session(s: StoreCtx) {
    created(&s.repos, "a").await;
    created(&s.repos, "b").await;
    assert_eq!(append_new(&s.repos, "a", "e1").await, 1);
    assert_eq!(append_new(&s.repos, "b", "e1").await, 1);
    assert_eq!(append_new(&s.repos, "b", "e2").await, 2);
    assert_eq!(event_count(&s.repos, "a").await, 1);
}}

backend_test! { async fn single_events_are_found_by_id(s: StoreCtx) {
    created(&s.repos, "c").await;
    append_new(&s.repos, "c", "e1").await;
    let mut with_time = new_event("c", "e2", json!({"k": [1, 2.5, "x", null, true]}));
    with_time.event_type = EventType::BotSpeech;
    with_time.client_timestamp = Some(Timestamp::parse("2025-12-21T15:30:15.123Z").unwrap());
    s.repos.events.append(with_time.clone()).await.unwrap();

    let e = get_event(&s.repos, "c", "e2").await.unwrap();
    assert_eq!(e.seq, 2);
    assert_eq!(e.event_type, EventType::BotSpeech);
    assert_eq!(e.payload, with_time.payload);
    assert_eq!(e.timestamp.to_string(), "2025-12-21T15:30:15.123Z");

    let missing = get_event(&s.repos, "c", "nope").await;
    assert!(matches!(missing, Err(RepoError::NotFound)));
    let no_session = get_event(&s.repos, "ghost", "e1").await;
    assert!(matches!(no_session, Err(RepoError::NotFound)));
}}
