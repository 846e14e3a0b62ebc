use serde_json::json;

use crate::support::app::{TestApp, assert_one_201_and_the_rest_200};

backend_test! { async fn creating_a_session_returns_201_with_location_and_the_session(app: TestApp) {
    let r = app
        .post_json(
            "/sessions",
            &json!({"sessionId": "call-1", "language": "en-US", "metadata": {"from": "+1555"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("location"), Some("/sessions/call-1"));
    assert_eq!(r.body["sessionId"], "call-1");
    assert_eq!(r.body["status"], "initiated");
    assert_eq!(r.body["language"], "en-US");
    assert_eq!(r.body["metadata"], json!({"from": "+1555"}));
    assert_eq!(r.body["endedAt"], json!(null));
    assert_eq!(r.body["eventCount"], 0);
    let started = r.body["startedAt"].as_str().unwrap();
    assert!(started.ends_with('Z') && started.len() == 24, "{started}");
}}

backend_test! { async fn creating_an_existing_session_returns_200_and_changes_nothing(app: TestApp) {
    let first = app.create_session("call-1").await;
    let r = app
        .post_json(
            "/sessions",
            &json!({"sessionId": "call-1", "language": "fr", "metadata": {"x": 1}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, first);
}}

backend_test! { async fn concurrent_identical_creates_make_one_session_and_one_201(app: TestApp) {
    let body = json!({"sessionId": "race", "language": "en"});
    let replies =
        futures_util::future::join_all((0..40).map(|_| app.post_json("/sessions", &body))).await;
    assert_one_201_and_the_rest_200(&replies);
    let started: std::collections::HashSet<_> = replies
        .iter()
        .map(|r| r.body["startedAt"].to_string())
        .collect();
    assert_eq!(started.len(), 1, "every caller sees the same startedAt");
}}
