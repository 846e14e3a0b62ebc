//! Ending a session over HTTP: with a reason (the first reason stands), invalid reasons, an empty
//! JSON body, and what a create retry or a conflicting event sees once a session has ended.

use std::time::Duration;

use serde_json::{Value, json};

use crate::lifecycle_support::assert_listed_first;
use crate::support::StoreCtx;
use crate::support::app::{TestApp, spawn_app_with};

backend_test! { async fn complete_records_a_reason_and_the_first_reason_stands(app: TestApp) {
    app.create_session("call-1").await;
    let r = app
        .complete("call-1", Some(&json!({"reason": "caller_hangup"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.body["status"].clone(), r.body["endedReason"].clone()),
        (json!("completed"), json!("caller_hangup"))
    );
    assert_eq!(r.body["expiresAt"], Value::Null);
    let again = app
        .complete("call-1", Some(&json!({"reason": "transferred"})))
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body, r.body);
    assert_eq!(
        app.read_session("call-1", "").await["endedReason"],
        "caller_hangup"
    );
}}

backend_test! { async fn an_invalid_reason_is_a_400_and_ends_nothing(app: TestApp) {
    app.create_session("call-1").await;
    let long = "x".repeat(65);
    for bad in [
        json!(""),
        json!("Caller_Hangup"),
        json!("caller-hangup"),
        json!(long),
        json!(5),
    ] {
        let r = app.complete("call-1", Some(&json!({"reason": bad}))).await;
        r.assert_problem(400, "validation_failed");
        assert_eq!(r.error_fields(), ["reason"], "{bad}: {}", r.text);
    }
    assert_eq!(app.read_session("call-1", "").await["status"], "initiated");
    let max = "a_1".repeat(21) + "z";
    let r = app.complete("call-1", Some(&json!({"reason": max}))).await;
    assert_eq!(
        (r.status, r.body["endedReason"].as_str()),
        (200, Some(max.as_str())),
        "{}",
        r.text
    );
}}

backend_test! { async fn an_empty_json_body_to_complete_is_like_no_body(app: TestApp) {
    app.create_session("call-1").await;
    let r = app
        .post_raw("/sessions/call-1/complete", Some("application/json"), "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "completed");
    assert_eq!(r.body["endedReason"], Value::Null);
}}

backend_test! { async fn complete_as_failed_with_a_reason_before_the_deadline_keeps_both(app: TestApp) {
    app.create_session("call-1").await;
    let body = json!({"status": "failed", "reason": "network_error"});
    let r = app.complete("call-1", Some(&body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "failed");
    assert_eq!(r.body["endedReason"], "network_error");
    app.complete("call-1", None)
        .await
        .assert_problem(409, "session_already_ended");
    assert_listed_first(&app, "/sessions?endedReason=network_error&status=failed", "call-1").await;
}}

backend_test! { async fn a_create_retry_after_the_timer_ended_the_session_shows_it_ended(s: StoreCtx) {
    let app = spawn_app_with(s, &[("SWEEP_INTERVAL_MS", "3600000")]).await;
    let create = json!({"sessionId": "call-1", "language": "en", "inactivityTimeoutSeconds": 1});
    let first = app.post_json("/sessions", &create).await;
    assert_eq!(first.status, 201, "{}", first.text);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let retry = app.post_json("/sessions", &create).await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(retry.body["status"], "failed");
    assert_eq!(retry.body["endedReason"], "inactivity_timeout");
    assert_eq!(retry.body["endedAt"], first.body["expiresAt"]);
    assert_eq!(retry.body["expiresAt"], Value::Null);
    let read = app.read_session("call-1", "?limit=1").await;
    for (key, value) in retry.body.as_object().unwrap() {
        assert_eq!(&read[key], value, "{key}");
    }
}}

backend_test! { async fn after_the_end_a_stored_event_id_with_other_content_is_still_a_conflict(app: TestApp) {
    app.create_session("call-1").await;
    app.add_event("call-1", "e-1").await;
    app.complete("call-1", None).await;
    let other = json!({"eventId": "e-1", "type": "user_speech", "payload": {"text": "changed"}});
    app.post_event("call-1", &other)
        .await
        .assert_problem(409, "event_id_conflict");
    let same = json!({"eventId": "e-1", "type": "user_speech", "payload": {"text": "e-1"}});
    assert_eq!(app.post_event("call-1", &same).await.status, 200);
}}
