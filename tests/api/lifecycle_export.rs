//! `GET /sessions/{id}/events`: a page of events without the session, and with
//! `Accept: application/x-ndjson` the whole export, equal to what a cursor walk returns.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::app::TestApp;

const NDJSON: &str = "application/x-ndjson";

/// The export of `path` (e.g. `/sessions/call-1/events?after=…`): its content type and events.
async fn export(app: &TestApp, path: &str) -> (String, Vec<Value>) {
    let r = app.get_with_header(path, "accept", NDJSON).await;
    assert_eq!(r.status(), 200, "{path}");
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    let text = r.text().await.unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "every line ends with a newline: {text:?}"
    );
    let events = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (content_type, events)
}

/// Every event a cursor walk of `GET /sessions/{id}/events` returns, ascending, `limit` a page.
async fn walk_events(app: &TestApp, id: &str, limit: u32) -> Vec<Value> {
    let mut all = Vec::new();
    let mut query = format!("?order=asc&limit={limit}");
    loop {
        let r = app.get(&format!("/sessions/{id}/events{query}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        all.extend(r.body["events"].as_array().unwrap().iter().cloned());
        match r.body["pagination"]["nextCursor"].as_str() {
            Some(c) => query = format!("?order=asc&limit={limit}&after={c}"),
            None => return all,
        }
    }
}

backend_test! { async fn the_events_endpoint_answers_a_page_of_events_without_the_session(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 5).await;
    let r = app.get("/sessions/call-1/events?limit=2").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut members: Vec<_> = r.body.as_object().unwrap().keys().cloned().collect();
    members.sort();
    assert_eq!(members, ["events", "pagination"]);
    let page = app.read_session("call-1", "?limit=2").await;
    assert_eq!(r.body["events"], page["events"]);
    assert_eq!(r.body["pagination"], page["pagination"]);

    let desc = app
        .get("/sessions/call-1/events?order=desc&page=2&limit=2")
        .await;
    let seqs: Vec<_> = desc.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].clone())
        .collect();
    assert_eq!(seqs, [json!(3), json!(2)]);
    assert_eq!(desc.body["pagination"]["page"], 2);
    let cursor = r.body["pagination"]["nextCursor"].as_str().unwrap();
    let next = app
        .get(&format!("/sessions/call-1/events?limit=2&after={cursor}"))
        .await;
    assert_eq!(next.body["events"][0]["seq"], 3, "{}", next.text);
    assert_eq!(walk_events(&app, "call-1", 2).await.len(), 5);
}}

backend_test! { async fn the_events_endpoint_refuses_bad_parameters_and_unknown_or_deleted_sessions(app: TestApp) {
    app.create_session("call-1").await;
    for query in ["?limit=0", "?order=up", "?bogus=1", "?page=0", "?after=zzz"] {
        app.get(&format!("/sessions/call-1/events{query}"))
            .await
            .assert_problem(400, "validation_failed");
    }
    app.get("/sessions/nobody/events")
        .await
        .assert_problem(404, "session_not_found");
    let r = app
        .get_with_header("/sessions/nobody/events", "accept", NDJSON)
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        app.request(Method::DELETE, "/sessions/call-1").await.status,
        204
    );
    app.get("/sessions/call-1/events")
        .await
        .assert_problem(410, "session_deleted");
}}

backend_test! { async fn an_ndjson_export_is_every_event_one_per_line_as_a_cursor_walk_gives_them(app: TestApp) {
    app.create_session("call-1").await;
    for i in 1..=23 {
        let body = json!({"eventId": format!("e-{i}"), "type": "bot_speech", "payload": {"text": "line\nbreak", "i": i}});
        assert_eq!(app.post_event("call-1", &body).await.status, 201);
    }
    let (content_type, events) = export(&app, "/sessions/call-1/events").await;
    assert_eq!(content_type, NDJSON);
    assert_eq!(events.len(), 23);
    assert_eq!(events, walk_events(&app, "call-1", 5).await);
    assert_eq!(events[0]["payload"]["text"], "line\nbreak");

    // From a cursor: the events after it.
    let first = app.get("/sessions/call-1/events?order=asc&limit=10").await;
    let cursor = first.body["pagination"]["nextCursor"].as_str().unwrap();
    let (_, rest) = export(&app, &format!("/sessions/call-1/events?after={cursor}")).await;
    assert_eq!(rest, events[10..]);

    app.create_session("empty").await;
    let (content_type, none) = export(&app, "/sessions/empty/events").await;
    assert_eq!((content_type.as_str(), none.len()), (NDJSON, 0));
}}

backend_test! { async fn an_ndjson_export_of_a_session_longer_than_one_read_is_whole(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 520).await;
    let (_, events) = export(&app, "/sessions/call-1/events").await;
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=520).collect::<Vec<_>>());
    assert_eq!(events, walk_events(&app, "call-1", 100).await);
}}

backend_test! { async fn an_ndjson_export_takes_no_parameter_but_after(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 3).await;
    for query in ["?limit=5", "?order=asc", "?page=1", "?limit=5&order=desc"] {
        let r = app
            .get_with_header(&format!("/sessions/call-1/events{query}"), "accept", NDJSON)
            .await;
        assert_eq!(r.status(), 400, "{query}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{query}"
        );
    }
    let desc = app.get("/sessions/call-1/events?order=desc&limit=1").await;
    let cursor = desc.body["pagination"]["nextCursor"].as_str().unwrap();
    let r = app
        .get_with_header(
            &format!("/sessions/call-1/events?after={cursor}"),
            "accept",
            NDJSON,
        )
        .await;
    assert_eq!(r.status(), 400, "a descending cursor");
}}
