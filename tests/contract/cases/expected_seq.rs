//! Conditional appends (`expected_seq`): a new event, or a batch's new events, is stored only if
//! the session's last seq is the expected one; a replay is answered as stored whatever it says;
//! of racing writers expecting the same seq, exactly one stores.

use serde_json::json;
use session_service::domain::NewEvents;
use session_service::repo::BatchAppended;

use super::*;

fn expecting(session: &str, event: &str, seq: u64) -> NewEvent {
    let mut new = new_event(session, event, json!({"text": event}));
    new.expected_seq = Some(seq);
    new
}

fn batch_expecting(session: &str, ids: &[&str], seq: u64) -> NewEvents {
    NewEvents::new(ids.iter().map(|id| expecting(session, id, seq)).collect()).unwrap()
}

backend_test! { async fn a_single_append_is_stored_only_at_the_expected_seq(s: StoreCtx) {
    created(&s.repos, "c").await;
    // 0: no events yet.
    let first = s.repos.events.append(expecting("c", "e1", 0)).await.unwrap();
    assert!(matches!(&first, Appended::New(e) if e.seq == 1), "{first:?}");
    let stale = s.repos.events.append(expecting("c", "e2", 0)).await.unwrap();
    assert_eq!(stale, Appended::SeqMismatch(1));
    let ahead = s.repos.events.append(expecting("c", "e2", 5)).await.unwrap();
    assert_eq!(ahead, Appended::SeqMismatch(1));
    assert_eq!(event_count(&s.repos, "c").await, 1);
    assert!(matches!(get_event(&s.repos, "c", "e2").await, Err(RepoError::NotFound)));
    // A replay is answered as stored, whatever the writer expected.
    let replay = s.repos.events.append(expecting("c", "e1", 7)).await.unwrap();
    assert!(matches!(&replay, Appended::Existing(e) if e.seq == 1), "{replay:?}");
    let second = s.repos.events.append(expecting("c", "e2", 1)).await.unwrap();
    assert!(matches!(&second, Appended::New(e) if e.seq == 2), "{second:?}");
}}

backend_test! { async fn a_batch_is_stored_only_at_the_expected_seq(s: StoreCtx) {
    created(&s.repos, "b").await;
    append_new(&s.repos, "b", "e1").await;
    let stale = s.repos.events.append_batch(batch_expecting("b", &["e2", "e3"], 0)).await.unwrap();
    assert_eq!(stale, BatchAppended::SeqMismatch { current: 1 });
    assert_eq!(event_count(&s.repos, "b").await, 1);
    let stored = s.repos.events.append_batch(batch_expecting("b", &["e2", "e3"], 1)).await.unwrap();
    let BatchAppended::Stored(items) = &stored else { panic!("{stored:?}") };
    assert_eq!(items.iter().map(|i| i.event().seq).collect::<Vec<_>>(), [2, 3]);
    // The same batch again is all replays: answered as stored, though the count moved on.
    let replay = s.repos.events.append_batch(batch_expecting("b", &["e2", "e3"], 1)).await.unwrap();
    assert!(matches!(replay, BatchAppended::Stored(_)), "{replay:?}");
    // One new event among replays is held to the expectation.
    let mixed = s.repos.events.append_batch(batch_expecting("b", &["e3", "e4"], 1)).await.unwrap();
    assert_eq!(mixed, BatchAppended::SeqMismatch { current: 3 });
    assert_eq!(event_count(&s.repos, "b").await, 3);
}}

backend_test! { async fn an_ended_session_is_refused_as_ended_whatever_the_expected_seq(s: StoreCtx) {
    created(&s.repos, "x").await;
    let at = Timestamp::from_millis(1_766_331_017_000).unwrap();
    s.repos.sessions.end(&sid("x"), end_as(TerminalStatus::Completed, at)).await.unwrap();
    let r = s.repos.events.append(expecting("x", "e1", 3)).await.unwrap();
    assert_eq!(r, Appended::SessionEnded(Status::Completed));
}}

backend_test! { async fn of_writers_racing_at_one_expected_seq_exactly_one_stores(s: StoreCtx) {
    created(&s.repos, "r").await;
    append_new(&s.repos, "r", "e0").await;
    let singles = concurrently(&s.repos, 0..16, |repos, i| async move {
        repos.events.append(expecting("r", &format!("s{i}"), 1)).await.unwrap()
    })
    .await;
    let stored = singles.iter().filter(|a| matches!(a, Appended::New(e) if e.seq == 2)).count();
    let refused = singles.iter().filter(|a| **a == Appended::SeqMismatch(2)).count();
    assert_eq!((stored, refused), (1, 15), "{singles:?}");
    let batches = concurrently(&s.repos, 0..16, |repos, i| async move {
        let ids = [format!("b{i}-1"), format!("b{i}-2")];
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        repos.events.append_batch(batch_expecting("r", &ids, 2)).await.unwrap()
    })
    .await;
    let stored = batches.iter().filter(|b| matches!(b, BatchAppended::Stored(_))).count();
    let refused = batches
        .iter()
        .filter(|b| **b == BatchAppended::SeqMismatch { current: 4 })
        .count();
    assert_eq!((stored, refused), (1, 15), "{batches:?}");
    assert_eq!(event_count(&s.repos, "r").await, 4);
}}
