//! Listing, erasure, purging and retention in the repository: `list` keyset ranges, `delete`,
//! `purge` in bounded chunks, and `ended_before`.

use serde_json::json;
use session_service::domain::Session;
use session_service::repo::SessionScan;

use super::*;

const T0: i64 = 1_766_300_000_000;

fn at(ms_after: i64) -> Timestamp {
    Timestamp::from_millis(T0 + ms_after).unwrap()
}

/// Creates `id` started at `T0 + start_ms`.
async fn created_at(repos: &Repositories, id: &str, start_ms: i64) {
    let mut new = new_session(id);
    new.started_at = at(start_ms);
    assert!(repos.sessions.create_or_get(new).await.unwrap().created);
}

fn scan(order: Order, limit: u32) -> SessionScan {
    SessionScan {
        statuses: Vec::new(),
        started_from: None,
        started_before: None,
        order,
        after: None,
        limit,
    }
}

fn ids(sessions: &[Session]) -> Vec<String> {
    sessions
        .iter()
        .map(|s| s.session_id.as_str().to_owned())
        .collect()
}

/// The ids `ended_before(at(cutoff_ms), limit)` returns, sorted.
async fn ended_before(repos: &Repositories, cutoff_ms: i64, limit: u32) -> Vec<String> {
    let found = repos
        .sessions
        .ended_before(at(cutoff_ms), limit)
        .await
        .unwrap();
    let mut v: Vec<String> = found.iter().map(|i| i.as_str().to_owned()).collect();
    v.sort();
    v
}

/// Every session `base` selects, `page` at a time, following the keyset from the last one.
async fn walk(repos: &Repositories, base: &SessionScan, page: u32) -> Vec<String> {
    let mut all = Vec::new();
    let mut next = base.clone();
    next.limit = page;
    for _ in 0..1_000 {
        let batch = repos.sessions.list(&next).await.unwrap();
        assert!(batch.len() <= page as usize);
        all.extend(ids(&batch));
        match batch.last() {
            Some(last) if batch.len() == page as usize => {
                next.after = Some((last.started_at, last.session_id.clone()));
            }
            _ => return all,
        }
    }
    panic!("the walk did not end");
}

/// Ten sessions a second apart, `s0` first, plus `t5` starting with `s5`.
async fn ten_sessions(repos: &Repositories) -> Vec<String> {
    for i in 0..10 {
        created_at(repos, &format!("s{i}"), i * 1_000).await;
    }
    created_at(repos, "t5", 5_000).await;
    let mut expected: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    expected.insert(6, "t5".into());
    expected
}

backend_test! { async fn list_walks_the_keyset_in_both_orders_ties_broken_by_id(s: StoreCtx) {
    let ascending = ten_sessions(&s.repos).await;
    let mut descending = ascending.clone();
    descending.reverse();
    for page in [1, 3, 4, 100] {
        assert_eq!(
            walk(&s.repos, &scan(Order::Asc, page), page).await,
            ascending,
            "page {page}"
        );
        assert_eq!(
            walk(&s.repos, &scan(Order::Desc, page), page).await,
            descending,
            "page {page}"
        );
    }
    // After a position: strictly after, in either order.
    let mut from_s5 = scan(Order::Asc, 3);
    from_s5.after = Some((at(5_000), sid("s5")));
    assert_eq!(
        ids(&s.repos.sessions.list(&from_s5).await.unwrap()),
        ["t5", "s6", "s7"]
    );
    let mut before_t5 = scan(Order::Desc, 3);
    before_t5.after = Some((at(5_000), sid("t5")));
    assert_eq!(
        ids(&s.repos.sessions.list(&before_t5).await.unwrap()),
        ["s5", "s4", "s3"]
    );
}}

backend_test! { async fn list_applies_status_and_start_time_ranges(s: StoreCtx) {
    ten_sessions(&s.repos).await;
    let end = |status| end_as(status, at(60_000));
    for (id, status) in [
        ("s2", TerminalStatus::Completed),
        ("s7", TerminalStatus::Failed),
        ("t5", TerminalStatus::Completed),
    ] {
        s.repos.sessions.end(&sid(id), end(status)).await.unwrap();
    }
    append_new(&s.repos, "s4", "e1").await;

    let mut completed = scan(Order::Asc, 100);
    completed.statuses = vec![Status::Completed];
    assert_eq!(walk(&s.repos, &completed, 1).await, ["s2", "t5"]);
    let mut ended = scan(Order::Desc, 100);
    ended.statuses = vec![Status::Failed, Status::Completed];
    assert_eq!(walk(&s.repos, &ended, 2).await, ["s7", "t5", "s2"]);
    let mut active = scan(Order::Asc, 100);
    active.statuses = vec![Status::Active];
    assert_eq!(walk(&s.repos, &active, 5).await, ["s4"]);

    // started_from is inclusive, started_before exclusive.
    let mut window = scan(Order::Asc, 100);
    window.started_from = Some(at(3_000));
    window.started_before = Some(at(6_000));
    assert_eq!(walk(&s.repos, &window, 2).await, ["s3", "s4", "s5", "t5"]);
    window.order = Order::Desc;
    assert_eq!(walk(&s.repos, &window, 2).await, ["t5", "s5", "s4", "s3"]);
    window.statuses = vec![Status::Initiated];
    assert_eq!(walk(&s.repos, &window, 2).await, ["s5", "s3"]);
}}

backend_test! { async fn a_deleted_session_is_a_tombstone_to_every_call(s: StoreCtx) {
    created(&s.repos, "gone").await;
    created(&s.repos, "kept").await;
    append_new(&s.repos, "gone", "e1").await;
    let now = Timestamp::from_millis(1_766_331_500_000).unwrap();

    let first = s.repos.sessions.delete(&sid("gone"), now).await.unwrap();
    assert!(first.deleted_now);
    let r = s.repos.sessions.get(&sid("gone")).await;
    assert!(matches!(r, Err(RepoError::Deleted)), "{r:?}");
    let r = get_event(&s.repos, "gone", "e1").await;
    assert!(matches!(r, Err(RepoError::Deleted)), "{r:?}");
    let r = try_page(&s.repos, "gone", range(Order::Asc, Start::Offset(0), 10)).await;
    assert!(matches!(r, Err(RepoError::Deleted)), "{r:?}");
    let r = s
        .repos
        .events
        .append(new_event("gone", "e2", json!({})))
        .await;
    assert!(matches!(r, Err(RepoError::Deleted)), "{r:?}");
    let r = s
        .repos
        .sessions
        .end(&sid("gone"), end_as(TerminalStatus::Completed, now))
        .await;
    assert!(matches!(r, Err(RepoError::Deleted)), "{r:?}");
    let r = s.repos.sessions.create_or_get(new_session("gone")).await;
    assert!(matches!(r, Err(RepoError::Deleted)), "{r:?}");

    let again = s.repos.sessions.delete(&sid("gone"), now).await.unwrap();
    assert!(!again.deleted_now);
    let r = s.repos.sessions.delete(&sid("never"), now).await;
    assert!(matches!(r, Err(RepoError::NotFound)), "{r:?}");
    assert_eq!(walk(&s.repos, &scan(Order::Asc, 10), 10).await, ["kept"]);
}}

backend_test! { async fn purge_removes_events_in_bounded_chunks_then_the_tombstone(s: StoreCtx) {
    created(&s.repos, "long").await;
    created(&s.repos, "other").await;
    // More events than a delete may remove along with the tombstone, so that purge has work.
    let events = concurrently(&s.repos, 0..1_100, |repos, i| async move {
        append_new(&repos, "long", &format!("e{i}")).await
    })
    .await;
    assert_eq!(events.len(), 1_100);
    append_new(&s.repos, "other", "e1").await;
    let deleted_at = Timestamp::from_millis(1_766_331_500_000).unwrap();
    s.repos
        .sessions
        .delete(&sid("long"), deleted_at)
        .await
        .unwrap();

    // With the cutoff before the deletion, only events go, at most 100 a call. The delete may
    // have removed some itself.
    let before = Timestamp::from_millis(deleted_at.millis() - 1).unwrap();
    let mut removed = 0;
    for call in 0.. {
        assert!(call < 100, "purge never finished");
        let outcome = s.repos.sessions.purge(100, before).await.unwrap();
        assert!(outcome.events_removed <= 100, "{outcome:?}");
        assert_eq!(outcome.tombstones_removed, 0, "{outcome:?}");
        removed += outcome.events_removed;
        if !outcome.more {
            break;
        }
    }
    assert!(removed <= 1_100, "{removed}");
    let idle = s.repos.sessions.purge(10, before).await.unwrap();
    assert_eq!(
        (idle.events_removed, idle.tombstones_removed, idle.more),
        (0, 0, false)
    );
    let r = s.repos.sessions.create_or_get(new_session("long")).await;
    assert!(matches!(r, Err(RepoError::Deleted)), "{r:?}");
    assert_eq!(event_count(&s.repos, "other").await, 1);

    // With the cutoff after the deletion, the tombstone goes and the id is free again.
    let after = Timestamp::from_millis(deleted_at.millis() + 1).unwrap();
    let outcome = s.repos.sessions.purge(10, after).await.unwrap();
    assert_eq!(outcome.tombstones_removed, 1, "{outcome:?}");
    let r = s.repos.sessions.get(&sid("long")).await;
    assert!(matches!(r, Err(RepoError::NotFound)), "{r:?}");
    let fresh = s
        .repos
        .sessions
        .create_or_get(new_session("long"))
        .await
        .unwrap();
    assert!(fresh.created);
    assert_eq!(fresh.session.event_count, 0);
    assert!(first_page(&s.repos, "long", 100).await.events.is_empty());
    assert_eq!(first_page(&s.repos, "other", 100).await.events.len(), 1);
}}

backend_test! { async fn ended_before_finds_the_sessions_that_ended_before_the_cutoff(s: StoreCtx) {
    for id in ["early", "late", "open", "erased"] {
        created(&s.repos, id).await;
    }
    let end = |ms| end_as(TerminalStatus::Completed, at(ms));
    for (id, ended_ms) in [("early", 10_000), ("erased", 10_000), ("late", 30_000)] {
        s.repos.sessions.end(&sid(id), end(ended_ms)).await.unwrap();
    }
    s.repos
        .sessions
        .delete(&sid("erased"), at(20_000))
        .await
        .unwrap();

    assert!(ended_before(&s.repos, 10_000, 100).await.is_empty());
    assert_eq!(ended_before(&s.repos, 10_001, 100).await, ["early"]);
    assert_eq!(ended_before(&s.repos, 99_000, 100).await, ["early", "late"]);
    assert_eq!(ended_before(&s.repos, 99_000, 1).await.len(), 1);
}}
