//! The access log of the real binary: one line per request with the route template, status,
//! latency and request id, never the body.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::support::process::json_lines;
use crate::support::{Backend, ServiceStore};
use crate::{EXIT_LIMIT, SHUTDOWN_TIMEOUT, client, sqlite_service};

/// A request the test sent, and what the access log line for it must say.
struct Expected {
    request_id: String,
    method: &'static str,
    route: &'static str,
    status: u16,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_writes_one_access_line_with_method_route_status_latency_and_request_id() {
    const MARKER: &str = "SECRET-MARKER-123";
    let store = ServiceStore::new(Backend::Sqlite, "access_log");
    // The default filter, as in production.
    let mut service = sqlite_service(&store, None, SHUTDOWN_TIMEOUT).start().await;
    let http = client();
    let mut expected = Vec::new();

    async fn send(
        request: reqwest::RequestBuilder,
        expected: &mut Vec<Expected>,
        method: &'static str,
        route: &'static str,
        status: u16,
    ) -> reqwest::Response {
        let response = request.send().await.expect("request answered");
        assert_eq!(response.status().as_u16(), status, "{method} {route}");
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{method} {route}: no x-request-id in the response"))
            .to_owned();
        assert!(!request_id.is_empty());
        expected.push(Expected {
            request_id,
            method,
            route,
            status,
        });
        response
    }

    let created = send(
        http.post(service.url("/sessions"))
            .header("x-request-id", "test-req-42")
            .json(&json!({"sessionId": "log-call", "language": "en-US"})),
        &mut expected,
        "POST",
        "/sessions",
        201,
    )
    .await;
    assert_eq!(
        created.headers()["x-request-id"],
        "test-req-42",
        "the client's request id is echoed"
    );
    let events = service.url("/sessions/log-call/events");
    let posts = [
        (
            http.post(&events).json(&json!({
                "eventId": "e-1",
                "type": "user_speech",
                "payload": {"text": format!("my card number is {MARKER}")},
            })),
            201,
        ),
        // Invalid ones: the marker in a field a validation error names, and in malformed JSON.
        (
            http.post(&events)
                .json(&json!({"eventId": "e-2", "type": MARKER, "payload": {"text": MARKER}})),
            400,
        ),
        (
            http.post(&events)
                .header("content-type", "application/json")
                .body(format!(
                    r#"{{"eventId": "e-3", "payload": {{"text": "{MARKER}"#
                )),
            400,
        ),
    ];
    for (request, status) in posts {
        let route = "/sessions/{session_id}/events";
        send(request, &mut expected, "POST", route, status).await;
    }
    for (method, path, route, status) in [
        (
            "GET",
            "/sessions/no-such-call",
            "/sessions/{session_id}",
            404,
        ),
        (
            "GET",
            "/sessions/log-call?limit=5",
            "/sessions/{session_id}",
            200,
        ),
        (
            "GET",
            "/sessions/log-call/events/e-1",
            "/sessions/{session_id}/events/{event_id}",
            200,
        ),
        // Unknown routes are logged as one label, never by their concrete path.
        ("GET", "/no/such/route", "unmatched", 404),
        ("DELETE", "/sessions", "/sessions", 405),
    ] {
        let request = http.request(method.parse().expect("a method"), service.url(path));
        send(request, &mut expected, method, route, status).await;
    }
    let ids: HashSet<&str> = expected.iter().map(|e| e.request_id.as_str()).collect();
    assert_eq!(ids.len(), expected.len(), "request ids are unique");

    service.stop(EXIT_LIMIT).await;
    let stdout = service.stdout_lines();
    let logs = json_lines(&stdout);
    let served: Vec<&Value> = logs
        .iter()
        .filter(|l| l["message"] == "request served")
        .collect();
    assert_eq!(
        served.len(),
        expected.len(),
        "one access line per request; the log:\n{}",
        stdout.join("\n")
    );
    for e in &expected {
        let lines: Vec<&&Value> = served
            .iter()
            .filter(|l| l["span"]["request_id"] == e.request_id.as_str())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "one access line for request {} ({} {}); the log:\n{}",
            e.request_id,
            e.method,
            e.route,
            stdout.join("\n")
        );
        let line = lines[0];
        assert_eq!(line["span"]["name"], "request", "{line}");
        assert_eq!(line["span"]["method"], e.method, "{line}");
        assert_eq!(line["span"]["route"], e.route, "the route template: {line}");
        assert_eq!(line["status"], e.status, "{line}");
        let latency = line["latency_ms"]
            .as_f64()
            .unwrap_or_else(|| panic!("latency_ms is a number: {line}"));
        assert!(latency >= 0.0, "{line}");
        assert_eq!(line["level"], "INFO", "{line}");
    }
    assert!(
        served
            .iter()
            .any(|l| l["span"]["request_id"] == "test-req-42"),
        "the client's request id is logged"
    );
    for line in stdout.iter().chain(service.stderr_lines().iter()) {
        assert!(
            !line.contains(MARKER),
            "a log line contains request body text: {line}"
        );
    }
}
