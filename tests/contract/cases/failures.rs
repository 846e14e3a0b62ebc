//! Writes that fail or are refused (conflicting batches, unknown sessions, ended sessions,
//! replays), interleaved with writes that succeed, from concurrent tasks: afterwards the stored
//! seqs are 1..=n, `event_count` is n, and n is exactly the number of events acknowledged as new.

use serde_json::json;
use session_service::domain::NewEvents;
use session_service::repo::{BatchAppended, BatchItem};

use super::*;

/// What one task did: how many events it was told were stored new.
async fn mixed_writes(repos: Repositories, task: usize) -> u64 {
    let mut new = 0;
    for round in 0..6 {
        let id = |what: &str| format!("t{task}-r{round}-{what}");
        // A good single append.
        if let Appended::New(_) = repos
            .events
            .append(new_event("c", &id("one"), json!({"n": round})))
            .await
            .unwrap()
        {
            new += 1;
        }
        // A batch whose second event reuses an id with other content: refused whole.
        let clash = NewEvents::new(vec![
            new_event("c", &id("never"), json!({})),
            new_event("c", &id("one"), json!({"other": true})),
        ])
        .unwrap();
        let refused = repos.events.append_batch(clash).await.unwrap();
        assert_eq!(refused, BatchAppended::Conflicts(vec![1]));
        // An append and a batch to a session that does not exist.
        assert!(matches!(
            repos
                .events
                .append(new_event("nobody", &id("x"), json!({})))
                .await,
            Err(RepoError::NotFound)
        ));
        let lost = NewEvents::new(vec![new_event("nobody", &id("y"), json!({}))]).unwrap();
        assert!(matches!(
            repos.events.append_batch(lost).await,
            Err(RepoError::NotFound)
        ));
        // A good batch with a replay in it.
        let good = NewEvents::new(vec![
            new_event("c", &id("b1"), json!({})),
            new_event("c", &id("one"), json!({"n": round})),
            new_event("c", &id("b2"), json!({})),
        ])
        .unwrap();
        match repos.events.append_batch(good).await.unwrap() {
            BatchAppended::Stored(items) => {
                new += items
                    .iter()
                    .filter(|i| matches!(i, BatchItem::New(_)))
                    .count() as u64;
            }
            other => panic!("expected the batch stored, got {other:?}"),
        }
        // A replay of the single append.
        assert!(matches!(
            repos
                .events
                .append(new_event("c", &id("one"), json!({"n": round})))
                .await
                .unwrap(),
            Appended::Existing(_)
        ));
        // Appends to an ended session, which refuses them.
        assert_eq!(
            repos
                .events
                .append(new_event("ended", &id("late"), json!({})))
                .await
                .unwrap(),
            Appended::SessionEnded(Status::Completed)
        );
    }
    new
}

backend_test! { async fn refused_and_failed_writes_between_good_ones_leave_seqs_dense_and_the_count_exact(s: StoreCtx) {
    created(&s.repos, "c").await;
    created(&s.repos, "ended").await;
    append_new(&s.repos, "ended", "only").await;
    let at = Timestamp::from_millis(1_766_331_017_000).unwrap();
    s.repos
        .sessions
        .end(&sid("ended"), end_as(TerminalStatus::Completed, at))
        .await
        .unwrap();

    let told_new: u64 = concurrently(&s.repos, 0..4, mixed_writes).await.into_iter().sum();

    let count = event_count(&s.repos, "c").await;
    assert_eq!(count, told_new, "event_count is the number of events acknowledged as new");
    assert_eq!(count, 4 * 6 * 3);
    let page = first_page(&s.repos, "c", 1000).await;
    assert_eq!(seqs(&page), (1..=count).collect::<Vec<_>>(), "seqs are dense");
    // The next events take the next seqs.
    assert_eq!(append_new(&s.repos, "c", "after").await, count + 1);
    assert_eq!(event_count(&s.repos, "ended").await, 1);
}}
