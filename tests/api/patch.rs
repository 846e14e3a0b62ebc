//! `PATCH /sessions/{id}` over HTTP: merge-patch only, the session's `ETag` on every session
//! answer, `If-Match`, and no lost update among concurrent clients.

use serde_json::{Value, json};

use crate::support::app::{Reply, TestApp};

const MERGE_PATCH: &str = "application/merge-patch+json";

/// PATCHes `body` (as text) with `content_type` and, if given, `If-Match`.
async fn patch_with(
    app: &TestApp,
    id: &str,
    content_type: Option<&str>,
    if_match: Option<&str>,
    body: &str,
) -> Reply {
    let mut request = app
        .client
        .patch(app.url(&format!("/sessions/{id}")))
        .body(body.to_owned());
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    TestApp::read(request.send().await.expect("PATCH")).await
}

async fn patch(app: &TestApp, id: &str, body: Value) -> Reply {
    patch_with(app, id, Some(MERGE_PATCH), None, &body.to_string()).await
}

fn etag(reply: &Reply) -> String {
    reply.header("etag").expect("an ETag").to_owned()
}

backend_test! { async fn a_patch_sets_and_removes_keys_and_answers_the_session_with_its_etag(app: TestApp) {
    let created = app
        .post_json("/sessions", &json!({"sessionId": "p", "language": "en", "metadata": {"from": "ivr", "tmp": 1}}))
        .await;
    assert_eq!(created.status, 201);
    let first_tag = etag(&created);
    let body = json!({"metadata": {"summaryId": "sum-1", "tmp": null}});
    let r = patch(&app, "p", body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["metadata"], json!({"from": "ivr", "summaryId": "sum-1"}));
    assert!(r.body.get("events").is_none(), "the session without events");
    let tag = etag(&r);
    assert_ne!(tag, first_tag);
    // GET shows the same version; the same patch again gives the same session and ETag.
    assert_eq!(etag(&app.get("/sessions/p").await), tag);
    let again = patch(&app, "p", body).await;
    assert_eq!((again.status, &again.body, etag(&again)), (200, &r.body, tag.clone()));
    // Any change to the session gives another ETag: an event, then the end.
    app.add_event("p", "e1").await;
    let after_event = etag(&app.get("/sessions/p").await);
    assert_ne!(after_event, tag);
    let ended = app.complete("p", None).await;
    assert_ne!(etag(&ended), after_event);
    // Ended calls take patches (post-call pipelines).
    let late = patch(&app, "p", json!({"metadata": {"disposition": "sale"}})).await;
    assert_eq!((late.status, late.body["status"].clone()), (200, json!("completed")));
}}

backend_test! { async fn if_match_applies_a_patch_only_at_that_version(app: TestApp) {
    let tag = etag(&app.post_json("/sessions", &json!({"sessionId": "v", "language": "en"})).await);
    app.add_event("v", "e1").await;
    let body = r#"{"metadata": {"a": 1}}"#;
    let stale = patch_with(&app, "v", Some(MERGE_PATCH), Some(&tag), body).await;
    stale.assert_problem(412, "precondition_failed");
    assert_eq!(app.get("/sessions/v").await.body["metadata"], json!({}));
    let current = etag(&app.get("/sessions/v").await);
    let ok = patch_with(&app, "v", Some(MERGE_PATCH), Some(&current), body).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let weak = format!("W/{}", etag(&ok));
    patch_with(&app, "v", Some(MERGE_PATCH), Some(&weak), body).await.assert_problem(412, "precondition_failed");
    let any = patch_with(&app, "v", Some(MERGE_PATCH), Some("*"), r#"{"metadata": {"b": 2}}"#).await;
    assert_eq!(any.status, 200);
    let bad = patch_with(&app, "v", Some(MERGE_PATCH), Some("not-quoted"), body).await;
    bad.assert_problem(400, "validation_failed");
}}

backend_test! { async fn bad_patches_are_refused_and_change_nothing(app: TestApp) {
    app.create_session("b").await;
    let body = r#"{"metadata": {"a": 1}}"#;
    for ct in [Some("application/json"), Some("text/plain"), None] {
        patch_with(&app, "b", ct, None, body).await.assert_problem(415, "unsupported_media_type");
    }
    let r = patch(&app, "b", json!({"metadata": {"a": 1}, "status": "completed"})).await;
    r.assert_problem(400, "validation_failed");
    assert_eq!(r.error_fields(), ["status"]);
    let r = patch(&app, "b", json!({"metadata": "x"})).await;
    assert_eq!(r.assert_problem(400, "validation_failed")["errors"][0]["field"], "metadata");
    let many: serde_json::Map<String, Value> = (0..1_001).map(|i| (format!("k{i}"), json!(i))).collect();
    patch(&app, "b", json!({ "metadata": many })).await.assert_problem(400, "validation_failed");
    patch_with(&app, "b", Some(MERGE_PATCH), None, "{").await.assert_problem(400, "malformed_json");
    patch(&app, "nobody", json!({"metadata": {}})).await.assert_problem(404, "session_not_found");
    let session = app.get("/sessions/b").await;
    assert_eq!(session.body["metadata"], json!({}));
    app.request(reqwest::Method::DELETE, "/sessions/b").await;
    patch(&app, "b", json!({"metadata": {"a": 1}})).await.assert_problem(410, "session_deleted");
}}

backend_test! { async fn sixteen_concurrent_clients_each_adding_a_key_all_land(app: TestApp) {
    app.create_session("race").await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let app = app.handle();
            tokio::spawn(async move { patch(&app, "race", json!({"metadata": { format!("c{i}"): i }})).await })
        })
        .collect();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let metadata = app.get("/sessions/race").await.body["metadata"].clone();
    for i in 0..16 {
        assert_eq!(metadata[format!("c{i}")], i, "{metadata}");
    }
}}

backend_test! { async fn patches_on_a_call_taking_appends_are_not_held_back_by_them(app: TestApp) {
    app.create_session("busy").await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Appends keep coming, from four clients, for as long as the patches run.
    let appenders: Vec<_> = (0..4)
        .map(|t| {
            let (app, done) = (app.handle(), done.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = app.post_event("busy", &json!({"eventId": format!("a{t}-{n}"), "type": "system", "payload": {}})).await;
                    assert_eq!(r.status, 201, "{}", r.text);
                    n += 1;
                }
                n
            })
        })
        .collect();
    // Let the appends get going, then patch one key at a time.
    while app.get("/sessions/busy").await.body["eventCount"].as_u64().unwrap() < 8 {
        tokio::task::yield_now().await;
    }
    for i in 0..8 {
        let r = patch(&app, "busy", json!({"metadata": { format!("k{i}"): i }})).await;
        assert_eq!(r.status, 200, "patch {i} among appends: {}", r.text);
        assert_eq!(r.body["metadata"][format!("k{i}")], i, "{}", r.text);
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut appended = 0;
    for a in appenders {
        appended += a.await.unwrap();
    }
    let session = app.get("/sessions/busy").await.body;
    assert_eq!(session["eventCount"], appended, "{session}");
    for i in 0..8 {
        assert_eq!(session["metadata"][format!("k{i}")], i, "{session}");
    }
}}
