//! Bodies the service cannot take: not JSON, not an object, out of range, too deep, of the
//! wrong content type or size, and bad bodies for `complete`.

use serde_json::json;

use super::{JSON, assert_invalid, assert_unchanged, session_with_one_event};
use crate::support::StoreCtx;
use crate::support::app::{TestApp, spawn_app_with};

// ---- bodies that are not JSON objects ----

backend_test! { async fn malformed_json_is_a_400_malformed_json(app: TestApp) {
    app.create_session("call-1").await;

    for body in [
        r#"{"sessionId": "x""#,
        "{",
        "",
        "nope",
        r#"{"a":1} {}"#,
        "{'a': 1}",
    ] {
        let session = app.post_raw("/sessions", JSON, body).await;
        let event = app.post_raw("/sessions/call-1/events", JSON, body).await;

        session.assert_problem(400, "malformed_json");
        event.assert_problem(400, "malformed_json");
    }
}}

backend_test! { async fn a_body_that_is_not_an_object_is_a_400_body_not_object(app: TestApp) {
    app.create_session("call-1").await;

    for body in [
        "[]",
        r#""x""#,
        "1",
        "null",
        "true",
        r#"[{"sessionId": "a"}]"#,
    ] {
        let session = app.post_raw("/sessions", JSON, body).await;
        let event = app.post_raw("/sessions/call-1/events", JSON, body).await;
        let complete = app.post_raw("/sessions/call-1/complete", JSON, body).await;

        session.assert_problem(400, "body_not_object");
        event.assert_problem(400, "body_not_object");
        complete.assert_problem(400, "body_not_object");
    }
}}

backend_test! { async fn duplicate_json_keys_are_a_400_malformed_json(app: TestApp) {
    app.create_session("call-1").await;

    let session = app
        .post_raw(
            "/sessions",
            JSON,
            r#"{"sessionId": "a", "sessionId": "b", "language": "en"}"#,
        )
        .await;
    let nested = app
        .post_raw(
            "/sessions/call-1/events",
            JSON,
            r#"{"eventId": "e-1", "type": "system", "payload": {"x": {"k": 1, "k": 2}}}"#,
        )
        .await;

    session.assert_problem(400, "malformed_json");
    nested.assert_problem(400, "malformed_json");
    app.assert_no_session("a").await;
    app.assert_no_session("b").await;
    assert_eq!(app.event_count("call-1").await, 0);
}}

backend_test! { async fn integers_beyond_64_signed_bits_are_a_400(app: TestApp) {
    let before = session_with_one_event(&app).await;

    for n in [
        "9223372036854775808",
        "100000000000000000000",
        "-9223372036854775809",
    ] {
        let body = format!(r#"{{"eventId": "e-2", "type": "system", "payload": {{"n": {n}}}}}"#);
        let in_array = format!(
            r#"{{"eventId": "e-2", "type": "system", "payload": {{"a": [1, {{"n": {n}}}]}}}}"#
        );

        let r = app.post_raw("/sessions/call-1/events", JSON, body).await;
        let r2 = app
            .post_raw("/sessions/call-1/events", JSON, in_array)
            .await;

        r.assert_problem(400, "malformed_json");
        r2.assert_problem(400, "malformed_json");
    }
    assert_unchanged(&app, &before).await;
}}

backend_test! { async fn the_largest_and_smallest_64_bit_integers_are_kept_exactly(app: TestApp) {
    app.create_session("call-1").await;

    let r = app
        .post_raw(
            "/sessions/call-1/events",
            JSON,
            r#"{"eventId": "e-1", "type": "system",
                "payload": {"max": 9223372036854775807, "min": -9223372036854775808}}"#,
        )
        .await;

    assert_eq!(r.status, 201, "{}", r.text);
    let stored = app.get("/sessions/call-1/events/e-1").await;
    assert!(
        stored
            .text
            .contains(r#""max":9223372036854775807,"min":-9223372036854775808"#),
        "{}",
        stored.text
    );
}}

backend_test! { async fn a_100000_deep_json_body_is_a_400_not_a_crash(app: TestApp) {
    let before = session_with_one_event(&app).await;
    let arrays = "[".repeat(100_000) + &"]".repeat(100_000);
    let objects = r#"{"a":"#.repeat(100_000) + "1" + &"}".repeat(100_000);

    for body in [arrays, objects] {
        let event = app
            .post_raw("/sessions/call-1/events", JSON, body.clone())
            .await;
        let session = app.post_raw("/sessions", JSON, body).await;

        event.assert_problem(400, "malformed_json");
        session.assert_problem(400, "malformed_json");
    }
    assert_unchanged(&app, &before).await;
    assert_eq!(app.get("/health").await.status, 200, "still serving");
}}

// ---- content types and sizes ----

backend_test! { async fn a_body_without_a_json_content_type_is_a_415(app: TestApp) {
    let before = session_with_one_event(&app).await;
    let session = r#"{"sessionId": "call-2", "language": "en"}"#;
    let event = r#"{"eventId": "e-2", "type": "system", "payload": {}}"#;

    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let create = app.post_raw("/sessions", content_type, session).await;
        let e = app
            .post_raw("/sessions/call-1/events", content_type, event)
            .await;
        let c = app
            .post_raw(
                "/sessions/call-1/complete",
                content_type,
                r#"{"status":"failed"}"#,
            )
            .await;

        create.assert_problem(415, "unsupported_media_type");
        e.assert_problem(415, "unsupported_media_type");
        if content_type.is_some() {
            c.assert_problem(415, "unsupported_media_type");
        }
    }
    let no_type_complete = app
        .post_raw("/sessions/call-1/complete", None, r#"{"status":"failed"}"#)
        .await;
    no_type_complete.assert_problem(415, "unsupported_media_type");
    assert_unchanged(&app, &before).await;
    app.assert_no_session("call-2").await;
}}

backend_test! { async fn a_json_content_type_with_a_charset_is_accepted(app: TestApp) {
    let r = app
        .post_raw(
            "/sessions",
            Some("application/json; charset=utf-8"),
            r#"{"sessionId": "call-1", "language": "en"}"#,
        )
        .await;

    assert_eq!(r.status, 201, "{}", r.text);
}}

backend_test! { async fn a_body_over_max_body_bytes_is_a_413_and_changes_nothing(s: StoreCtx) {
    let app = spawn_app_with(s, &[("MAX_BODY_BYTES", "2048")]).await;
    let before = session_with_one_event(&app).await;
    let big = "x".repeat(4096);

    let r = app
        .post_event(
            "call-1",
            &json!({"eventId": "e-2", "type": "system", "payload": {"text": big}}),
        )
        .await;
    let session = app
        .post_json(
            "/sessions",
            &json!({"sessionId": "call-2", "language": "en", "metadata": {"text": big}}),
        )
        .await;

    r.assert_problem(413, "payload_too_large");
    session.assert_problem(413, "payload_too_large");
    assert_unchanged(&app, &before).await;
    app.assert_no_session("call-2").await;
}}

backend_test! { async fn a_body_under_max_body_bytes_is_accepted(s: StoreCtx) {
    let app = spawn_app_with(s, &[("MAX_BODY_BYTES", "2048")]).await;
    app.create_session("call-1").await;

    let r = app
        .post_event(
            "call-1",
            &json!({"eventId": "e-1", "type": "system", "payload": {"text": "x".repeat(1900)}}),
        )
        .await;

    assert_eq!(r.status, 201, "{}", r.text);
}}

// ---- completing with a bad body ----

backend_test! { async fn completing_with_an_unknown_status_is_a_400_naming_status(app: TestApp) {
    let before = session_with_one_event(&app).await;

    let nope = app
        .complete("call-1", Some(&json!({"status": "nope"})))
        .await;
    let active = app
        .complete("call-1", Some(&json!({"status": "active"})))
        .await;
    let number = app.complete("call-1", Some(&json!({"status": 1}))).await;

    assert_invalid(&nope, &["status"]);
    assert_invalid(&active, &["status"]);
    assert_invalid(&number, &["status"]);
    assert_unchanged(&app, &before).await;
}}

backend_test! { async fn completing_with_an_unknown_field_is_a_400_naming_it(app: TestApp) {
    let before = session_with_one_event(&app).await;

    let unknown = app.complete("call-1", Some(&json!({"x": 1}))).await;
    let both = app
        .complete(
            "call-1",
            Some(&json!({"status": "completed", "endedAt": "now"})),
        )
        .await;

    assert_invalid(&unknown, &["x"]);
    assert_invalid(&both, &["endedAt"]);
    assert_unchanged(&app, &before).await;
}}

// Many HTTP clients send `Content-Type: application/json` with no body at all.
backend_test! { async fn completing_with_a_json_content_type_and_an_empty_body_is_a_request_without_a_body(app: TestApp) {
    session_with_one_event(&app).await;

    let r = app.post_raw("/sessions/call-1/complete", JSON, "").await;

    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "completed");
    assert!(r.body["endedReason"].is_null());
    let other = app.post_raw("/sessions/call-1/complete", Some("text/plain"), "").await;
    other.assert_problem(415, "unsupported_media_type");
    let whitespace = app.post_raw("/sessions/call-1/complete", JSON, " ").await;
    whitespace.assert_problem(400, "malformed_json");
}}
