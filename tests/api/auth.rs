//! Optional API keys and CORS. Authentication is the same on every backend, so these run on SQLite.

use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use serde_json::json;

use crate::support::app::{TestApp, spawn_app_with};
use crate::support::{Backend, TestStore};

const KEY: &str = "test-key-0123456789abcdef";
const OTHER_KEY: &str = "second-key-0123456789abcdef";

async fn app_with(vars: &[(&str, &str)]) -> (TestApp, TestStore) {
    let store = TestStore::open(Backend::Sqlite).await;
    let app = spawn_app_with(store.ctx(), vars).await;
    (app, store)
}

async fn status(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(key) = key {
        request = request.header(AUTHORIZATION, format!("Bearer {key}"));
    }
    if path == "/sessions" {
        request = request.json(&json!({"sessionId": "call-1", "language": "en"}));
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn with_api_keys_set_session_routes_need_a_valid_bearer_key() {
    let keys = format!("{KEY},{OTHER_KEY}");
    let (app, _store) = app_with(&[("API_KEYS", &keys)]).await;
    for key in [None, Some("wrong-key-0123456789abcdef"), Some("")] {
        let r = status(&app, reqwest::Method::POST, "/sessions", key).await;
        assert_eq!(r.status(), 401, "key {key:?}");
        assert!(
            r.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "unauthorized");
    }
    let r = app.get("/sessions/call-1").await;
    assert_eq!(
        r.status, 401,
        "nothing was created by the refused requests either"
    );

    assert_eq!(
        status(&app, reqwest::Method::POST, "/sessions", Some(KEY))
            .await
            .status(),
        201
    );
    assert_eq!(
        status(
            &app,
            reqwest::Method::GET,
            "/sessions/call-1",
            Some(OTHER_KEY)
        )
        .await
        .status(),
        200
    );
    // The scheme's name in any case (RFC 9110); another scheme is no key.
    for (value, expected) in [
        (format!("bearer {KEY}"), 200),
        (format!("BEARER {KEY}"), 200),
        (format!("Basic {KEY}"), 401),
        (KEY.to_owned(), 401),
    ] {
        let r = app
            .client
            .get(app.url("/sessions/call-1"))
            .header(AUTHORIZATION, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), expected, "{value}");
    }
}

#[tokio::test]
async fn health_and_ready_stay_open_and_metrics_follow_its_setting() {
    let (app, _store) = app_with(&[("API_KEYS", KEY)]).await;
    assert_eq!(app.get("/health").await.status, 200);
    assert_eq!(app.get("/ready").await.status, 200);
    assert_eq!(
        app.get("/metrics").await.status,
        401,
        "metrics need a key by default"
    );
    assert_eq!(
        status(&app, reqwest::Method::GET, "/metrics", Some(KEY))
            .await
            .status(),
        200
    );

    let (open, _store) = app_with(&[("API_KEYS", KEY), ("METRICS_REQUIRE_KEY", "false")]).await;
    assert_eq!(open.get("/metrics").await.status, 200);
    assert_eq!(open.get("/sessions/x").await.status, 401);
}

#[tokio::test]
async fn without_api_keys_everything_is_open() {
    let (app, _store) = app_with(&[]).await;
    assert_eq!(
        status(&app, reqwest::Method::POST, "/sessions", None)
            .await
            .status(),
        201
    );
    assert_eq!(app.get("/metrics").await.status, 200);
}

#[tokio::test]
async fn cors_headers_appear_only_for_configured_origins() {
    let (plain, _s1) = app_with(&[]).await;
    let r = plain
        .get_with_header("/health", "origin", "https://app.example.com")
        .await;
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "no CORS unless configured"
    );

    let (app, _s2) = app_with(&[("CORS_ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/sessions"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,authorization",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    // Every method and header the API takes: a metadata PATCH with If-Match, an erasure, a
    // conditional append.
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/sessions/call-1"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "PATCH")
        .header(
            "access-control-request-headers",
            "content-type,authorization,if-match,expected-seq",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let listed = |name: &str| {
        preflight.headers()[name]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
    };
    for method in ["patch", "delete", "post", "get"] {
        assert!(
            listed("access-control-allow-methods").contains(method),
            "{method}"
        );
    }
    for header in ["if-match", "expected-seq", "authorization", "last-event-id"] {
        assert!(
            listed("access-control-allow-headers").contains(header),
            "{header}"
        );
    }
    // What a browser script may read of an answer: its version and when to retry.
    let created = app
        .client
        .post(app.url("/sessions"))
        .header("origin", "https://app.example.com")
        .json(&json!({"sessionId": "call-1", "language": "en"}))
        .send()
        .await
        .unwrap();
    let exposed = created.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for header in ["etag", "retry-after", "location"] {
        assert!(exposed.contains(header), "{header} in {exposed}");
    }
    let other = app
        .get_with_header("/health", "origin", "https://evil.example.net")
        .await;
    assert!(other.headers().get("access-control-allow-origin").is_none());
}
