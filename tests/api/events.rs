//! Adding and reading events, and completing sessions.

use serde_json::json;

use crate::support::app::TestApp;

fn speech(event_id: &str, text: &str) -> serde_json::Value {
    json!({"eventId": event_id, "type": "user_speech", "payload": {"text": text}})
}

fn is_server_time(t: &serde_json::Value) -> bool {
    t.as_str()
        .is_some_and(|t| t.len() == 24 && t.ends_with('Z') && t.as_bytes()[10] == b'T')
}

// ---- adding events ----

backend_test! { async fn adding_an_event_returns_201_with_location_and_the_event(app: TestApp) {
    app.create_session("call-1").await;

    let r = app
        .post_event(
            "call-1",
            &json!({"eventId": "e-1", "type": "bot_speech", "payload": {"text": "hi", "n": [1, 2.5, null, true]}}),
        )
        .await;

    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("location"), Some("/sessions/call-1/events/e-1"));
    assert_eq!(r.body["sessionId"], "call-1");
    assert_eq!(r.body["eventId"], "e-1");
    assert_eq!(r.body["seq"], 1);
    assert_eq!(r.body["type"], "bot_speech");
    assert_eq!(
        r.body["payload"],
        json!({"text": "hi", "n": [1, 2.5, null, true]})
    );
    assert!(is_server_time(&r.body["timestamp"]), "{}", r.text);
    let mut members: Vec<_> = r.body.as_object().unwrap().keys().cloned().collect();
    members.sort();
    assert_eq!(
        members,
        [
            "eventId",
            "payload",
            "seq",
            "sessionId",
            "timestamp",
            "type"
        ]
    );
}}

backend_test! { async fn the_first_event_makes_an_initiated_session_active(app: TestApp) {
    let created = app.create_session("call-1").await;
    assert_eq!(created["status"], "initiated");

    app.add_event("call-1", "e-1").await;

    let session = app.read_session("call-1", "").await;
    assert_eq!(session["status"], "active");
    assert_eq!(session["eventCount"], 1);
}}

backend_test! { async fn events_get_consecutive_seqs_and_the_session_counts_each_one(app: TestApp) {
    app.create_session("call-1").await;

    let mut seqs = Vec::new();
    for (i, kind) in ["user_speech", "bot_speech", "system"].iter().enumerate() {
        let r = app
            .post_event(
                "call-1",
                &json!({"eventId": format!("e-{i}"), "type": kind, "payload": {}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.body["type"], *kind);
        seqs.push(r.body["seq"].as_u64().unwrap());
        assert_eq!(app.event_count("call-1").await, seqs.len() as u64);
    }

    assert_eq!(seqs, [1, 2, 3]);
}}

backend_test! { async fn retrying_an_identical_event_returns_200_with_the_stored_event_and_changes_nothing(app: TestApp) {
    app.create_session("call-1").await;
    let first = app.add_event("call-1", "e-1").await;
    app.add_event("call-1", "e-2").await;

    let r = app.post_event("call-1", &speech("e-1", "e-1")).await;

    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, first, "the stored event, same seq and timestamp");
    assert_eq!(r.header("location"), None);
    assert_eq!(app.event_count("call-1").await, 2);
}}

backend_test! { async fn retrying_with_the_same_explicit_timestamp_returns_200(app: TestApp) {
    app.create_session("call-1").await;
    let body = json!({"eventId": "e-1", "type": "system", "payload": {"k": "v"},
                      "timestamp": "2025-12-21T15:30:15.123Z"});
    let first = app.post_event("call-1", &body).await;
    assert_eq!(first.status, 201, "{}", first.text);

    let retry = app.post_event("call-1", &body).await;

    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(retry.body, first.body);
    assert_eq!(app.event_count("call-1").await, 1);
}}

backend_test! { async fn retrying_with_the_same_instant_in_another_offset_returns_200(app: TestApp) {
    app.create_session("call-1").await;
    let mut body = json!({"eventId": "e-1", "type": "system", "payload": {},
                          "timestamp": "2025-12-21T15:30:15.123Z"});
    let first = app.post_event("call-1", &body).await;
    assert_eq!(first.status, 201, "{}", first.text);

    body["timestamp"] = json!("2025-12-21T17:30:15.123+02:00");
    let retry = app.post_event("call-1", &body).await;

    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(retry.body, first.body);
}}

backend_test! { async fn retrying_without_a_timestamp_an_event_stored_with_one_returns_200(app: TestApp) {
    app.create_session("call-1").await;
    let first = app
        .post_event(
            "call-1",
            &json!({"eventId": "e-1", "type": "user_speech", "payload": {"text": "x"},
                    "timestamp": "2020-01-02T03:04:05.678Z"}),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.text);

    let retry = app.post_event("call-1", &speech("e-1", "x")).await;

    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(retry.body["timestamp"], "2020-01-02T03:04:05.678Z");
    assert_eq!(retry.body, first.body);
    assert_eq!(app.event_count("call-1").await, 1);
}}

backend_test! { async fn reusing_an_event_id_with_a_different_payload_is_a_409_and_changes_nothing(app: TestApp) {
    app.create_session("call-1").await;
    let first = app.add_event("call-1", "e-1").await;

    let r = app.post_event("call-1", &speech("e-1", "other")).await;

    r.assert_problem(409, "event_id_conflict");
    let stored = app.get("/sessions/call-1/events/e-1").await;
    assert_eq!(stored.body, first);
    assert_eq!(app.event_count("call-1").await, 1);
}}

backend_test! { async fn reusing_an_event_id_with_a_different_type_is_a_409(app: TestApp) {
    app.create_session("call-1").await;
    app.add_event("call-1", "e-1").await;

    let r = app
        .post_event(
            "call-1",
            &json!({"eventId": "e-1", "type": "bot_speech", "payload": {"text": "e-1"}}),
        )
        .await;

    r.assert_problem(409, "event_id_conflict");
    assert_eq!(app.event_count("call-1").await, 1);
}}

backend_test! { async fn reusing_an_event_id_with_a_different_timestamp_is_a_409(app: TestApp) {
    app.create_session("call-1").await;
    let mut body = json!({"eventId": "e-1", "type": "user_speech", "payload": {},
                          "timestamp": "2025-12-21T15:30:15.123Z"});
    assert_eq!(app.post_event("call-1", &body).await.status, 201);

    body["timestamp"] = json!("2025-12-21T15:30:15.124Z");
    let r = app.post_event("call-1", &body).await;

    r.assert_problem(409, "event_id_conflict");
    let stored = app.get("/sessions/call-1/events/e-1").await;
    assert_eq!(stored.body["timestamp"], "2025-12-21T15:30:15.123Z");
}}

backend_test! { async fn an_explicit_timestamp_on_a_retry_of_an_event_stored_without_one_is_a_409(app: TestApp) {
    app.create_session("call-1").await;
    app.add_event("call-1", "e-1").await;

    let r = app
        .post_event(
            "call-1",
            &json!({"eventId": "e-1", "type": "user_speech", "payload": {"text": "e-1"},
                    "timestamp": "2001-01-01T00:00:00Z"}),
        )
        .await;

    r.assert_problem(409, "event_id_conflict");
}}

backend_test! { async fn the_same_event_id_in_another_session_is_a_separate_event(app: TestApp) {
    app.create_session("call-1").await;
    app.create_session("call-2").await;
    app.add_event("call-1", "e-1").await;

    let r = app.post_event("call-2", &speech("e-1", "different")).await;

    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["sessionId"], "call-2");
    assert_eq!(r.body["seq"], 1);
}}

backend_test! { async fn an_event_for_an_unknown_session_is_a_404_session_not_found(app: TestApp) {
    let r = app.post_event("nobody", &speech("e-1", "x")).await;

    r.assert_problem(404, "session_not_found");
    assert_eq!(app.get("/sessions/nobody").await.status, 404);
}}

backend_test! { async fn a_new_event_for_an_ended_session_is_a_409_session_ended(app: TestApp) {
    app.create_session("call-1").await;
    app.add_event("call-1", "e-1").await;
    assert_eq!(app.complete("call-1", None).await.status, 200);

    let r = app.post_event("call-1", &speech("e-2", "late")).await;

    r.assert_problem(409, "session_ended");
    let session = app.read_session("call-1", "").await;
    assert_eq!(session["eventCount"], 1);
    assert_eq!(session["status"], "completed");
    app.get("/sessions/call-1/events/e-2")
        .await
        .assert_problem(404, "event_not_found");
}}

backend_test! { async fn a_new_event_for_a_failed_session_is_a_409_session_ended(app: TestApp) {
    app.create_session("call-1").await;
    let ended = app
        .complete("call-1", Some(&json!({"status": "failed"})))
        .await;
    assert_eq!(ended.status, 200, "{}", ended.text);

    let r = app.post_event("call-1", &speech("e-1", "late")).await;

    r.assert_problem(409, "session_ended");
    assert_eq!(app.event_count("call-1").await, 0);
}}

backend_test! { async fn retrying_an_existing_event_after_the_session_ended_returns_200(app: TestApp) {
    app.create_session("call-1").await;
    let first = app.add_event("call-1", "e-1").await;
    assert_eq!(app.complete("call-1", None).await.status, 200);

    let r = app.post_event("call-1", &speech("e-1", "e-1")).await;

    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, first);
    assert_eq!(app.event_count("call-1").await, 1);
}}

backend_test! { async fn a_conflicting_event_after_the_session_ended_is_still_an_event_id_conflict(app: TestApp) {
    app.create_session("call-1").await;
    app.add_event("call-1", "e-1").await;
    assert_eq!(app.complete("call-1", None).await.status, 200);

    let r = app.post_event("call-1", &speech("e-1", "changed")).await;

    r.assert_problem(409, "event_id_conflict");
}}

backend_test! { async fn a_client_timestamp_is_stored_in_utc_with_milliseconds(app: TestApp) {
    app.create_session("call-1").await;

    let r = app
        .post_event(
            "call-1",
            &json!({"eventId": "e-1", "type": "user_speech", "payload": {},
                    "timestamp": "2025-12-21T17:30:15.123456+02:00"}),
        )
        .await;
    let whole_seconds = app
        .post_event(
            "call-1",
            &json!({"eventId": "e-2", "type": "user_speech", "payload": {},
                    "timestamp": "2025-12-21T15:30:15Z"}),
        )
        .await;

    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["timestamp"], "2025-12-21T15:30:15.123Z");
    assert_eq!(whole_seconds.body["timestamp"], "2025-12-21T15:30:15.000Z");
    let stored = app.get("/sessions/call-1/events/e-1").await;
    assert_eq!(stored.body["timestamp"], "2025-12-21T15:30:15.123Z");
}}

backend_test! { async fn without_a_timestamp_the_event_gets_the_server_time_in_utc(app: TestApp) {
    app.create_session("call-1").await;

    let r = app.post_event("call-1", &speech("e-1", "x")).await;

    assert_eq!(r.status, 201, "{}", r.text);
    assert!(is_server_time(&r.body["timestamp"]), "{}", r.text);
    let stored = app.get("/sessions/call-1/events/e-1").await;
    assert_eq!(stored.body["timestamp"], r.body["timestamp"]);
}}

backend_test! { async fn payloads_are_stored_and_returned_exactly(app: TestApp) {
    app.create_session("call-1").await;
    let payload = json!({
        "z": 1, "a": {"nested": [1, {"deep": "é ☃ \u{0001}"}]},
        "big": 9_223_372_036_854_775_807_i64, "small": -9_223_372_036_854_775_808_i64,
        "f": 0.1, "t": true, "n": null, "a.b": "dots", "x$": "dollar not first", "": "empty key"
    });

    let r = app
        .post_event(
            "call-1",
            &json!({"eventId": "e-1", "type": "system", "payload": payload}),
        )
        .await;

    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["payload"], payload);
    let stored = app.get("/sessions/call-1/events/e-1").await;
    assert_eq!(stored.body["payload"], payload);
    let page = app.read_session("call-1", "").await;
    assert_eq!(page["events"][0]["payload"], payload);
}}

// ---- reading one event ----

backend_test! { async fn getting_an_event_returns_it(app: TestApp) {
    app.create_session("call-1").await;
    app.add_event("call-1", "e-1").await;
    let second = app.add_event("call-1", "e-2").await;

    let r = app.get("/sessions/call-1/events/e-2").await;

    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, second);
    assert_eq!(r.body["seq"], 2);
}}

backend_test! { async fn getting_an_unknown_event_is_a_404_event_not_found(app: TestApp) {
    app.create_session("call-1").await;
    app.add_event("call-1", "e-1").await;

    let r = app.get("/sessions/call-1/events/e-9").await;

    r.assert_problem(404, "event_not_found");
}}

backend_test! { async fn getting_an_event_of_an_unknown_session_is_a_404(app: TestApp) {
    app.create_session("call-1").await;
    app.add_event("call-1", "e-1").await;

    let r = app.get("/sessions/call-2/events/e-1").await;

    // The service answers `event_not_found` whether the session or only the event is unknown.
    r.assert_problem(404, "event_not_found");
}}

// ---- completing sessions ----

backend_test! { async fn completing_without_a_body_marks_the_session_completed_with_ended_at(app: TestApp) {
    app.create_session("call-1").await;
    app.add_event("call-1", "e-1").await;

    let r = app.complete("call-1", None).await;

    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["sessionId"], "call-1");
    assert_eq!(r.body["status"], "completed");
    assert_eq!(r.body["eventCount"], 1);
    assert!(is_server_time(&r.body["endedAt"]), "{}", r.text);
    assert!(
        r.body["endedAt"].as_str() >= r.body["startedAt"].as_str(),
        "{}",
        r.text
    );
    let session = app.read_session("call-1", "").await;
    assert_eq!(session["status"], "completed");
    assert_eq!(session["endedAt"], r.body["endedAt"]);
}}

backend_test! { async fn completing_with_an_empty_object_marks_the_session_completed(app: TestApp) {
    app.create_session("call-1").await;

    let r = app.complete("call-1", Some(&json!({}))).await;

    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "completed");
}}

backend_test! { async fn completing_with_status_completed_marks_the_session_completed(app: TestApp) {
    app.create_session("call-1").await;

    let r = app
        .complete("call-1", Some(&json!({"status": "completed"})))
        .await;

    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "completed");
}}

backend_test! { async fn completing_with_status_failed_marks_the_session_failed(app: TestApp) {
    app.create_session("call-1").await;

    let r = app
        .complete("call-1", Some(&json!({"status": "failed"})))
        .await;

    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "failed");
    assert!(is_server_time(&r.body["endedAt"]), "{}", r.text);
    assert_eq!(app.read_session("call-1", "").await["status"], "failed");
}}

backend_test! { async fn completing_again_returns_200_with_the_same_ended_at(app: TestApp) {
    app.create_session("call-1").await;
    let first = app.complete("call-1", None).await;
    assert_eq!(first.status, 200, "{}", first.text);

    let again = app.complete("call-1", None).await;
    let explicit = app
        .complete("call-1", Some(&json!({"status": "completed"})))
        .await;

    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body, first.body);
    assert_eq!(explicit.status, 200, "{}", explicit.text);
    assert_eq!(explicit.body, first.body);
}}

backend_test! { async fn completing_with_the_other_status_is_a_409_and_changes_nothing(app: TestApp) {
    app.create_session("call-1").await;
    let first = app
        .complete("call-1", Some(&json!({"status": "failed"})))
        .await;
    assert_eq!(first.status, 200, "{}", first.text);

    let to_completed = app.complete("call-1", None).await;

    to_completed.assert_problem(409, "session_already_ended");
    let session = app.read_session("call-1", "").await;
    assert_eq!(session["status"], "failed");
    assert_eq!(session["endedAt"], first.body["endedAt"]);
}}

backend_test! { async fn failing_a_completed_session_is_a_409(app: TestApp) {
    app.create_session("call-1").await;
    assert_eq!(app.complete("call-1", None).await.status, 200);

    let r = app
        .complete("call-1", Some(&json!({"status": "failed"})))
        .await;

    r.assert_problem(409, "session_already_ended");
    assert_eq!(app.read_session("call-1", "").await["status"], "completed");
}}

backend_test! { async fn completing_an_unknown_session_is_a_404_session_not_found(app: TestApp) {
    let r = app.complete("nobody", None).await;

    r.assert_problem(404, "session_not_found");
}}
