//! The change feed (`FeedRepository`): every committed change once, in commit order, a
//! session's in seq order; an erased session's changes without data; positions that work from
//! another instance; kinds filtered; long polls; positions past the retention refused.

use std::collections::HashSet;
use std::time::Duration;

use session_service::domain::NewEvents;
use session_service::repo::feed::{
    ChangeData, ChangeKind, ChangeKinds, FeedChange, FeedError, FeedRead, FeedStart,
};
use session_service::repo::{BatchAppended, MetadataPatch};

use super::*;

fn long_ago() -> Timestamp {
    Timestamp::from_millis(0).unwrap()
}

async fn read(repos: &Repositories, start: FeedStart, limit: u32) -> FeedRead {
    repos
        .feed
        .read(start, limit, ChangeKinds::all(), Duration::ZERO, long_ago())
        .await
        .unwrap()
}

/// Every change from the oldest on, following `next` with pages of `limit`.
async fn all_changes(repos: &Repositories, limit: u32) -> (Vec<FeedChange>, String) {
    let mut start = FeedStart::Oldest;
    let mut changes = Vec::new();
    for _ in 0..10_000 {
        let page = read(repos, start, limit).await;
        let done = page.changes.is_empty();
        changes.extend(page.changes);
        start = FeedStart::After(page.next.clone());
        if done {
            return (changes, page.next);
        }
    }
    panic!("the feed never ended");
}

fn kinds(changes: &[FeedChange]) -> Vec<(ChangeKind, String)> {
    changes
        .iter()
        .map(|c| (c.kind, c.session_id.as_str().to_owned()))
        .collect()
}

backend_test! { async fn every_write_is_one_change_in_commit_order_with_its_data(s: StoreCtx) {
    created(&s.repos, "a").await;
    append_new(&s.repos, "a", "e1").await;
    let batch = NewEvents::new(vec![
        new_event("a", "e2", json!({"text": "e2"})),
        new_event("a", "e3", json!({"text": "e3"})),
    ])
    .unwrap();
    assert!(matches!(s.repos.events.append_batch(batch.clone()).await.unwrap(), BatchAppended::Stored(_)));
    // A replay changes nothing, so the feed has nothing of it.
    s.repos.events.append_batch(batch).await.unwrap();
    let patch = MetadataPatch {
        patch: json!({"disposition": "sale"}).as_object().unwrap().clone(),
        if_match: None,
        at: Timestamp::now(),
    };
    s.repos.sessions.patch_metadata(&sid("a"), patch).await.unwrap();
    let at = Timestamp::from_millis(1_766_331_017_000).unwrap();
    s.repos.sessions.end(&sid("a"), end_as(TerminalStatus::Completed, at)).await.unwrap();

    let (changes, _) = all_changes(&s.repos, 100).await;
    let a = |k| (k, "a".to_owned());
    assert_eq!(kinds(&changes), [
        a(ChangeKind::SessionCreated), a(ChangeKind::EventAppended), a(ChangeKind::EventAppended),
        a(ChangeKind::EventAppended), a(ChangeKind::SessionUpdated), a(ChangeKind::SessionEnded),
    ]);
    let ChangeData::Session(created) = &changes[0].data else { panic!("{:?}", changes[0]) };
    assert_eq!((created.status, created.event_count), (Status::Initiated, 0));
    let seqs: Vec<u64> = changes.iter().filter_map(|c| match &c.data {
        ChangeData::Event(e) => Some(e.seq),
        _ => None,
    }).collect();
    assert_eq!(seqs, [1, 2, 3]);
    let ChangeData::Event(e2) = &changes[2].data else { panic!() };
    assert_eq!((e2.event_id.as_str(), e2.payload.as_map()["text"].as_str()), ("e2", Some("e2")));
    let ChangeData::Session(updated) = &changes[4].data else { panic!() };
    assert_eq!(updated.metadata.as_map()["disposition"], "sale");
    let ChangeData::Session(ended) = &changes[5].data else { panic!() };
    assert_eq!(ended.status, Status::Completed);

    // Each position reads on from right after its change; past the last, nothing, at the same place.
    for (i, change) in changes.iter().enumerate() {
        let rest = read(&s.repos, FeedStart::After(change.position.clone()), 100).await;
        assert_eq!(kinds(&rest.changes), kinds(&changes[i + 1..]), "after change {i}");
    }
    let (_, end) = all_changes(&s.repos, 2).await;
    let after_end = read(&s.repos, FeedStart::After(end.clone()), 10).await;
    assert!(after_end.changes.is_empty() && !after_end.has_more, "{after_end:?}");
}}

backend_test! { async fn a_reader_following_next_gets_every_change_once_while_instances_write(s: StoreCtx) {
    // Two writers' instances and a reader's, over one store.
    let (w1, w2, reader) = (s.reopen().await, s.reopen().await, s.reopen().await);
    for i in 0..4 {
        created(&s.repos, &format!("r{i}")).await;
    }
    let writers: Vec<_> = [w1, w2].into_iter().enumerate().flat_map(|(w, repos)| {
        (0..4).map(move |k| {
            let repos = repos.clone();
            tokio::spawn(async move {
                for n in 0..6 {
                    let session = format!("r{}", (k + n) % 4);
                    append_new(&repos, &session, &format!("w{w}-{k}-{n}")).await;
                }
            })
        })
    }).collect();
    let mut seen = Vec::new();
    let mut start = FeedStart::Oldest;
    let mut quiet = 0;
    let mut writers = writers;
    while quiet < 3 {
        let page = read(&reader, start, 7).await;
        start = FeedStart::After(page.next.clone());
        let empty = page.changes.is_empty();
        seen.extend(page.changes);
        writers.retain(|w| !w.is_finished());
        quiet = if empty && writers.is_empty() { quiet + 1 } else { 0 };
    }
    let events: Vec<(String, u64)> = seen.iter().filter_map(|c| match &c.data {
        ChangeData::Event(e) => Some((e.session_id.as_str().to_owned(), e.seq)),
        _ => None,
    }).collect();
    let unique: HashSet<_> = events.iter().cloned().collect();
    assert_eq!(unique.len(), events.len(), "a change came twice");
    assert_eq!(events.len(), 48, "every stored event once");
    for i in 0..4 {
        let session = format!("r{i}");
        let seqs: Vec<u64> = events.iter().filter(|(s, _)| *s == session).map(|(_, q)| *q).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{session} in seq order");
        assert_eq!(seqs.len() as u64, event_count(&s.repos, &session).await);
    }
}}

backend_test! { async fn an_erased_sessions_changes_keep_nothing_but_its_id(s: StoreCtx) {
    created(&s.repos, "gone").await;
    append_new(&s.repos, "gone", "e1").await;
    created(&s.repos, "kept").await;
    s.repos.sessions.delete(&sid("gone"), Timestamp::now()).await.unwrap();
    let (changes, _) = all_changes(&s.repos, 100).await;
    let gone: Vec<&FeedChange> = changes.iter().filter(|c| c.session_id.as_str() == "gone").collect();
    assert_eq!(
        gone.iter().map(|c| c.kind).collect::<Vec<_>>(),
        [ChangeKind::SessionCreated, ChangeKind::EventAppended, ChangeKind::SessionDeleted]
    );
    assert!(gone.iter().all(|c| c.data == ChangeData::None), "{gone:?}");
    let kept = changes.iter().find(|c| c.session_id.as_str() == "kept").unwrap();
    assert!(matches!(kept.data, ChangeData::Session(_)));
}}

backend_test! { async fn kinds_are_filtered_and_next_passes_the_others(s: StoreCtx) {
    created(&s.repos, "k").await;
    append_new(&s.repos, "k", "e1").await;
    append_new(&s.repos, "k", "e2").await;
    let only = ChangeKinds::of([ChangeKind::SessionCreated]);
    let page = s.repos.feed.read(FeedStart::Oldest, 10, only, Duration::ZERO, long_ago()).await.unwrap();
    assert_eq!(kinds(&page.changes), [(ChangeKind::SessionCreated, "k".to_owned())]);
    let rest = s.repos.feed.read(FeedStart::After(page.next), 10, only, Duration::ZERO, long_ago()).await.unwrap();
    assert!(rest.changes.is_empty(), "{rest:?}");
    let events = ChangeKinds::of([ChangeKind::EventAppended]);
    let page = s.repos.feed.read(FeedStart::Oldest, 1, events, Duration::ZERO, long_ago()).await.unwrap();
    assert_eq!(page.changes.len(), 1);
    assert!(page.has_more);
}}

backend_test! { async fn a_waiting_read_answers_with_the_first_change_committed(s: StoreCtx) {
    created(&s.repos, "w").await;
    let head = s.repos.feed.head().await.unwrap();
    let repos = s.repos.clone();
    let waiting = tokio::spawn(async move {
        repos.feed.read(FeedStart::After(head), 10, ChangeKinds::all(), Duration::from_secs(30), long_ago()).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    append_new(&s.repos, "w", "e1").await;
    let page = waiting.await.unwrap().unwrap();
    assert_eq!(kinds(&page.changes), [(ChangeKind::EventAppended, "w".to_owned())]);
}}

backend_test! { async fn positions_that_are_not_this_stores_or_too_old_are_refused(s: StoreCtx) {
    for bad in ["", "x", "s-1", "m.1", "s999999999", "m.1.2.!!"] {
        let r = s.repos.feed.read(FeedStart::After(bad.into()), 10, ChangeKinds::all(), Duration::ZERO, long_ago()).await;
        assert!(matches!(r, Err(FeedError::InvalidPosition)), "{bad:?}: {r:?}");
    }
    created(&s.repos, "old").await;
    let first = read(&s.repos, FeedStart::Oldest, 1).await.changes.remove(0).position;
    append_new(&s.repos, "old", "e1").await;
    // Everything trimmed (once the search index, which follows the log, has caught up), and
    // nothing older than an hour from now served.
    s.repos.search.index_pending().await.unwrap();
    let later = Timestamp::from_millis(Timestamp::now().millis() + 3_600_000).unwrap();
    s.repos.feed.trim(later, 1_000).await.unwrap();
    let r = s.repos.feed.read(FeedStart::After(first), 10, ChangeKinds::all(), Duration::ZERO, later).await;
    let Err(FeedError::Expired { earliest }) = r else { panic!("{r:?}") };
    // The earliest position answers (nothing, as everything is gone).
    let page = s.repos.feed.read(FeedStart::After(earliest), 10, ChangeKinds::all(), Duration::ZERO, later).await;
    assert!(page.is_ok_and(|p| p.changes.is_empty()));
}}
