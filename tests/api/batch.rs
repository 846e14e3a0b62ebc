//! `POST /sessions/{sessionId}/events:batch`: validation with field paths, 201 and 200, 409s
//! naming the offending events, limits, keys, and batches racing each other.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::support::app::{Reply, TestApp, spawn_app_with};
use crate::support::{Backend, StoreCtx, TestStore};

fn speech(event_id: &str) -> Value {
    json!({"eventId": event_id, "type": "user_speech", "payload": {"text": event_id}})
}

/// `{"events": [speech(id), …]}`.
fn batch_of(ids: &[&str]) -> Value {
    json!({"events": ids.iter().map(|id| speech(id)).collect::<Vec<_>>()})
}

impl TestApp {
    /// POSTs `body` to the session's batch route, whatever the answer.
    async fn post_batch(&self, session_id: &str, body: &Value) -> Reply {
        self.post_json(&format!("/sessions/{session_id}/events:batch"), body)
            .await
    }
}

/// The (eventId, seq) pairs of a batch answer, in its order.
fn pairs(reply: &Reply) -> Vec<(String, u64)> {
    reply.body["events"]
        .as_array()
        .unwrap_or_else(|| panic!("a batch answer: {}", reply.text))
        .iter()
        .map(|e| {
            (
                e["eventId"].as_str().unwrap().to_owned(),
                e["seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn pair(id: &str, seq: u64) -> (String, u64) {
    (id.to_owned(), seq)
}

/// The eventIds stored in the session, in seq order.
async fn stored_ids(app: &TestApp, session: &str) -> Vec<String> {
    app.read_session(session, "?limit=100").await["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventId"].as_str().unwrap().to_owned())
        .collect()
}

backend_test! { async fn a_batch_is_stored_with_201_and_consecutive_seqs_in_request_order(app: TestApp) {
    app.create_session("call-1").await;
    app.add_event("call-1", "before").await;

    let r = app.post_batch("call-1", &batch_of(&["b", "a", "c"])).await;

    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(pairs(&r), [pair("b", 2), pair("a", 3), pair("c", 4)]);
    let first = &r.body["events"][0];
    assert_eq!(first["sessionId"], "call-1");
    assert_eq!(first["type"], "user_speech");
    assert_eq!(first["payload"], json!({"text": "b"}));
    assert_eq!(app.event_count("call-1").await, 4);
    assert_eq!(stored_ids(&app, "call-1").await, ["before", "b", "a", "c"]);
    let session = app.read_session("call-1", "").await;
    assert_eq!(session["status"], "active");
}}

backend_test! { async fn a_retried_batch_gets_200_with_the_same_events_and_seqs(app: TestApp) {
    app.create_session("call-1").await;
    let body = json!({"events": [
        speech("e1"),
        {"eventId": "e2", "type": "system", "payload": {"k": 1}, "timestamp": "2025-12-21T15:30:15.123Z"},
    ]});
    let first = app.post_batch("call-1", &body).await;
    assert_eq!(first.status, 201, "{}", first.text);

    let again = app.post_batch("call-1", &body).await;

    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body, first.body, "the stored events, unchanged");
    assert_eq!(app.event_count("call-1").await, 2);
}}

backend_test! { async fn a_batch_of_replays_and_new_events_is_201_and_stores_only_the_new_ones(app: TestApp) {
    app.create_session("call-1").await;
    let stored = app.add_event("call-1", "e2").await;

    let r = app.post_batch("call-1", &batch_of(&["e1", "e2", "e3"])).await;

    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(pairs(&r), [pair("e1", 2), pair("e2", 1), pair("e3", 3)]);
    assert_eq!(r.body["events"][1], stored, "the replay comes back as stored");
    assert_eq!(app.event_count("call-1").await, 3);
}}

backend_test! { async fn a_batch_with_conflicting_event_ids_is_409_naming_them_and_stores_nothing(app: TestApp) {
    app.create_session("call-1").await;
    app.post_event("call-1", &json!({"eventId": "x", "type": "system", "payload": {}})).await;
    app.post_event("call-1", &json!({"eventId": "y", "type": "system", "payload": {}})).await;

    let r = app.post_batch("call-1", &batch_of(&["n1", "x", "n2", "y"])).await;

    let problem = r.assert_problem(409, "event_id_conflict");
    assert_eq!(r.error_fields(), ["events[1].eventId", "events[3].eventId"]);
    assert!(problem["errors"][0]["message"].is_string());
    assert_eq!(app.event_count("call-1").await, 2);
    assert_eq!(stored_ids(&app, "call-1").await, ["x", "y"]);
}}

backend_test! { async fn a_batch_with_new_events_for_an_ended_session_is_409_session_ended(app: TestApp) {
    app.create_session("call-1").await;
    app.add_event("call-1", "e1").await;
    assert_eq!(app.complete("call-1", None).await.status, 200);

    let r = app.post_batch("call-1", &batch_of(&["e1", "e2", "e3"])).await;

    r.assert_problem(409, "session_ended");
    assert_eq!(r.error_fields(), ["events[1].eventId", "events[2].eventId"]);
    assert_eq!(app.event_count("call-1").await, 1);
    // Replays alone are still answered from what is stored.
    let replay = app.post_batch("call-1", &batch_of(&["e1"])).await;
    assert_eq!(replay.status, 200, "{}", replay.text);
    assert_eq!(pairs(&replay), [pair("e1", 1)]);
}}

backend_test! { async fn a_batch_after_the_inactivity_deadline_ends_the_session_and_is_409(s: StoreCtx) {
    let app = crate::support::app::spawn_app(s).await;
    // A 1-second timer whose deadline has passed by the time the batch arrives: the session is
    // created with a start in the past by the store itself.
    let mut new = session_service::domain::NewSession {
        session_id: session_service::domain::SessionId::parse("timed").unwrap(),
        language: session_service::domain::Language::parse("en").unwrap(),
        metadata: Default::default(),
        started_at: session_service::domain::Timestamp::from_millis(1_000_000_000_000).unwrap(),
        timers: session_service::domain::Timers::default(),
        redact: None,
    };
    new.timers.inactivity_seconds = 1;
    app.store.repos.sessions.create_or_get(new).await.unwrap();

    let r = app.post_batch("timed", &batch_of(&["e1", "e2"])).await;

    r.assert_problem(409, "session_ended");
    assert_eq!(r.error_fields(), ["events[0].eventId", "events[1].eventId"]);
    let session = app.read_session("timed", "").await;
    assert_eq!(session["status"], "failed");
    assert_eq!(session["endedReason"], "inactivity_timeout");
    assert_eq!(session["eventCount"], 0);
}}

backend_test! { async fn unknown_and_deleted_sessions_answer_404_and_410(app: TestApp) {
    app.post_batch("nobody", &batch_of(&["e1"]))
        .await
        .assert_problem(404, "session_not_found");
    app.create_session("gone").await;
    app.post_batch("gone", &batch_of(&["e1"])).await;
    let deleted = app.request(reqwest::Method::DELETE, "/sessions/gone").await;
    assert_eq!(deleted.status, 204);
    app.post_batch("gone", &batch_of(&["e1", "e2"]))
        .await
        .assert_problem(410, "session_deleted");
}}

backend_test! { async fn every_invalid_event_is_named_by_its_path_at_once_and_nothing_is_stored(app: TestApp) {
    app.create_session("call-1").await;
    let body = json!({
        "events": [
            speech("ok"),
            {"eventId": "bad id!", "type": "shout", "payload": {}},
            "not an object",
            {"type": "system", "payload": [], "extra": 1},
        ],
        "unknown": true,
    });

    let r = app.post_batch("call-1", &body).await;

    r.assert_problem(400, "validation_failed");
    let fields: HashSet<String> = r.error_fields().into_iter().collect();
    let expected: HashSet<String> = [
        "events[1].eventId",
        "events[1].type",
        "events[2]",
        "events[3].eventId",
        "events[3].payload",
        "events[3].extra",
        "unknown",
    ]
    .map(String::from)
    .into();
    assert_eq!(fields, expected, "{}", r.text);
    assert_eq!(app.event_count("call-1").await, 0);
}}

backend_test! { async fn the_events_member_must_be_an_array_of_1_to_100_events(app: TestApp) {
    app.create_session("call-1").await;
    let hundred_and_one: Vec<String> = (0..101).map(|i| format!("e{i}")).collect();
    let ids: Vec<&str> = hundred_and_one.iter().map(String::as_str).collect();
    for body in [
        json!({"events": []}),
        batch_of(&ids),
        json!({"events": {"eventId": "e1"}}),
        json!({}),
        json!({"events": null}),
    ] {
        let r = app.post_batch("call-1", &body).await;
        r.assert_problem(400, "validation_failed");
        assert_eq!(r.error_fields(), ["events"], "{}", r.text);
    }
    assert_eq!(app.event_count("call-1").await, 0);
    let r = app.post_batch("call-1", &batch_of(&ids[..100])).await;
    assert_eq!(r.status, 201, "100 events are fine: {}", r.text);
    assert_eq!(pairs(&r).last(), Some(&pair("e99", 100)));
}}

backend_test! { async fn the_same_event_id_twice_is_stored_once_if_identical_else_400(app: TestApp) {
    app.create_session("call-1").await;
    let mut other = speech("dup");
    other["payload"] = json!({"text": "something else"});
    let r = app
        .post_batch("call-1", &json!({"events": [speech("dup"), speech("x"), other]}))
        .await;
    r.assert_problem(400, "validation_failed");
    assert_eq!(r.error_fields(), ["events[2].eventId"]);
    assert_eq!(app.event_count("call-1").await, 0);

    let r = app.post_batch("call-1", &batch_of(&["dup", "x", "dup"])).await;

    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(pairs(&r), [pair("dup", 1), pair("x", 2), pair("dup", 1)]);
    assert_eq!(app.event_count("call-1").await, 2);
}}

backend_test! { async fn a_batch_over_max_body_bytes_is_413_and_a_non_json_one_415(s: StoreCtx) {
    let app = spawn_app_with(s, &[("MAX_BODY_BYTES", "2048")]).await;
    app.create_session("call-1").await;
    let big: Vec<String> = (0..60).map(|i| format!("event-number-{i}")).collect();
    let ids: Vec<&str> = big.iter().map(String::as_str).collect();
    assert!(batch_of(&ids).to_string().len() > 2048);

    app.post_batch("call-1", &batch_of(&ids))
        .await
        .assert_problem(413, "payload_too_large");
    app.post_raw("/sessions/call-1/events:batch", Some("text/plain"), batch_of(&["e1"]).to_string())
        .await
        .assert_problem(415, "unsupported_media_type");
    assert_eq!(app.event_count("call-1").await, 0);
}}

#[tokio::test]
async fn a_batch_needs_a_key_with_the_write_scope() {
    const READ_KEY: &str = "reader-key-0123456789abcdef";
    const WRITE_KEY: &str = "writer-key-0123456789abcdef";
    let store = TestStore::open(Backend::Sqlite).await;
    let keys = format!("read:{READ_KEY},write:{WRITE_KEY}");
    let app = spawn_app_with(store.ctx(), &[("API_KEYS", &keys)]).await;
    let send = |key: Option<&'static str>, path: &'static str, body: Value| {
        let mut request = app.client.post(app.url(path)).json(&body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let created = send(
        Some(WRITE_KEY),
        "/sessions",
        json!({"sessionId": "call-1", "language": "en"}),
    )
    .await;
    assert_eq!(created.0, 201);
    let path = "/sessions/call-1/events:batch";
    let (status, body) = send(None, path, batch_of(&["e1"])).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    let (status, body) = send(Some(READ_KEY), path, batch_of(&["e1"])).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    let (status, body) = send(Some(WRITE_KEY), path, batch_of(&["e1"])).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["events"][0]["seq"], 1);
    drop(app);
    store.cleanup().await;
}

backend_test! { async fn the_same_batch_from_16_clients_at_once_is_stored_once_with_one_201(app: TestApp) {
    app.create_session("call-1").await;
    let body = batch_of(&["a", "b", "c", "d"]);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (app, body) = (app.handle(), body.clone());
            tokio::spawn(async move { app.post_batch("call-1", &body).await })
        })
        .collect();
    let replies: Vec<Reply> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();

    crate::support::app::assert_one_201_and_the_rest_200(&replies);
    let answers: HashSet<String> = replies.iter().map(|r| r.body.to_string()).collect();
    assert_eq!(answers.len(), 1, "every client sees the same events: {answers:?}");
    assert_eq!(
        pairs(&replies[0]),
        [pair("a", 1), pair("b", 2), pair("c", 3), pair("d", 4)]
    );
    assert_eq!(app.event_count("call-1").await, 4);
}}

backend_test! { async fn batches_from_8_writers_at_once_each_get_dense_consecutive_seqs(app: TestApp) {
    app.create_session("call-1").await;
    const WRITERS: usize = 8;
    const PER_BATCH: usize = 10;
    const ROUNDS: usize = 3;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let app = app.handle();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for round in 0..ROUNDS {
                    let ids: Vec<String> =
                        (0..PER_BATCH).map(|i| format!("w{w}-r{round}-{i}")).collect();
                    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                    let r = app.post_batch("call-1", &batch_of(&ids)).await;
                    assert_eq!(r.status, 201, "{}", r.text);
                    answers.push(pairs(&r));
                }
                answers
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        for answer in task.await.unwrap() {
            let first = answer[0].1;
            let got: Vec<u64> = answer.iter().map(|p| p.1).collect();
            let want: Vec<u64> = (first..first + PER_BATCH as u64).collect();
            assert_eq!(got, want, "one batch's seqs are consecutive: {answer:?}");
            seqs.extend(got);
        }
    }
    seqs.sort();
    let total = (WRITERS * PER_BATCH * ROUNDS) as u64;
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "dense, each once");
    assert_eq!(app.event_count("call-1").await, total);
    let walk = app.walk("call-1", "asc", 50).await;
    assert_eq!(walk.events.len() as u64, total);
}}
