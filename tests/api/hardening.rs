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
        "/console",
        "/console/app.js",
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

/// Sends GET `path` `n` times with `key` (if any): how many got 200 and the first 429.
async fn burst(
    app: &crate::support::app::TestApp,
    path: &str,
    key: Option<&str>,
    n: usize,
) -> (usize, Option<reqwest::Response>) {
    let mut ok = 0;
    let mut limited = None;
    for _ in 0..n {
        let mut request = app.client.get(app.url(path));
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let response = request.send().await.unwrap();
        match response.status().as_u16() {
            200 => ok += 1,
            429 => {
                if limited.is_none() {
                    limited = Some(response);
                }
            }
            other => panic!("GET {path}: unexpected {other}"),
        }
    }
    (ok, limited)
}

async fn assert_rate_limited(response: reqwest::Response) {
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is whole seconds");
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["status"], 429);
}

#[tokio::test]
async fn rate_limits_count_each_api_key_apart_and_never_limit_health_or_ready() {
    let store = TestStore::open(Backend::Sqlite).await;
    let keys = format!("{WRITE_KEY},read:{READ_KEY}");
    let app = crate::support::app::spawn_app_with(
        store.ctx(),
        &[
            ("API_KEYS", &keys),
            ("RATE_LIMIT_PER_SECOND", "1"),
            ("RATE_LIMIT_BURST", "3"),
        ],
    )
    .await;
    // 20 requests take far less than the 17 s it would take to earn 17 more.
    let started = std::time::Instant::now();
    let (ok, limited) = burst(&app, "/sessions", Some(WRITE_KEY), 20).await;
    let earned = started.elapsed().as_secs() as usize + 1;
    assert!(
        (3..=3 + earned).contains(&ok),
        "{ok} of 20 passed a burst of 3"
    );
    assert_rate_limited(limited.expect("the key was limited")).await;
    // Another key has its own bucket, on every limited route.
    let (ok, _) = burst(&app, "/sessions", Some(READ_KEY), 2).await;
    assert_eq!(ok, 2, "the other key is not limited by the first");
    // The probes are never limited, whoever asks.
    for path in ["/health", "/ready"] {
        let (ok, limited) = burst(&app, path, None, 30).await;
        assert_eq!(ok, 30, "{path} was limited");
        assert!(limited.is_none());
    }
}

#[tokio::test]
async fn without_api_keys_rate_limits_count_per_client_ip() {
    let store = TestStore::open(Backend::Sqlite).await;
    let app = crate::support::app::spawn_app_with(
        store.ctx(),
        &[("RATE_LIMIT_PER_SECOND", "1"), ("RATE_LIMIT_BURST", "2")],
    )
    .await;
    let (ok, limited) = burst(&app, "/metrics", None, 20).await;
    assert!((2..20).contains(&ok), "{ok} of 20 passed a burst of 2");
    assert_rate_limited(limited.expect("the address was limited")).await;
    // The same address is limited on the other routes too: it is one client.
    let (_, limited) = burst(&app, "/sessions", None, 5).await;
    assert!(limited.is_some(), "one bucket per client, not per route");
    let (ok, _) = burst(&app, "/ready", None, 10).await;
    assert_eq!(ok, 10);
}

#[tokio::test]
async fn without_rate_limits_nothing_is_limited() {
    let store = TestStore::open(Backend::Sqlite).await;
    let app = spawn_app(store.ctx()).await;
    let (ok, limited) = burst(&app, "/sessions", None, 50).await;
    assert_eq!(ok, 50);
    assert!(limited.is_none());
}
