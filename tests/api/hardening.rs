//! Hardening: security headers on every response, scoped API keys, rate limits.

use crate::support::app::spawn_app;
use crate::support::{Backend, TestStore};

#[tokio::test]
async fn every_response_says_nosniff_and_no_store() {
    let store = TestStore::open(Backend::Sqlite).await;
    let app = spawn_app(store.ctx()).await;
    app.create_session("hdr-1").await;
    for path in [
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
        "/sessions",
        "/sessions/hdr-1",
        "/sessions/hdr-1/events",
        "/sessions/missing",
        "/no/such/route",
    ] {
        let r = app.get(path).await;
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path} ({})",
            r.status
        );
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
    }
}

const READ_KEY: &str = "reader-key-0123456789abcdef";
const WRITE_KEY: &str = "writer-key-0123456789abcdef";
const PLAIN_KEY: &str = "plain-key-0123456789abcdef";
const ADMIN_KEY: &str = "admin-key-0123456789abcdef";

/// One request of every route class, with `key`: the status it got and the problem `code`.
async fn send_with(
    app: &crate::support::app::TestApp,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Option<serde_json::Value>,
    accept: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut request = app
        .client
        .request(method, app.url(path))
        .header("authorization", format!("Bearer {key}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    (status, body)
}

#[tokio::test]
async fn key_scopes_allow_reads_writes_and_erasure_step_by_step() {
    use reqwest::Method;
    use serde_json::json;
    let store = TestStore::open(Backend::Sqlite).await;
    let keys = format!("read:{READ_KEY},write:{WRITE_KEY},{PLAIN_KEY},admin:{ADMIN_KEY}");
    let app = crate::support::app::spawn_app_with(store.ctx(), &[("API_KEYS", &keys)]).await;

    // Writes: a read key is refused with 403; write (explicit or by default) and admin pass.
    let (status, body) = send_with(
        &app,
        Method::POST,
        "/sessions",
        READ_KEY,
        Some(json!({"sessionId": "scoped", "language": "en"})),
        None,
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    for (n, key) in [WRITE_KEY, PLAIN_KEY, ADMIN_KEY].into_iter().enumerate() {
        let id = format!("scoped-{n}");
        let (status, _) = send_with(
            &app,
            Method::POST,
            "/sessions",
            key,
            Some(json!({"sessionId": id, "language": "en"})),
            None,
        )
        .await;
        assert_eq!(status, 201, "create with key {n}");
        let event = json!({"eventId": "e1", "type": "user_speech", "payload": {}});
        let path = format!("/sessions/{id}/events");
        let (status, body) = send_with(
            &app,
            Method::POST,
            &path,
            READ_KEY,
            Some(event.clone()),
            None,
        )
        .await;
        assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
        let (status, body) = send_with(&app, Method::POST, &path, key, Some(event), None).await;
        assert_eq!(status, 201, "append with key {n}: {body}");
        let path = format!("/sessions/{id}/complete");
        let (status, _) = send_with(&app, Method::POST, &path, READ_KEY, None, None).await;
        assert_eq!(status, 403);
        let (status, body) = send_with(&app, Method::POST, &path, key, None, None).await;
        assert!(
            status == 200 || status == 201,
            "complete with key {n}: {body}"
        );
    }

    // Reads: every key, on every GET, including the NDJSON export and /metrics.
    for key in [READ_KEY, WRITE_KEY, PLAIN_KEY, ADMIN_KEY] {
        for path in [
            "/sessions",
            "/sessions/scoped-0",
            "/sessions/scoped-0/events",
            "/sessions/scoped-0/events/e1",
            "/metrics",
        ] {
            let (status, body) = send_with(&app, Method::GET, path, key, None, None).await;
            assert_eq!(status, 200, "GET {path}: {body}");
        }
        let (status, _) = send_with(
            &app,
            Method::GET,
            "/sessions/scoped-0/events",
            key,
            None,
            Some("application/x-ndjson"),
        )
        .await;
        assert_eq!(status, 200, "the export");
    }

    // Erasure: admin only.
    for key in [READ_KEY, WRITE_KEY, PLAIN_KEY] {
        let (status, body) =
            send_with(&app, Method::DELETE, "/sessions/scoped-0", key, None, None).await;
        assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
        assert_eq!(body["status"], 403);
    }
    let (status, body) = send_with(
        &app,
        Method::DELETE,
        "/sessions/scoped-0",
        ADMIN_KEY,
        None,
        None,
    )
    .await;
    assert!(
        status == 200 || status == 204,
        "admin erases: {status} {body}"
    );

    // A wrong key or none stays 401, whatever the route.
    let (status, body) = send_with(
        &app,
        Method::DELETE,
        "/sessions/scoped-1",
        "wrong-key-0123456789abcdef",
        None,
        None,
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    assert_eq!(app.get("/sessions").await.status, 401);
}
