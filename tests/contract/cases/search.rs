//! Transcript search's candidates: every searchable event whose terms match is found, in the
//! order asked, paged without a repeat or a miss; nothing else a query excludes by its terms;
//! never an event of an erased session.

use serde_json::json;
use session_service::domain::NewEvents;
use session_service::domain::search::{TextQuery, searchable_text, terms};
use session_service::repo::search::{Candidate, SearchAfter, SearchOrder, SearchScan};

use super::*;

fn scan(q: &str, order: SearchOrder) -> SearchScan {
    SearchScan {
        query: TextQuery::parse(q).unwrap(),
        event_type: None,
        session_id: None,
        order,
        after: None,
        limit: 100,
    }
}

async fn candidates(repos: &Repositories, scan: &SearchScan) -> Vec<Candidate> {
    repos.search.search(scan).await.unwrap()
}

/// The ids (`session/event`) of the candidates that match the query, in the order found.
fn matching(scan: &SearchScan, found: &[Candidate]) -> Vec<String> {
    found
        .iter()
        .filter(|c| {
            let text = searchable_text(c.event.event_type, &c.event.payload).unwrap_or_default();
            scan.query.matches(&terms(&text))
        })
        .map(|c| format!("{}/{}", c.session.session_id, c.event.event_id))
        .collect()
}

async fn find(repos: &Repositories, q: &str) -> Vec<String> {
    let scan = scan(q, SearchOrder::Newest);
    matching(&scan, &candidates(repos, &scan).await)
}

/// Every candidate's id, matching or not: what the index still holds.
async fn raw(repos: &Repositories, q: &str) -> Vec<String> {
    let found = candidates(repos, &scan(q, SearchOrder::Newest)).await;
    found
        .iter()
        .map(|c| format!("{}/{}", c.session.session_id, c.event.event_id))
        .collect()
}

async fn said(repos: &Repositories, session: &str, event: &str, kind: EventType, text: Value) {
    let new = NewEvent {
        event_type: kind,
        ..new_event(session, event, json!({ "text": text, "confidence": 0.9 }))
    };
    let outcome = repos.events.append(new).await.unwrap();
    assert!(matches!(outcome, Appended::New(_)), "{outcome:?}");
}

/// Two calls with a few turns each, stored in this order.
async fn two_calls(repos: &Repositories) {
    created(repos, "a").await;
    created(repos, "b").await;
    let user = EventType::UserSpeech;
    let bot = EventType::BotSpeech;
    said(repos, "a", "1", user, json!("I want a REFUND for my order")).await;
    said(
        repos,
        "a",
        "2",
        bot,
        json!("Our refund policy allows thirty days"),
    )
    .await;
    said(
        repos,
        "a",
        "3",
        EventType::System,
        json!("refund requested"),
    )
    .await;
    said(
        repos,
        "b",
        "1",
        user,
        json!("The café was closed, refund please"),
    )
    .await;
    said(
        repos,
        "b",
        "2",
        bot,
        json!("Thank you, the refunds team will call"),
    )
    .await;
    said(repos, "b", "3", user, json!(42)).await;
}

backend_test! { async fn words_phrases_prefixes_and_exclusions_find_exactly_their_events(s: StoreCtx) {
    two_calls(&s.repos).await;
    assert_eq!(find(&s.repos, "refund").await, ["b/1", "a/2", "a/1"]);
    assert_eq!(find(&s.repos, "REFUND order").await, ["a/1"]);
    assert_eq!(find(&s.repos, "\"refund policy\"").await, ["a/2"]);
    assert_eq!(find(&s.repos, "\"policy refund\"").await, Vec::<String>::new());
    assert_eq!(find(&s.repos, "refund*").await, ["b/2", "b/1", "a/2", "a/1"]);
    assert_eq!(find(&s.repos, "refund -cafe").await, ["a/2", "a/1"]);
    assert_eq!(find(&s.repos, "ref* -\"refund policy\"").await, ["b/2", "b/1", "a/1"]);
    assert_eq!(find(&s.repos, "requested").await, Vec::<String>::new(), "system events");
    assert_eq!(find(&s.repos, "42").await, Vec::<String>::new(), "a text that is not a string");
}}

backend_test! { async fn type_and_session_narrow_the_candidates(s: StoreCtx) {
    two_calls(&s.repos).await;
    let mut by_type = scan("refund*", SearchOrder::Newest);
    by_type.event_type = Some(EventType::BotSpeech);
    assert_eq!(matching(&by_type, &candidates(&s.repos, &by_type).await), ["b/2", "a/2"]);
    let mut by_session = scan("refund*", SearchOrder::Newest);
    by_session.session_id = Some(sid("a"));
    assert_eq!(matching(&by_session, &candidates(&s.repos, &by_session).await), ["a/2", "a/1"]);
    let found = candidates(&s.repos, &by_session).await;
    assert_eq!(found[0].session.session_id.as_str(), "a");
    assert_eq!(found[0].session.event_count, 3, "the session comes as stored");
}}

backend_test! { async fn newest_first_pages_by_position_without_repeats_or_misses(s: StoreCtx) {
    created(&s.repos, "long").await;
    let events: Vec<NewEvent> = (0..25)
        .map(|i| new_event("long", &format!("e{i:02}"), json!({"text": format!("turn {i} of the call")})))
        .collect();
    let batch = NewEvents::new(events.clone()).unwrap();
    s.repos.events.append_batch(batch.clone()).await.unwrap();
    s.repos.events.append_batch(batch).await.unwrap(); // a replay indexes nothing twice
    let mut page = scan("call turn", SearchOrder::Newest);
    page.limit = 7;
    let mut seen = Vec::new();
    loop {
        let found = candidates(&s.repos, &page).await;
        let positions: Vec<u128> = found.iter().map(|c| c.position).collect();
        assert!(positions.windows(2).all(|w| w[0] > w[1]), "{positions:?}");
        seen.extend(found.iter().map(|c| c.event.event_id.to_string()));
        match found.last() {
            Some(last) if found.len() == 7 => page.after = Some(SearchAfter::Position(last.position)),
            _ => break,
        }
    }
    let expected: Vec<String> = (0..25).rev().map(|i| format!("e{i:02}")).collect();
    assert_eq!(seen, expected);
}}

backend_test! { async fn relevance_ranks_more_matches_in_shorter_texts_first_and_pages_by_offset(s: StoreCtx) {
    created(&s.repos, "r").await;
    let user = EventType::UserSpeech;
    said(&s.repos, "r", "long", user, json!("refund, well, I would like to talk about many other things today")).await;
    said(&s.repos, "r", "twice", user, json!("refund refund now")).await;
    said(&s.repos, "r", "once", user, json!("refund now please")).await;
    let mut ranked = scan("refund", SearchOrder::Relevance);
    assert_eq!(matching(&ranked, &candidates(&s.repos, &ranked).await), ["r/twice", "r/once", "r/long"]);
    ranked.limit = 1;
    ranked.after = Some(SearchAfter::Offset(1));
    assert_eq!(matching(&ranked, &candidates(&s.repos, &ranked).await), ["r/once"]);
    ranked.after = Some(SearchAfter::Offset(3));
    assert!(candidates(&s.repos, &ranked).await.is_empty());
}}

backend_test! { async fn an_erased_session_is_never_found_nor_its_id_created_again(s: StoreCtx) {
    two_calls(&s.repos).await;
    let at = Timestamp::from_millis(1_766_331_020_000).unwrap();
    s.repos.sessions.delete(&sid("a"), at).await.unwrap();
    assert_eq!(find(&s.repos, "refund*").await, ["b/2", "b/1"], "from the moment DELETE returned");
    // Purged, tombstone and all, then the id is used again with other words.
    let later = Timestamp::from_millis(4_000_000_000_000).unwrap();
    while s.repos.sessions.purge(1_000, later).await.unwrap().more {}
    created(&s.repos, "a").await;
    said(&s.repos, "a", "1", EventType::UserSpeech, json!("hello again")).await;
    assert_eq!(raw(&s.repos, "refund*").await, ["b/2", "b/1"], "nothing of the erased call is left in the index");
    assert_eq!(find(&s.repos, "hello").await, ["a/1"]);
}}

backend_test! { async fn case_and_accents_do_not_matter(s: StoreCtx) {
    two_calls(&s.repos).await;
    assert_eq!(find(&s.repos, "CAFE").await, ["b/1"]);
    assert_eq!(find(&s.repos, "Café").await, ["b/1"]);
    assert_eq!(find(&s.repos, "caf*").await, ["b/1"]);
}}

// Ranked pages are slices of one ranking, and a filter that leaves out every best match still
// finds the rest: a store that ranks only the best few matches before filtering (the embedded
// store's window) must look further when the filter leaves it short.
backend_test! { async fn relevance_pages_slice_one_ranking_and_a_filter_that_drops_the_best_finds_the_rest(s: StoreCtx) {
    created(&s.repos, "w").await;
    for i in 0..100 {
        said(&s.repos, "w", &format!("bot{i:03}"), EventType::BotSpeech, json!("refund")).await;
    }
    for i in 0..3 {
        said(&s.repos, "w", &format!("user{i}"), EventType::UserSpeech,
            json!(format!("a refund for order {i} please, it arrived broken"))).await;
    }
    let mut ranked = scan("refund", SearchOrder::Relevance);
    ranked.limit = 20;
    ranked.event_type = Some(EventType::UserSpeech);
    let mut users = matching(&ranked, &candidates(&s.repos, &ranked).await);
    users.sort();
    assert_eq!(users, ["w/user0", "w/user1", "w/user2"]);

    ranked.event_type = None;
    ranked.limit = 100;
    let all = matching(&ranked, &candidates(&s.repos, &ranked).await);
    assert_eq!(all.len(), 100);
    assert!(all.iter().all(|id| id.starts_with("w/bot")), "the shorter texts rank first");
    ranked.limit = 7;
    for skip in [0, 7, 50, 93] {
        ranked.after = Some(SearchAfter::Offset(skip));
        let page = matching(&ranked, &candidates(&s.repos, &ranked).await);
        assert_eq!(page, all[skip as usize..skip as usize + 7], "offset {skip}");
    }
}}
