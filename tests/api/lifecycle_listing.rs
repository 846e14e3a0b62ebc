//! `GET /sessions` over HTTP: the answer's shape, filters, order, validation, keyset pagination
//! while sessions are being created, deleted sessions, and (SQLite only, in process) the cap on
//! the candidates one request examines.

use std::collections::HashMap;

use serde_json::{Value, json};
use session_service::domain::{
    JsonObject, Language, NewSession, Order, SessionId, Timers, Timestamp,
};
use session_service::service::{Lifecycle, ListRequest, MAX_LIST_CANDIDATES, SessionService};

use crate::support::app::TestApp;
use crate::support::{Backend, run_with_store};

pub(super) fn ids(body: &Value) -> Vec<String> {
    body["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("no sessions: {body}"))
        .iter()
        .map(|s| s["sessionId"].as_str().unwrap().to_owned())
        .collect()
}

/// The ids of `GET /sessions{query}`, asserting a 200.
pub(super) async fn list(app: &TestApp, query: &str) -> Vec<String> {
    let r = app.get(&format!("/sessions{query}")).await;
    assert_eq!(r.status, 200, "{query}: {}", r.text);
    ids(&r.body)
}

/// Every id a cursor walk in `order` with page size `limit` returns (query `extra` added).
pub(super) async fn walk(app: &TestApp, order: &str, limit: u32, extra: &str) -> Vec<String> {
    let mut all = Vec::new();
    let mut query = format!("?order={order}&limit={limit}{extra}");
    for _ in 0..10_000 {
        let r = app.get(&format!("/sessions{query}")).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        let p = &r.body["pagination"];
        assert_eq!(p["limit"], limit, "{}", r.text);
        all.extend(ids(&r.body));
        match p["nextCursor"].as_str() {
            Some(cursor) => {
                assert_eq!(p["hasMore"], true, "{}", r.text);
                query = format!("?order={order}&limit={limit}{extra}&after={cursor}");
            }
            None => {
                assert_eq!(p["hasMore"], false, "{}", r.text);
                return all;
            }
        }
    }
    panic!("the walk did not end");
}

/// Creates `ids` in turn; returns them sorted by (startedAt, sessionId).
pub(super) async fn create_all(app: &TestApp, ids: &[&str], metadata: Value) -> Vec<String> {
    let mut made = Vec::new();
    for id in ids {
        let r = app
            .post_json(
                "/sessions",
                &json!({"sessionId": id, "language": "en", "metadata": metadata}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        made.push((
            r.body["startedAt"].as_str().unwrap().to_owned(),
            id.to_string(),
        ));
    }
    made.sort();
    made.into_iter().map(|(_, id)| id).collect()
}

backend_test! { async fn listing_answers_sessions_newest_first_with_pagination(app: TestApp) {
    let r = app.get("/sessions").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"sessions": [], "pagination": {"limit": 20, "hasMore": false, "nextCursor": null}})
    );

    let oldest_first = create_all(&app, &["a", "b", "c"], json!({})).await;
    let r = app.get("/sessions").await;
    let mut newest_first = oldest_first.clone();
    newest_first.reverse();
    assert_eq!(ids(&r.body), newest_first);
    let newest = app.read_session(&newest_first[0], "?limit=1").await;
    for (key, value) in r.body["sessions"][0].as_object().unwrap() {
        assert_eq!(&newest[key], value, "{key}");
    }
    assert!(r.body["sessions"][0].get("events").is_none(), "{}", r.text);
    assert_eq!(list(&app, "?order=asc").await, oldest_first);
    let first = app.get("/sessions?limit=2").await;
    assert_eq!(ids(&first.body), newest_first[..2]);
    assert_eq!(first.body["pagination"]["hasMore"], true);
    let cursor = first.body["pagination"]["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        list(&app, &format!("?limit=2&after={cursor}")).await,
        newest_first[2..]
    );
}}

backend_test! { async fn listing_filters_by_status_reason_metadata_and_start_time(app: TestApp) {
    let order = create_all(&app, &["a", "b", "c", "d"], json!({"tenant": "t1"})).await;
    create_all(&app, &["other"], json!({"tenant": "t2", "n": 1})).await;
    app.add_event("b", "e-1").await;
    app.complete("c", Some(&json!({"reason": "caller_hangup"})))
        .await;
    app.complete(
        "d",
        Some(&json!({"status": "failed", "reason": "network_error"})),
    )
    .await;

    let mut got = list(&app, "?status=completed,failed&order=asc").await;
    got.sort();
    assert_eq!(got, ["c", "d"]);
    assert_eq!(list(&app, "?status=active").await, ["b"]);
    assert_eq!(list(&app, "?endedReason=network_error").await, ["d"]);
    assert_eq!(
        list(&app, "?endedReason=caller_hangup&status=completed").await,
        ["c"]
    );
    assert!(
        list(&app, "?endedReason=inactivity_timeout")
            .await
            .is_empty()
    );
    assert_eq!(list(&app, "?metadata.tenant=t2").await, ["other"]);
    assert!(
        list(&app, "?metadata.n=1").await.is_empty(),
        "metadata values match as strings only"
    );
    assert_eq!(
        list(&app, "?metadata.tenant=t1&status=initiated").await,
        ["a"]
    );

    // startedFrom is inclusive, startedBefore exclusive.
    let mut started = HashMap::new();
    for id in &order {
        let s = app.read_session(id, "").await;
        started.insert(id.clone(), s["startedAt"].as_str().unwrap().to_owned());
    }
    let from = &started[&order[1]];
    let from_query = format!("?order=asc&metadata.tenant=t1&startedFrom={from}");
    let from_ids = list(&app, &from_query).await;
    assert!(from_ids.contains(&order[1]), "{from_ids:?}");
    assert!(order.ends_with(&from_ids), "{from_ids:?}");
    let before = &started[&order[1]];
    let before_ids = list(
        &app,
        &format!("?order=asc&metadata.tenant=t1&startedBefore={before}"),
    )
    .await;
    assert!(!before_ids.contains(&order[1]), "{before_ids:?}");
    assert_eq!(
        before_ids.len() + from_ids.len(),
        4,
        "{before_ids:?} {from_ids:?}"
    );
}}

backend_test! { async fn bad_list_parameters_are_a_400_naming_each_one(app: TestApp) {
    let six = format!(
        "?{}",
        (0..6)
            .map(|i| format!("metadata.k{i}=v"))
            .collect::<Vec<_>>()
            .join("&")
    );
    let long_field = format!("metadata.{}", "k".repeat(65));
    let long_key = format!("?{long_field}=v");
    let cases = [
        ("?bogus=1", vec!["bogus"]),
        ("?limit=5&limit=6", vec!["limit"]),
        ("?limit=0", vec!["limit"]),
        ("?limit=101", vec!["limit"]),
        ("?status=open", vec!["status"]),
        ("?status=", vec!["status"]),
        ("?order=newest", vec!["order"]),
        ("?endedReason=Caller", vec!["endedReason"]),
        ("?startedFrom=yesterday", vec!["startedFrom"]),
        ("?metadata.a%20b=1", vec!["metadata.a b"]),
        ("?after=not-a-cursor", vec!["after"]),
        (&six[..], vec!["metadata"]),
        ("?bogus=1&limit=0&order=up", vec!["bogus", "limit", "order"]),
        ("?limit=1.5", vec!["limit"]),
        ("?limit=+5", vec!["limit"]),
        ("?metadata.=x", vec!["metadata."]),
        (&long_key[..], vec![&long_field[..]]),
        ("?metadata.a=1&metadata.a=2", vec!["metadata.a"]),
        (
            "?startedFrom=2026-01-02T00:00:00Z&startedBefore=2026-01-01T00:00:00Z",
            vec!["startedBefore"],
        ),
        (
            "?startedFrom=2026-01-01T00:00:00Z&startedBefore=2026-01-01T00:00:00Z",
            vec!["startedBefore"],
        ),
    ];
    for (query, fields) in cases {
        let r = app.get(&format!("/sessions{query}")).await;
        r.assert_problem(400, "validation_failed");
        assert_eq!(r.error_fields(), fields, "{query}: {}", r.text);
    }
    let five: Vec<String> = (0..5).map(|i| format!("metadata.k{i}=v")).collect();
    assert!(list(&app, &format!("?{}", five.join("&"))).await.is_empty());
    create_all(&app, &["a", "b", "c"], json!({})).await;
    let r = app.get("/sessions?limit=1&order=asc").await;
    let cursor = r.body["pagination"]["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .get(&format!("/sessions?limit=1&order=desc&after={cursor}"))
        .await;
    r.assert_problem(400, "validation_failed");
    assert_eq!(r.error_fields(), ["after"], "{}", r.text);
}}

backend_test! { async fn cursor_walks_return_every_session_once_while_others_are_created(app: TestApp) {
    let ids: Vec<String> = (0..30).map(|i| format!("old-{i:02}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut existing = create_all(&app, &refs, json!({})).await;
    existing.sort();
    for order in ["asc", "desc"] {
        let writer = app.handle();
        let creating = tokio::spawn(async move {
            for i in 0..30 {
                writer.create_session(&format!("new-{order}-{i:02}")).await;
            }
        });
        let seen = walk(&app, order, 4, "").await;
        creating.await.unwrap();
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            seen.len(),
            "a session was listed twice: {seen:?}"
        );
        for id in &existing {
            assert!(seen.contains(id), "{order}: {id} was missed: {seen:?}");
        }
        // The next walk must also see the sessions this one created.
        existing = walk(&app, "asc", 100, "").await;
        existing.sort();
    }
    assert_eq!(existing.len(), 90);
}}

backend_test! { async fn deleted_sessions_are_never_listed(app: TestApp) {
    create_all(&app, &["a", "b", "c"], json!({"k": "v"})).await;
    app.complete("b", None).await;
    assert_eq!(
        app.request(reqwest::Method::DELETE, "/sessions/b")
            .await
            .status,
        204
    );
    let mut all = walk(&app, "asc", 1, "").await;
    all.sort();
    assert_eq!(all, ["a", "c"]);
    assert!(list(&app, "?status=completed").await.is_empty());
    assert_eq!(list(&app, "?metadata.k=v&order=asc").await.len(), 2);
}}

/// More sessions than one list request may examine, created through the repository on SQLite
/// only (5,000+ HTTP creates, or MongoDB round trips, would take minutes): a filter that matches
/// only the oldest session gives an empty page with `has_more` and a cursor, and following it
/// finds the session. Listed through `SessionService::list` in process, as the handler calls it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_selective_filter_over_more_than_5000_sessions_comes_back_short_with_a_cursor() {
    run_with_store(Backend::Sqlite, |store| async move {
        let repos = store.repos.clone();
        let total = MAX_LIST_CANDIDATES + 50;
        for i in 0..total {
            let metadata = if i == 0 {
                json!({"tag": "needle"})
            } else {
                json!({"tag": "hay"})
            };
            let new = NewSession {
                session_id: SessionId::parse(format!("s-{i:05}")).unwrap(),
                language: Language::parse("en").unwrap(),
                metadata: JsonObject::parse(metadata).unwrap(),
                started_at: Timestamp::from_millis(1_766_000_000_000 + i as i64).unwrap(),
                timers: Timers::default(),
                redact: None,
            };
            assert!(repos.sessions.create_or_get(new).await.unwrap().created);
        }
        let service = SessionService::new(repos, Lifecycle::default());
        let request = ListRequest {
            statuses: Vec::new(),
            started_from: None,
            started_before: None,
            ended_reason: None,
            metadata: vec![("tag".into(), "needle".into())],
            order: Order::Desc,
            limit: 20,
            after: None,
        };
        let first = service.list(request.clone()).await.unwrap();
        assert!(first.sessions.is_empty(), "{:?}", first.sessions);
        assert!(first.has_more);
        let cursor = first.next_cursor.expect("a cursor to go on");
        let second = service
            .list(ListRequest {
                after: Some(cursor),
                ..request
            })
            .await
            .unwrap();
        let found: Vec<&str> = second
            .sessions
            .iter()
            .map(|s| s.session_id.as_str())
            .collect();
        assert_eq!(found, ["s-00000"]);
        assert!(!second.has_more);
        assert!(second.next_cursor.is_none());
    })
    .await;
}
