//! Validation: every invalid field of a body or path is named at once; unknown routes and wrong
//! methods.

use reqwest::Method;
use serde_json::json;

use super::{assert_invalid, assert_unchanged, nested, session_with_one_event};
use crate::support::app::TestApp;

/// Asserts that an event with each of `timestamps` is a 400 naming `timestamp`, and that the
/// refused requests changed nothing.
async fn assert_timestamps_refused(app: &TestApp, timestamps: &[&str]) {
    let before = session_with_one_event(app).await;

    for timestamp in timestamps {
        let r = app
            .post_event(
                "call-1",
                &json!({"eventId": "e-2", "type": "system", "payload": {}, "timestamp": timestamp}),
            )
            .await;

        assert_invalid(&r, &["timestamp"]);
    }
    assert_unchanged(app, &before).await;
}

// ---- validation: every problem at once ----

backend_test! { async fn a_session_body_with_every_field_wrong_lists_every_problem(app: TestApp) {
    let wrong_values = app
        .post_json(
            "/sessions",
            &json!({"sessionId": "a b", "language": "en_US", "metadata": [], "extra": 1}),
        )
        .await;
    let wrong_types = app
        .post_json(
            "/sessions",
            &json!({"sessionId": 5, "language": ["en"], "metadata": "x"}),
        )
        .await;
    let missing = app.post_json("/sessions", &json!({})).await;
    let nulls = app
        .post_json("/sessions", &json!({"sessionId": null, "language": null}))
        .await;

    assert_invalid(
        &wrong_values,
        &["sessionId", "language", "metadata", "extra"],
    );
    assert_invalid(&wrong_types, &["sessionId", "language", "metadata"]);
    assert_invalid(&missing, &["sessionId", "language"]);
    assert_invalid(&nulls, &["sessionId", "language"]);
}}

backend_test! { async fn an_event_body_with_every_field_wrong_lists_every_problem(app: TestApp) {
    let before = session_with_one_event(&app).await;

    let wrong_values = app
        .post_event(
            "call-1",
            &json!({"eventId": "a b", "type": "shout", "payload": [], "timestamp": "yesterday",
                    "extra": true, "seq": 7}),
        )
        .await;
    let wrong_types = app
        .post_event(
            "call-1",
            &json!({"eventId": 1, "type": 2, "payload": "x", "timestamp": 3}),
        )
        .await;
    let missing = app.post_event("call-1", &json!({})).await;
    let unknown_only = app
        .post_event(
            "call-1",
            &json!({"eventId": "e-2", "type": "system", "payload": {}, "sessionId": "call-1"}),
        )
        .await;

    assert_invalid(
        &wrong_values,
        &["eventId", "type", "payload", "timestamp", "extra", "seq"],
    );
    assert_invalid(&wrong_types, &["eventId", "type", "payload", "timestamp"]);
    assert_invalid(&missing, &["eventId", "type", "payload"]);
    assert_invalid(&unknown_only, &["sessionId"]);
    assert_unchanged(&app, &before).await;
}}

backend_test! { async fn an_invalid_session_id_in_the_body_is_a_400_naming_session_id(app: TestApp) {
    let too_long = "a".repeat(129);

    for id in ["", "a b", "a/b", "é", too_long.as_str(), "a%20b"] {
        let r = app
            .post_json("/sessions", &json!({"sessionId": id, "language": "en"}))
            .await;

        assert_invalid(&r, &["sessionId"]);
    }
    let longest = "a".repeat(128);
    app.create_session(&longest).await;
}}

backend_test! { async fn a_language_that_is_not_a_bcp47_tag_is_a_400_naming_language(app: TestApp) {
    for language in ["en_US", "", "e", "en-", "en-toolongsubtag"] {
        let r = app
            .post_json(
                "/sessions",
                &json!({"sessionId": "call-1", "language": language}),
            )
            .await;

        assert_invalid(&r, &["language"]);
    }
    app.assert_no_session("call-1").await;
}}

backend_test! { async fn metadata_that_is_not_an_object_is_a_400_naming_metadata(app: TestApp) {
    for metadata in [json!([]), json!("x"), json!(1), json!(true)] {
        let r = app
            .post_json(
                "/sessions",
                &json!({"sessionId": "call-1", "language": "en", "metadata": metadata}),
            )
            .await;

        assert_invalid(&r, &["metadata"]);
    }
    app.assert_no_session("call-1").await;
}}

backend_test! { async fn a_payload_that_is_not_an_object_is_a_400_naming_payload(app: TestApp) {
    let before = session_with_one_event(&app).await;

    for payload in [json!([]), json!("x"), json!(1), json!(null)] {
        let r = app
            .post_event(
                "call-1",
                &json!({"eventId": "e-2", "type": "system", "payload": payload}),
            )
            .await;

        assert_invalid(&r, &["payload"]);
    }
    assert_unchanged(&app, &before).await;
}}

backend_test! { async fn a_payload_nested_deeper_than_32_is_a_400_naming_payload(app: TestApp) {
    let before = session_with_one_event(&app).await;

    let too_deep = app
        .post_event(
            "call-1",
            &json!({"eventId": "e-2", "type": "system", "payload": nested(33)}),
        )
        .await;
    let deep_arrays = app
        .post_event(
            "call-1",
            &json!({"eventId": "e-2", "type": "system",
                    "payload": {"a": (2..33).fold(json!([]), |inner, _| json!([inner]))}}),
        )
        .await;

    assert_invalid(&too_deep, &["payload"]);
    assert_invalid(&deep_arrays, &["payload"]);
    assert_unchanged(&app, &before).await;
}}

backend_test! { async fn a_payload_nested_exactly_32_deep_is_accepted(app: TestApp) {
    app.create_session("call-1").await;
    let payload = nested(32);

    let r = app
        .post_event(
            "call-1",
            &json!({"eventId": "e-1", "type": "system", "payload": payload}),
        )
        .await;

    assert_eq!(r.status, 201, "{}", r.text);
    let stored = app.get("/sessions/call-1/events/e-1").await;
    assert_eq!(stored.body["payload"], payload);
}}

backend_test! { async fn keys_starting_with_a_dollar_are_a_400(app: TestApp) {
    let before = session_with_one_event(&app).await;

    for payload in [
        json!({"$set": 1}),
        json!({"a": {"$where": "1"}}),
        json!({"a": [1, {"$x": 1}]}),
    ] {
        let event = app
            .post_event(
                "call-1",
                &json!({"eventId": "e-2", "type": "system", "payload": payload.clone()}),
            )
            .await;
        let session = app
            .post_json(
                "/sessions",
                &json!({"sessionId": "call-2", "language": "en", "metadata": payload}),
            )
            .await;

        assert_invalid(&event, &["payload"]);
        assert_invalid(&session, &["metadata"]);
    }
    assert_unchanged(&app, &before).await;
    app.assert_no_session("call-2").await;
}}

backend_test! { async fn an_event_timestamp_that_is_not_rfc3339_is_a_400_naming_timestamp(app: TestApp) {
    assert_timestamps_refused(
        &app,
        &[
            "yesterday",
            "2025-12-21T15:30Z",
            "2025-13-01T00:00:00Z",
            "2025-12-21T15:30:15",
            "",
        ],
    )
    .await;
}}

backend_test! { async fn a_timestamp_without_t_or_space_between_date_and_time_is_a_400(app: TestApp) {
    assert_timestamps_refused(
        &app,
        &[
            "2025-12-21X15:30:15Z",
            "2025-12-21/15:30:15Z",
            "2025-12-21015:30:15Z",
        ],
    )
    .await;
}}

// ---- routes, methods and path parameters ----

backend_test! { async fn an_unknown_route_is_a_404_route_not_found(app: TestApp) {
    app.create_session("call-1").await;

    // (`/` is a route: it redirects to the web console.)
    for path in [
        "/nope",
        "/sessions/call-1/events/e-1/more",
        "/sessions/call-1/other",
        "/v1/sessions",
    ] {
        let r = app.get(path).await;

        r.assert_problem(404, "route_not_found");
    }
    app.post_json("/sessions/call-1/nope", &json!({}))
        .await
        .assert_problem(404, "route_not_found");
}}

backend_test! { async fn a_wrong_method_is_a_405_with_an_allow_header(app: TestApp) {
    app.create_session("call-1").await;

    for (method, path, allowed) in [
        (Method::PUT, "/sessions/x", "GET"),
        (Method::PUT, "/sessions/call-1", "PATCH"),
        (Method::PUT, "/sessions", "POST"),
        (Method::PATCH, "/sessions", "GET"),
        (Method::PUT, "/sessions/call-1/events", "POST"),
        (Method::GET, "/sessions/call-1/complete", "POST"),
        (Method::POST, "/sessions/call-1/events/e-1", "GET"),
        (Method::POST, "/health", "GET"),
    ] {
        let r = app.request(method.clone(), path).await;

        r.assert_problem(405, "method_not_allowed");
        let allow = r
            .header("allow")
            .unwrap_or_else(|| panic!("{method} {path}: no Allow header: {:?}", r.headers));
        assert!(
            allow.split(',').any(|m| m.trim() == allowed),
            "{method} {path}: Allow: {allow}"
        );
    }
    assert_eq!(app.read_session("call-1", "").await["status"], "initiated");
}}

backend_test! { async fn an_invalid_session_id_in_the_path_is_a_400_naming_session_id(app: TestApp) {
    let too_long = "a".repeat(129);
    let event = json!({"eventId": "e-1", "type": "system", "payload": {}});

    for id in [too_long.as_str(), "a%20b", "%C3%A9", "a%2Fb"] {
        let read = app.get(&format!("/sessions/{id}")).await;
        let add = app
            .post_json(&format!("/sessions/{id}/events"), &event)
            .await;
        let get_event = app.get(&format!("/sessions/{id}/events/e-1")).await;
        let complete = app.complete(id, None).await;

        assert_invalid(&read, &["sessionId"]);
        assert_invalid(&add, &["sessionId"]);
        assert_invalid(&get_event, &["sessionId"]);
        assert_invalid(&complete, &["sessionId"]);
    }
}}

backend_test! { async fn an_invalid_event_id_in_the_path_is_a_400_naming_event_id(app: TestApp) {
    app.create_session("call-1").await;
    let too_long = "e".repeat(129);

    for id in [too_long.as_str(), "a%20b", "e%3F1"] {
        let r = app.get(&format!("/sessions/call-1/events/{id}")).await;

        assert_invalid(&r, &["eventId"]);
    }
}}

backend_test! { async fn an_invalid_path_and_an_invalid_query_or_body_are_reported_together(app: TestApp) {
    let bad = "a%20b";

    let read = app.get(&format!("/sessions/{bad}?limit=0&order=up")).await;
    let get_event = app.get(&format!("/sessions/{bad}/events/{bad}")).await;
    let complete = app.complete(bad, Some(&json!({"status": "nope"}))).await;

    assert_invalid(&read, &["sessionId", "limit", "order"]);
    assert_invalid(&get_event, &["sessionId", "eventId"]);
    assert_invalid(&complete, &["sessionId", "status"]);
}}

backend_test! { async fn a_path_segment_that_is_not_utf8_is_a_400(app: TestApp) {
    for (path, name) in [
        ("/sessions/%FF", "sessionId"),
        ("/sessions/ok/events/%FF", "eventId"),
        ("/webhooks/%FF", "id"),
        ("/webhooks/%FF/deliveries", "id"),
    ] {
        let r = app.get(path).await;
        r.assert_problem(400, "invalid_path");
        assert!(r.text.contains(&format!("path parameter {name} is not UTF-8")), "{path}: {}", r.text);
    }
}}
