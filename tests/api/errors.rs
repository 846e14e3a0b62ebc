//! Requests the service refuses: every refusal is problem JSON with a stable code, names every
//! invalid field at once, and changes nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, spawn_app, spawn_app_with};
use crate::support::StoreCtx;

const JSON: Option<&str> = Some("application/json");

fn sorted(mut fields: Vec<String>) -> Vec<String> {
    fields.sort();
    fields
}

fn assert_invalid(r: &Reply, fields: &[&str]) {
    r.assert_problem(400, "validation_failed");
    let mut expected: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    expected.sort();
    assert_eq!(sorted(r.error_fields()), expected, "{}", r.text);
    for e in r.body["errors"].as_array().unwrap() {
        assert!(e["message"].is_string(), "every error says why: {}", r.text);
    }
}

/// An object nested `depth` levels deep, the outermost being level 1.
fn nested(depth: usize) -> Value {
    (1..depth).fold(json!({}), |inner, _| json!({ "a": inner }))
}

/// A session with one event, to check that refused requests leave it as it was.
async fn session_with_one_event(app: &TestApp) -> Value {
    app.create_session("call-1").await;
    app.add_event("call-1", "e-1").await;
    app.read_session("call-1", "").await
}

async fn assert_unchanged(app: &TestApp, before: &Value) {
    assert_eq!(&app.read_session("call-1", "").await, before);
    app.get("/sessions/call-1/events/e-2")
        .await
        .assert_problem(404, "event_not_found");
}

// ---- bodies that are not JSON objects ----

pub async fn malformed_json_is_a_400_malformed_json(s: StoreCtx) {
    let app = spawn_app(s).await;
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
}

pub async fn a_body_that_is_not_an_object_is_a_400_body_not_object(s: StoreCtx) {
    let app = spawn_app(s).await;
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
}

pub async fn duplicate_json_keys_are_a_400_malformed_json(s: StoreCtx) {
    let app = spawn_app(s).await;
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
    app.get("/sessions/a")
        .await
        .assert_problem(404, "session_not_found");
    app.get("/sessions/b")
        .await
        .assert_problem(404, "session_not_found");
    assert_eq!(app.event_count("call-1").await, 0);
}

pub async fn integers_beyond_64_signed_bits_are_a_400(s: StoreCtx) {
    let app = spawn_app(s).await;
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
}

pub async fn the_largest_and_smallest_64_bit_integers_are_kept_exactly(s: StoreCtx) {
    let app = spawn_app(s).await;
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
}

pub async fn a_100000_deep_json_body_is_a_400_not_a_crash(s: StoreCtx) {
    let app = spawn_app(s).await;
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
}

// ---- validation: every problem at once ----

pub async fn a_session_body_with_every_field_wrong_lists_every_problem(s: StoreCtx) {
    let app = spawn_app(s).await;

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
}

pub async fn an_event_body_with_every_field_wrong_lists_every_problem(s: StoreCtx) {
    let app = spawn_app(s).await;
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
}

pub async fn an_invalid_session_id_in_the_body_is_a_400_naming_session_id(s: StoreCtx) {
    let app = spawn_app(s).await;
    let too_long = "a".repeat(129);

    for id in ["", "a b", "a/b", "é", too_long.as_str(), "a%20b"] {
        let r = app
            .post_json("/sessions", &json!({"sessionId": id, "language": "en"}))
            .await;

        assert_invalid(&r, &["sessionId"]);
    }
    let longest = "a".repeat(128);
    app.create_session(&longest).await;
}

pub async fn a_language_that_is_not_a_bcp47_tag_is_a_400_naming_language(s: StoreCtx) {
    let app = spawn_app(s).await;

    for language in ["en_US", "", "e", "en-", "en-toolongsubtag"] {
        let r = app
            .post_json(
                "/sessions",
                &json!({"sessionId": "call-1", "language": language}),
            )
            .await;

        assert_invalid(&r, &["language"]);
    }
    app.get("/sessions/call-1")
        .await
        .assert_problem(404, "session_not_found");
}

pub async fn metadata_that_is_not_an_object_is_a_400_naming_metadata(s: StoreCtx) {
    let app = spawn_app(s).await;

    for metadata in [json!([]), json!("x"), json!(1), json!(true)] {
        let r = app
            .post_json(
                "/sessions",
                &json!({"sessionId": "call-1", "language": "en", "metadata": metadata}),
            )
            .await;

        assert_invalid(&r, &["metadata"]);
    }
    app.get("/sessions/call-1")
        .await
        .assert_problem(404, "session_not_found");
}

pub async fn a_payload_that_is_not_an_object_is_a_400_naming_payload(s: StoreCtx) {
    let app = spawn_app(s).await;
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
}

pub async fn a_payload_nested_deeper_than_32_is_a_400_naming_payload(s: StoreCtx) {
    let app = spawn_app(s).await;
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
}

pub async fn a_payload_nested_exactly_32_deep_is_accepted(s: StoreCtx) {
    let app = spawn_app(s).await;
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
}

pub async fn keys_starting_with_a_dollar_are_a_400(s: StoreCtx) {
    let app = spawn_app(s).await;
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
    app.get("/sessions/call-2")
        .await
        .assert_problem(404, "session_not_found");
}

pub async fn an_event_timestamp_that_is_not_rfc3339_is_a_400_naming_timestamp(s: StoreCtx) {
    let app = spawn_app(s).await;
    let before = session_with_one_event(&app).await;

    for timestamp in [
        "yesterday",
        "2025-12-21T15:30Z",
        "2025-13-01T00:00:00Z",
        "2025-12-21T15:30:15",
        "",
    ] {
        let r = app
            .post_event(
                "call-1",
                &json!({"eventId": "e-2", "type": "system", "payload": {}, "timestamp": timestamp}),
            )
            .await;

        assert_invalid(&r, &["timestamp"]);
    }
    assert_unchanged(&app, &before).await;
}

// ---- completing with a bad body ----

pub async fn completing_with_an_unknown_status_is_a_400_naming_status(s: StoreCtx) {
    let app = spawn_app(s).await;
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
}

pub async fn completing_with_an_unknown_field_is_a_400_naming_it(s: StoreCtx) {
    let app = spawn_app(s).await;
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
}

pub async fn completing_with_a_json_content_type_and_an_empty_body_is_a_400(s: StoreCtx) {
    let app = spawn_app(s).await;
    let before = session_with_one_event(&app).await;

    let r = app.post_raw("/sessions/call-1/complete", JSON, "").await;

    r.assert_problem(400, "malformed_json");
    assert_unchanged(&app, &before).await;
}

// ---- content types and sizes ----

pub async fn a_body_without_a_json_content_type_is_a_415(s: StoreCtx) {
    let app = spawn_app(s).await;
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
    app.get("/sessions/call-2")
        .await
        .assert_problem(404, "session_not_found");
}

pub async fn a_json_content_type_with_a_charset_is_accepted(s: StoreCtx) {
    let app = spawn_app(s).await;

    let r = app
        .post_raw(
            "/sessions",
            Some("application/json; charset=utf-8"),
            r#"{"sessionId": "call-1", "language": "en"}"#,
        )
        .await;

    assert_eq!(r.status, 201, "{}", r.text);
}

pub async fn a_body_over_max_body_bytes_is_a_413_and_changes_nothing(s: StoreCtx) {
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
    app.get("/sessions/call-2")
        .await
        .assert_problem(404, "session_not_found");
}

pub async fn a_body_under_max_body_bytes_is_accepted(s: StoreCtx) {
    let app = spawn_app_with(s, &[("MAX_BODY_BYTES", "2048")]).await;
    app.create_session("call-1").await;

    let r = app
        .post_event(
            "call-1",
            &json!({"eventId": "e-1", "type": "system", "payload": {"text": "x".repeat(1900)}}),
        )
        .await;

    assert_eq!(r.status, 201, "{}", r.text);
}

// ---- routes, methods and path parameters ----

pub async fn an_unknown_route_is_a_404_route_not_found(s: StoreCtx) {
    let app = spawn_app(s).await;
    app.create_session("call-1").await;

    for path in [
        "/",
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
}

pub async fn a_wrong_method_is_a_405_with_an_allow_header(s: StoreCtx) {
    let app = spawn_app(s).await;
    app.create_session("call-1").await;

    for (method, path, allowed) in [
        (Method::DELETE, "/sessions/x", "GET"),
        (Method::DELETE, "/sessions/call-1", "GET"),
        (Method::PUT, "/sessions", "POST"),
        (Method::GET, "/sessions", "POST"),
        (Method::GET, "/sessions/call-1/events", "POST"),
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
}

pub async fn an_invalid_session_id_in_the_path_is_a_400_naming_session_id(s: StoreCtx) {
    let app = spawn_app(s).await;
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
}

pub async fn an_invalid_event_id_in_the_path_is_a_400_naming_event_id(s: StoreCtx) {
    let app = spawn_app(s).await;
    app.create_session("call-1").await;
    let too_long = "e".repeat(129);

    for id in [too_long.as_str(), "a%20b", "e%3F1"] {
        let r = app.get(&format!("/sessions/call-1/events/{id}")).await;

        assert_invalid(&r, &["eventId"]);
    }
}

pub async fn an_invalid_path_and_an_invalid_query_or_body_are_reported_together(s: StoreCtx) {
    let app = spawn_app(s).await;
    let bad = "a%20b";

    let read = app.get(&format!("/sessions/{bad}?limit=0&order=up")).await;
    let get_event = app.get(&format!("/sessions/{bad}/events/{bad}")).await;
    let complete = app.complete(bad, Some(&json!({"status": "nope"}))).await;

    assert_invalid(&read, &["sessionId", "limit", "order"]);
    assert_invalid(&get_event, &["sessionId", "eventId"]);
    assert_invalid(&complete, &["sessionId", "status"]);
}

pub async fn a_path_segment_that_is_not_utf8_is_a_400(s: StoreCtx) {
    let app = spawn_app(s).await;

    let r = app.get("/sessions/%FF").await;

    r.assert_problem(400, "invalid_path");
}

pub async fn a_timestamp_without_t_or_space_between_date_and_time_is_a_400(s: StoreCtx) {
    let app = spawn_app(s).await;
    let before = session_with_one_event(&app).await;

    for timestamp in [
        "2025-12-21X15:30:15Z",
        "2025-12-21/15:30:15Z",
        "2025-12-21015:30:15Z",
    ] {
        let r = app
            .post_event(
                "call-1",
                &json!({"eventId": "e-2", "type": "system", "payload": {}, "timestamp": timestamp}),
            )
            .await;

        assert_invalid(&r, &["timestamp"]);
    }
    assert_unchanged(&app, &before).await;
}

crate::on_every_backend!(crate::errors =>
    a_timestamp_without_t_or_space_between_date_and_time_is_a_400,
    malformed_json_is_a_400_malformed_json,
    a_body_that_is_not_an_object_is_a_400_body_not_object,
    duplicate_json_keys_are_a_400_malformed_json,
    integers_beyond_64_signed_bits_are_a_400,
    the_largest_and_smallest_64_bit_integers_are_kept_exactly,
    a_100000_deep_json_body_is_a_400_not_a_crash,
    a_session_body_with_every_field_wrong_lists_every_problem,
    an_event_body_with_every_field_wrong_lists_every_problem,
    an_invalid_session_id_in_the_body_is_a_400_naming_session_id,
    a_language_that_is_not_a_bcp47_tag_is_a_400_naming_language,
    metadata_that_is_not_an_object_is_a_400_naming_metadata,
    a_payload_that_is_not_an_object_is_a_400_naming_payload,
    a_payload_nested_deeper_than_32_is_a_400_naming_payload,
    a_payload_nested_exactly_32_deep_is_accepted,
    keys_starting_with_a_dollar_are_a_400,
    an_event_timestamp_that_is_not_rfc3339_is_a_400_naming_timestamp,
    completing_with_an_unknown_status_is_a_400_naming_status,
    completing_with_an_unknown_field_is_a_400_naming_it,
    completing_with_a_json_content_type_and_an_empty_body_is_a_400,
    a_body_without_a_json_content_type_is_a_415,
    a_json_content_type_with_a_charset_is_accepted,
    a_body_over_max_body_bytes_is_a_413_and_changes_nothing,
    a_body_under_max_body_bytes_is_accepted,
    an_unknown_route_is_a_404_route_not_found,
    a_wrong_method_is_a_405_with_an_allow_header,
    an_invalid_session_id_in_the_path_is_a_400_naming_session_id,
    an_invalid_event_id_in_the_path_is_a_400_naming_event_id,
    an_invalid_path_and_an_invalid_query_or_body_are_reported_together,
    a_path_segment_that_is_not_utf8_is_a_400,
);
