//! Hostile input that fuzzers tend to miss: NUL bytes, encoded separators in path ids, invalid
//! UTF-8, huge query strings, too many keys, and many idle connections. The service answers each
//! with a 4xx (never a 5xx, a hang or a dropped connection) and stores nothing.

use std::time::Duration;

use crate::support::StoreCtx;
use crate::support::app::TestApp;
use crate::support::raw_http::{RawConnection, post_head};
use serde_json::{Value, json};

const JSON: Option<&str> = Some("application/json");

backend_test! { async fn nul_in_ids_and_keys_is_refused(app: TestApp) {
    app.create_session("call-1").await;
    let r = app
        .post_json(
            "/sessions",
            &json!({"sessionId": "a\u{0}b", "language": "en"}),
        )
        .await;
    r.assert_problem(400, "validation_failed");
    let r = app
        .post_json(
            "/sessions/call-1/events",
            &json!({"eventId": "e\u{0}1", "type": "system", "payload": {}}),
        )
        .await;
    r.assert_problem(400, "validation_failed");
    let r = app
        .post_json(
            "/sessions/call-1/events",
            &json!({"eventId": "e1", "type": "system", "payload": {"a\u{0}b": 1}}),
        )
        .await;
    r.assert_problem(400, "validation_failed");
    assert_eq!(r.error_fields(), ["payload"]);
    let r = app.get("/sessions/a%00b").await;
    r.assert_problem(400, "validation_failed");
    assert_eq!(app.event_count("call-1").await, 0);
}}

backend_test! { async fn encoded_slashes_and_dots_in_path_ids_never_reach_another_resource(app: TestApp) {
    app.create_session("call-1").await;
    app.add_event("call-1", "e-1").await;
    for path in [
        "/sessions/call-1%2Fevents%2Fe-1",
        "/sessions/..%2Fcall-1",
        "/sessions/%2E%2E",
        "/sessions/call-1%2F..%2Fcall-1",
        "/sessions/call-1/events/..%2F..%2Fcall-1",
        "/sessions/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    ] {
        // Sent as written: a URL client would resolve `%2E%2E` as a path step itself, so the
        // service would never see what this test is about.
        let mut connection = RawConnection::connect(&app.base).await;
        connection
            .send(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
            .await;
        assert!(connection.read_to_end_within(Duration::from_secs(10)).await, "{path}: no answer");
        let text = connection.text();
        let head = text.split("\r\n\r\n").next().unwrap_or_default().to_ascii_lowercase();
        assert!(
            head.starts_with("http/1.1 400") || head.starts_with("http/1.1 404"),
            "{path} gave: {text}"
        );
        assert!(head.contains("content-type: application/problem+json"), "{path}: {text}");
    }
    // `.` and `..` alone would be resolved as path steps by URL clients: they are not ids.
    for id in [".", ".."] {
        let r = app
            .post_json("/sessions", &json!({"sessionId": id, "language": "en"}))
            .await;
        r.assert_problem(400, "validation_failed");
    }
}}

backend_test! { async fn invalid_utf8_in_a_body_is_a_400(app: TestApp) {
    app.create_session("call-1").await;
    let mut body = br#"{"eventId": "e1", "type": "system", "payload": {"text": ""#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    body.extend_from_slice(br#""}}"#);
    let r = app.post_raw("/sessions/call-1/events", JSON, body).await;
    r.assert_problem(400, "malformed_json");
    assert_eq!(app.event_count("call-1").await, 0);
}}

backend_test! { async fn a_huge_query_string_is_refused_cleanly(app: TestApp) {
    app.create_session("call-1").await;
    let long = "x".repeat(60_000);
    let r = app.get(&format!("/sessions/call-1?after={long}")).await;
    assert!((400..500).contains(&r.status), "{}", r.status);
    let many: String = (0..5_000).map(|i| format!("p{i}=1&")).collect();
    let r = app.get(&format!("/sessions/call-1?{many}")).await;
    r.assert_problem(400, "validation_failed");
}}

backend_test! { async fn metadata_with_too_many_keys_is_refused(app: TestApp) {
    let metadata: serde_json::Map<String, Value> =
        (0..1_001).map(|i| (format!("k{i}"), json!(i))).collect();
    let r = app
        .post_json(
            "/sessions",
            &json!({"sessionId": "call-1", "language": "en", "metadata": metadata}),
        )
        .await;
    r.assert_problem(400, "validation_failed");
    assert_eq!(r.error_fields(), ["metadata"]);
    app.assert_no_session("call-1").await;
}}

backend_test! { async fn a_half_sent_body_is_cut_off_by_the_request_timeout(s: StoreCtx) {
    let app = crate::support::app::spawn_app_with(s, &[("REQUEST_TIMEOUT_MS", "500")]).await;
    app.create_session("call-1").await;
    let mut connection = RawConnection::connect(&app.base).await;
    let body = r#"{"eventId": "e1", "type": "system", "payload": {}}"#;
    let head = post_head("/sessions/call-1/events", body.len(), "");
    connection.send(head.as_bytes()).await;
    connection.send(&body.as_bytes()[..10]).await;
    // Never send the rest: the service must answer anyway, within a bounded time.
    let read = connection.read_to_end_within(Duration::from_secs(20)).await;
    let text = connection.text();
    assert!(read, "the service kept a half-sent request open");
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert_eq!(app.event_count("call-1").await, 0);
}}

backend_test! { async fn many_idle_connections_do_not_stop_the_service_from_answering(app: TestApp) {
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(RawConnection::connect(&addr).await);
    }
    // Half of them start a request and stop mid-headers.
    for stream in idle.iter_mut().step_by(2) {
        stream.send(b"GET /health HTTP/1.1\r\nhost: x\r\n").await;
    }
    app.create_session("call-1").await;
    app.add_event("call-1", "e-1").await;
    assert_eq!(app.get("/health").await.status, 200);
    assert_eq!(app.event_count("call-1").await, 1);
    drop(idle);
}}

/// A client that asks for a large answer and takes none of it would hold its connection (and a
/// place under `MAX_CONNECTIONS`) for ever: once the socket has refused the answer's bytes for
/// the idle timeout, the connection is dropped, and the answer stops short. The same for a live
/// stream whose client stops reading while it has events to send.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_takes_none_of_its_answer_is_dropped_after_the_idle_timeout() {
    crate::support::run_with_store(crate::support::Backend::Sqlite, |store| async {
        let s = <StoreCtx as crate::support::Fixture>::make(store).await;
        let app = crate::support::app::spawn_app_with(
            s,
            &[
                ("HEADER_READ_TIMEOUT_MS", "1000"),
                ("KEEPALIVE_TIMEOUT_MS", "1000"),
            ],
        )
        .await;
        app.create_session("big").await;
        let mut live = RawConnection::connect(&app.base).await;
        live.send(
            b"GET /sessions/big/events HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n",
        )
        .await;
        live.read_until(Duration::from_secs(10), "live stream's head", |b| {
            String::from_utf8_lossy(b).contains("caught-up")
        })
        .await;
        let text = "x".repeat(900_000);
        for i in 0..16 {
            let body =
                json!({"eventId": format!("e{i}"), "type": "system", "payload": {"text": text}});
            assert_eq!(app.post_event("big", &body).await.status, 201);
        }
        // ~14 MB of answer, more than the socket buffers hold: the service's writes stall.
        let mut stalled = RawConnection::connect(&app.base).await;
        stalled
            .send(b"GET /sessions/big?limit=100 HTTP/1.1\r\nhost: x\r\n\r\n")
            .await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        // The service dropped it: what the kernel had buffered arrives, then the end.
        assert!(
            stalled.read_to_end_within(Duration::from_secs(20)).await,
            "the connection is still open"
        );
        assert!(
            stalled.received.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&stalled.received[..stalled.received.len().min(200)])
        );
        assert!(
            !crate::support::raw_http::complete_response(&stalled.received),
            "the whole answer was sent ({} bytes): the connection was not dropped",
            stalled.received.len()
        );
        assert!(
            live.read_to_end_within(Duration::from_secs(20)).await,
            "the live stream's connection is still open"
        );
        // A client that reads gets the whole of the same answer.
        let page = app.get("/sessions/big?limit=100").await;
        assert_eq!(page.status, 200);
    })
    .await;
}
