//! Batch appends: all of a batch's new events are stored, with consecutive seqs in its order,
//! or none is; replays come back as stored; conflicts, ended and expired sessions change
//! nothing.

use serde_json::json;
use session_service::domain::{NewEvents, Timers};
use session_service::repo::{BatchAppended, BatchItem};

use super::*;

/// A batch of `user_speech` events `{"text": id}` for `session`, received at one instant.
fn batch(session: &str, ids: &[&str]) -> NewEvents {
    let events = ids
        .iter()
        .map(|id| new_event(session, id, json!({"text": id})))
        .collect();
    NewEvents::new(events).unwrap()
}

/// `append_batch`, which must not fail.
async fn append_batch(repos: &Repositories, batch: NewEvents) -> BatchAppended {
    repos.events.append_batch(batch).await.unwrap()
}

/// The items of a stored batch, as (new?, event id, seq).
#[track_caller]
fn stored(outcome: &BatchAppended) -> Vec<(bool, String, u64)> {
    let BatchAppended::Stored(items) = outcome else {
        panic!("expected the batch stored, got {outcome:?}");
    };
    items
        .iter()
        .map(|i| {
            let e = i.event();
            (
                matches!(i, BatchItem::New(_)),
                e.event_id.as_str().to_owned(),
                e.seq,
            )
        })
        .collect()
}

fn item(new: bool, id: &str, seq: u64) -> (bool, String, u64) {
    (new, id.to_owned(), seq)
}

/// The event ids of the session in seq order.
async fn stored_ids(repos: &Repositories, session: &str) -> Vec<String> {
    first_page(repos, session, 100)
        .await
        .events
        .iter()
        .map(|e| e.event_id.as_str().to_owned())
        .collect()
}

backend_test! { async fn a_batch_gets_consecutive_seqs_in_request_order_and_activates_the_session(s: StoreCtx) {
    created(&s.repos, "c").await;
    let outcome = append_batch(&s.repos, batch("c", &["z", "a", "m"])).await;
    assert_eq!(
        stored(&outcome),
        vec![item(true, "z", 1), item(true, "a", 2), item(true, "m", 3)]
    );
    let session = s.repos.sessions.get(&sid("c")).await.unwrap();
    assert_eq!((session.status, session.event_count), (Status::Active, 3));
    assert_eq!(session.last_event_at, Some(batch("c", &["x"]).received_at()));
    assert_eq!(append_new(&s.repos, "c", "after").await, 4);
    assert_eq!(stored_ids(&s.repos, "c").await, ["z", "a", "m", "after"]);
}}

backend_test! { async fn a_replayed_batch_returns_the_stored_events_and_changes_nothing(s: StoreCtx) {
    created(&s.repos, "c").await;
    let first = append_batch(&s.repos, batch("c", &["e1", "e2"])).await;
    let again = append_batch(&s.repos, batch("c", &["e1", "e2"])).await;
    assert_eq!(stored(&again), vec![item(false, "e1", 1), item(false, "e2", 2)]);
    let (BatchAppended::Stored(a), BatchAppended::Stored(b)) = (&first, &again) else {
        unreachable!()
    };
    let events = |items: &[BatchItem]| items.iter().map(|i| i.event().clone()).collect::<Vec<_>>();
    assert_eq!(events(a), events(b), "the same events, as stored");
    assert_eq!(event_count(&s.repos, "c").await, 2);
}}

backend_test! { async fn a_batch_mixing_replays_and_new_events_stores_only_the_new_ones(s: StoreCtx) {
    created(&s.repos, "c").await;
    append_new(&s.repos, "c", "e2").await;
    let outcome = append_batch(&s.repos, batch("c", &["e1", "e2", "e3"])).await;
    assert_eq!(
        stored(&outcome),
        vec![item(true, "e1", 2), item(false, "e2", 1), item(true, "e3", 3)]
    );
    assert_eq!(event_count(&s.repos, "c").await, 3);
    assert_eq!(stored_ids(&s.repos, "c").await, ["e2", "e1", "e3"]);
}}

backend_test! { async fn a_batch_with_one_conflicting_event_stores_nothing(s: StoreCtx) {
    created(&s.repos, "c").await;
    s.repos
        .events
        .append(new_event("c", "taken", json!({"text": "other content"})))
        .await
        .unwrap();
    let outcome = append_batch(&s.repos, batch("c", &["n1", "taken", "n2"])).await;
    assert_eq!(outcome, BatchAppended::Conflicts(vec![1]));
    assert_eq!(event_count(&s.repos, "c").await, 1);
    assert_eq!(stored_ids(&s.repos, "c").await, ["taken"]);
    let r = get_event(&s.repos, "c", "n1").await;
    assert!(matches!(r, Err(RepoError::NotFound)), "{r:?}");
    // The conflict took no seq: the next event is 2.
    assert_eq!(append_new(&s.repos, "c", "next").await, 2);
}}

backend_test! { async fn an_ended_session_refuses_a_batch_with_new_events_but_replays_stored_ones(s: StoreCtx) {
    created(&s.repos, "c").await;
    append_batch(&s.repos, batch("c", &["e1", "e2"])).await;
    let at = Timestamp::from_millis(1_766_331_100_000).unwrap();
    s.repos
        .sessions
        .end(&sid("c"), end_as(TerminalStatus::Completed, at))
        .await
        .unwrap();
    let outcome = append_batch(&s.repos, batch("c", &["e1", "e3", "e4"])).await;
    assert_eq!(
        outcome,
        BatchAppended::SessionEnded {
            status: Status::Completed,
            new: vec![1, 2]
        }
    );
    assert_eq!(event_count(&s.repos, "c").await, 2);
    let replay = append_batch(&s.repos, batch("c", &["e2", "e1"])).await;
    assert_eq!(stored(&replay), vec![item(false, "e2", 2), item(false, "e1", 1)]);
}}

backend_test! { async fn batches_for_deleted_or_unknown_sessions_are_refused(s: StoreCtx) {
    let r = s.repos.events.append_batch(batch("ghost", &["e1"])).await;
    assert!(matches!(r, Err(RepoError::NotFound)), "{r:?}");
    created(&s.repos, "gone").await;
    append_batch(&s.repos, batch("gone", &["e1"])).await;
    s.repos
        .sessions
        .delete(&sid("gone"), Timestamp::now())
        .await
        .unwrap();
    for ids in [&["e1"][..], &["e1", "e2"]] {
        let r = s.repos.events.append_batch(batch("gone", ids)).await;
        assert!(matches!(r, Err(RepoError::Deleted)), "{ids:?}: {r:?}");
    }
}}

backend_test! { async fn identical_copies_in_one_request_are_one_event_of_the_batch(s: StoreCtx) {
    created(&s.repos, "c").await;
    let copy = || new_event("c", "same", json!({"text": "same"}));
    let other = new_event("c", "other", json!({}));
    let (folded, positions) =
        NewEvents::folding_copies(vec![copy(), other.clone(), copy()]).unwrap();
    assert_eq!(positions, [0, 1, 0]);
    let outcome = append_batch(&s.repos, folded).await;
    assert_eq!(stored(&outcome), vec![item(true, "same", 1), item(true, "other", 2)]);
    assert_eq!(event_count(&s.repos, "c").await, 2);
    let mut different = copy();
    different.payload = JsonObject::parse(json!({"text": "not the same"})).unwrap();
    assert!(NewEvents::folding_copies(vec![copy(), different]).is_err());
    assert!(NewEvents::new(vec![copy(), copy()]).is_err(), "a batch names each id once");
}}

backend_test! { async fn a_batch_at_the_deadline_records_the_timer_end_and_stores_nothing(s: StoreCtx) {
    let mut new = new_session("timed");
    new.timers = Timers {
        inactivity_seconds: 10,
        max_duration_seconds: 0,
    };
    let started = new.started_at;
    s.repos.sessions.create_or_get(new).await.unwrap();
    let late = |ids: &[&str]| {
        let events = ids
            .iter()
            .map(|id| {
                let mut e = new_event("timed", id, json!({}));
                e.received_at = started.plus_seconds(10);
                e
            })
            .collect();
        NewEvents::new(events).unwrap()
    };
    let outcome = append_batch(&s.repos, late(&["e1", "e2"])).await;
    let BatchAppended::Expired { session, new } = outcome else {
        panic!("expected the timer's end, got {outcome:?}");
    };
    assert_eq!(new, [0, 1]);
    assert_eq!(session.status, Status::Failed);
    assert_eq!(session.ended_at, Some(started.plus_seconds(10)));
    let stored = s.repos.sessions.get(&sid("timed")).await.unwrap();
    assert_eq!((stored.status, stored.event_count), (Status::Failed, 0));
    let again = append_batch(&s.repos, late(&["e1"])).await;
    assert_eq!(
        again,
        BatchAppended::SessionEnded {
            status: Status::Failed,
            new: vec![0]
        }
    );
}}

backend_test! { async fn concurrent_identical_batches_from_two_instances_store_it_once_with_the_same_seqs(s: StoreCtx) {
    created(&s.repos, "c").await;
    // A second instance on the same store: on MongoDB its appends do not queue behind this
    // one's, so the unique index decides.
    let other = s.reopen().await;
    let outcomes = concurrently(&s.repos, 0..8, |repos, i| {
        let repos = if i % 2 == 0 { repos } else { other.clone() };
        async move { repos.events.append_batch(batch("c", &["a", "b", "c"])).await.unwrap() }
    })
    .await;
    let mut fresh = 0;
    for outcome in &outcomes {
        let items = stored(outcome);
        let seqs: Vec<_> = items.iter().map(|(_, id, seq)| (id.clone(), *seq)).collect();
        assert_eq!(seqs, [("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]);
        fresh += usize::from(items.iter().all(|(new, _, _)| *new));
        assert!(items.iter().all(|(new, _, _)| *new) || items.iter().all(|(new, _, _)| !*new));
    }
    assert_eq!(fresh, 1, "exactly one batch stored the events");
    assert_eq!(event_count(&s.repos, "c").await, 3);
}}

backend_test! { async fn concurrent_batches_and_single_appends_keep_each_batch_consecutive(s: StoreCtx) {
    created(&s.repos, "c").await;
    let outcomes = concurrently(&s.repos, 0..6, |repos, w| async move {
        if w % 3 == 2 {
            let seq = append_new(&repos, "c", &format!("single-{w}")).await;
            vec![(true, format!("single-{w}"), seq)]
        } else {
            let ids: Vec<String> = (0..5).map(|i| format!("w{w}-{i}")).collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            stored(&repos.events.append_batch(batch("c", &ids)).await.unwrap())
        }
    })
    .await;
    let mut all = Vec::new();
    for items in outcomes {
        let first = items[0].2;
        let seqs: Vec<u64> = items.iter().map(|i| i.2).collect();
        assert_eq!(seqs, (first..first + items.len() as u64).collect::<Vec<_>>());
        all.extend(seqs);
    }
    all.sort();
    assert_eq!(all, (1..=22).collect::<Vec<_>>());
    assert_eq!(event_count(&s.repos, "c").await, 22);
}}
