//! Reading pages and single events back, exact JSON, reopening, two instances on one store.

use std::collections::HashSet;

use serde_json::json;

use super::*;

async fn session_with_events(repos: &Repositories, id: &str, n: u64) {
    created(repos, id).await;
    for i in 1..=n {
        append_new(repos, id, &format!("e{i}")).await;
    }
}

backend_test! { async fn pages_by_offset_in_both_orders(s: StoreCtx) {
    session_with_events(&s.repos, "c", 7).await;
    let page = |order, skip, limit| read_page(&s.repos, "c", range(order, Start::Offset(skip), limit));
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
}}

backend_test! { async fn pages_after_a_seq_in_both_orders(s: StoreCtx) {
    session_with_events(&s.repos, "c", 7).await;
    let page = |order, after, limit| read_page(&s.repos, "c", range(order, Start::AfterSeq(after), limit));
    let p = page(Order::Asc, 3, 3).await;
    assert_eq!((seqs(&p), p.has_more), (vec![4, 5, 6], true));
    let p = page(Order::Asc, 6, 3).await;
    assert_eq!((seqs(&p), p.has_more), (vec![7], false));
    let p = page(Order::Desc, 5, 3).await;
    assert_eq!((seqs(&p), p.has_more), (vec![4, 3, 2], true));
    let p = page(Order::Desc, 2, 3).await;
    assert_eq!((seqs(&p), p.has_more), (vec![1], false));
}}

backend_test! { async fn pages_past_the_end_are_empty(s: StoreCtx) {
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
}}

backend_test! { async fn a_page_read_during_appends_never_shows_more_than_its_count(s: StoreCtx) {
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
        let p = first_page(&s.repos, "c", 100).await;
        assert_eq!(seqs(&p), (1..=p.session.event_count).collect::<Vec<_>>());
    }
    writer.await.unwrap();
}}

backend_test! { async fn accepted_json_round_trips_exactly(s: StoreCtx) {
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
    let read = get_event(&s.repos, "c", "json").await.unwrap();
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
}}

backend_test! { async fn everything_survives_reopening_the_store(s: StoreCtx) {
    session_with_events(&s.repos, "c", 3).await;
    s.repos
        .sessions
        .end(&sid("c"), end_as(TerminalStatus::Completed, Timestamp::now()))
        .await
        .unwrap();
    let before = s.repos.sessions.get(&sid("c")).await.unwrap();
    let reopened = s.reopen().await;
    assert_eq!(reopened.sessions.get(&sid("c")).await.unwrap(), before);
    let p = first_page(&reopened, "c", 10).await;
    assert_eq!(seqs(&p), vec![1, 2, 3]);
}}

backend_test! { async fn ping_answers_when_the_store_is_up(s: StoreCtx) {
    s.repos.sessions.ping().await.unwrap();
}}

// What one instance did to a session is what the next append of another instance starts from
// (an instance may keep what appends need of a session between them, so this checks it is
// forgotten when someone else writes): events the other stored, and its end.
backend_test! { async fn an_append_sees_what_another_instance_did_to_the_session(s: StoreCtx) {
    let other = s.reopen().await;
    created(&s.repos, "c").await;
    assert_eq!(append_new(&s.repos, "c", "a1").await, 1);
    assert_eq!(append_new(&s.repos, "c", "a2").await, 2);
    assert_eq!(append_new(&other, "c", "b1").await, 3);
    assert_eq!(append_new(&s.repos, "c", "a3").await, 4);
    let at = Timestamp::from_millis(1_766_331_017_000).unwrap();
    other
        .sessions
        .end(&sid("c"), end_as(TerminalStatus::Completed, at))
        .await
        .unwrap();
    let late = s
        .repos
        .events
        .append(new_event("c", "a4", json!({"text": "late"})))
        .await
        .unwrap();
    assert!(
        matches!(late, Appended::SessionEnded(Status::Completed)),
        "an append after another instance ended the session: {late:?}"
    );
    assert_eq!(event_count(&s.repos, "c").await, 4);
}}

backend_test! { async fn two_instances_appending_to_one_session_keep_seqs_dense_and_counts_exact(s: StoreCtx) {
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
    assert_eq!(event_count(&s.repos, "c").await, 60);
}}
