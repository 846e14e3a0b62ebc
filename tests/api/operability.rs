//! The OpenAPI description matches the service, request ids travel end to end, and slow requests
//! are cut off with problem JSON.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::StoreCtx;
use crate::support::app::{TestApp, spawn_app, spawn_app_with};

fn committed_openapi() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("openapi.json is in the repository");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

fn schema_properties(doc: &Value, name: &str) -> BTreeSet<String> {
    keys(&doc["components"]["schemas"][name]["properties"])
}

backend_test! { async fn the_served_openapi_document_is_the_one_in_the_repository(app: TestApp) {
    let r = app.get("/openapi.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        committed_openapi(),
        "openapi.json is stale: regenerate it with `cargo run -- --openapi > openapi.json`"
    );
    assert_eq!(r.body["openapi"], "3.1.0");
}}

backend_test! { async fn openapi_describes_every_route_with_its_statuses_and_problem_types(s: StoreCtx) {
    let _app = spawn_app(s).await;
    let doc = committed_openapi();
    // 401 appears on the routes API keys protect (when keys are configured), 403 on the writes
    // a key's scope may not allow; 405 on every one (a method the path does not serve); 410 on
    // every route of one session.
    let expected: &[(&str, &str, &[&str])] = &[
        (
            "/sessions",
            "post",
            &[
                "200", "201", "400", "401", "403", "405", "409", "413", "415", "503",
            ],
        ),
        ("/sessions", "get", &["200", "400", "401", "405", "503"]),
        (
            "/sessions/{sessionId}",
            "get",
            &["200", "400", "401", "404", "405", "410", "503"],
        ),
        (
            "/sessions/{sessionId}",
            "delete",
            &["204", "400", "401", "403", "404", "405", "503"],
        ),
        (
            "/sessions/{sessionId}/events",
            "post",
            &[
                "200", "201", "400", "401", "403", "404", "405", "409", "410", "412", "413",
                "415", "503",
            ],
        ),
        (
            "/sessions/{sessionId}/events:batch",
            "post",
            &[
                "200", "201", "400", "401", "403", "404", "405", "409", "410", "412", "413",
                "415", "503",
            ],
        ),
        (
            "/sessions/{sessionId}/events",
            "get",
            &["200", "400", "401", "404", "405", "410", "503"],
        ),
        (
            "/sessions/{sessionId}/events/{eventId}",
            "get",
            &["200", "400", "401", "404", "405", "410", "503"],
        ),
        (
            "/sessions/{sessionId}/complete",
            "post",
            &[
                "200", "400", "401", "403", "404", "405", "409", "410", "413", "415", "503",
            ],
        ),
        (
            "/sessions/{sessionId}",
            "patch",
            &[
                "200", "400", "401", "403", "404", "405", "410", "412", "413", "415", "503",
            ],
        ),
        (
            "/changes",
            "get",
            &["200", "400", "401", "405", "410", "503"],
        ),
        ("/search", "get", &["200", "400", "401", "405", "503"]),
        ("/stats", "get", &["200", "400", "401", "405", "503"]),
        ("/webhooks", "get", &["200", "400", "401", "403", "405", "503"]),
        (
            "/webhooks",
            "post",
            &[
                "201", "400", "401", "403", "405", "409", "413", "415", "503",
            ],
        ),
        (
            "/webhooks/{id}",
            "get",
            &["200", "400", "401", "403", "404", "405", "503"],
        ),
        (
            "/webhooks/{id}",
            "delete",
            &["204", "401", "403", "404", "405", "503"],
        ),
        (
            "/webhooks/{id}",
            "patch",
            &[
                "200", "400", "401", "403", "404", "405", "409", "413", "415", "503",
            ],
        ),
        (
            "/webhooks/{id}/deliveries",
            "get",
            &["200", "400", "401", "403", "404", "405", "503"],
        ),
        (
            "/webhooks/{id}/recover",
            "post",
            &[
                "202", "400", "401", "403", "404", "405", "409", "413", "415", "503",
            ],
        ),
        (
            "/webhooks/{id}/rotate-secret",
            "post",
            &["200", "401", "403", "404", "405", "409", "503"],
        ),
        (
            "/webhooks/{id}/secret",
            "get",
            &["200", "400", "401", "403", "404", "405", "503"],
        ),
        (
            "/webhooks/{id}/test",
            "post",
            &["202", "401", "403", "404", "405", "409", "503"],
        ),
        ("/health", "get", &["200", "405"]),
        ("/ready", "get", &["200", "405", "503"]),
        ("/metrics", "get", &["200", "401", "405"]),
        ("/openapi.json", "get", &["200", "405"]),
    ];
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| keys(item).len())
        .sum();
    assert_eq!(operations, expected.len(), "every operation, and only those");
    for (path, method, statuses) in expected {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is described");
        let got: BTreeSet<String> = keys(&op["responses"]);
        let mut want: BTreeSet<String> = statuses.iter().map(|s| s.to_string()).collect();
        // 429 (rate limits) on every route but the probes.
        if !matches!(*path, "/health" | "/ready") {
            want.insert("429".into());
        }
        assert_eq!(got, want, "{method} {path}");
        for (status, response) in op["responses"].as_object().unwrap() {
            if status.starts_with('4') || status.starts_with('5') {
                assert!(
                    response["content"]["application/problem+json"].is_object(),
                    "{method} {path} {status} is problem JSON"
                );
            }
        }
    }
    let params: BTreeSet<String> = doc["paths"]["/sessions/{sessionId}"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        params,
        ["after", "limit", "order", "page", "sessionId"]
            .map(String::from)
            .into()
    );
}}

backend_test! { async fn response_bodies_have_exactly_the_documented_fields(app: TestApp) {
    let doc = committed_openapi();
    let session = app.create_session("call-1").await;
    assert_eq!(keys(&session), schema_properties(&doc, "Session"));
    let event = app.add_event("call-1", "e-1").await;
    assert_eq!(keys(&event), schema_properties(&doc, "Event"));
    let page = app.get("/sessions/call-1").await.body;
    let mut page_fields = schema_properties(&doc, "Session");
    page_fields.extend(["events".to_owned(), "pagination".to_owned()]);
    assert_eq!(keys(&page), page_fields);
    assert_eq!(
        keys(&page["pagination"]),
        schema_properties(&doc, "Pagination")
    );
    let problem = app.get("/sessions/nobody").await.body;
    let documented = schema_properties(&doc, "Problem");
    assert!(keys(&problem).is_subset(&documented), "{problem}");
    let invalid = app.post_json("/sessions", &json!({})).await.body;
    assert!(keys(&invalid).is_subset(&documented), "{invalid}");
    let violation = &invalid["errors"][0];
    assert_eq!(keys(violation), schema_properties(&doc, "FieldViolation"));
}}

backend_test! { async fn a_client_request_id_is_echoed_and_named_in_problem_json(app: TestApp) {
    let r = app
        .get_with_header("/sessions/nobody", "x-request-id", "trace-abc-123")
        .await;
    assert_eq!(r.headers()["x-request-id"], "trace-abc-123");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["requestId"], "trace-abc-123");
    assert_eq!(body["code"], "session_not_found");
}}

backend_test! { async fn a_request_id_is_made_when_the_client_sends_none_or_an_unusable_one(app: TestApp) {
    let plain = app.get("/health").await;
    let made = plain
        .header("x-request-id")
        .expect("a request id")
        .to_owned();
    assert_eq!(made.len(), 36, "a UUID: {made}");
    let other = app.get("/health").await;
    assert_ne!(
        other.header("x-request-id"),
        Some(made.as_str()),
        "ids are unique"
    );

    let too_long = "x".repeat(200);
    let r = app
        .get_with_header("/health", "x-request-id", &too_long)
        .await;
    let replaced = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(replaced, too_long);
    assert_eq!(replaced.len(), 36);
}}

backend_test! { async fn a_request_slower_than_the_timeout_gets_a_503_problem(s: StoreCtx) {
    // The create runs under the same limit: on the MongoDB test server, under CI's load, a create
    // once took longer than 300 ms. 2 s leaves it room; the stalled body below takes 6 s.
    let app = spawn_app_with(s, &[("REQUEST_TIMEOUT_MS", "2000")]).await;
    app.create_session("call-1").await;
    // A body that starts, then stalls longer than the timeout.
    let chunks = futures_util::stream::unfold(0, |step| async move {
        match step {
            0 => Some((
                Ok::<_, std::io::Error>(b"{\"eventId\": \"slow\", ".to_vec()),
                1,
            )),
            1 => {
                tokio::time::sleep(Duration::from_secs(6)).await;
                Some((Ok(b"\"type\": \"system\", \"payload\": {}}".to_vec()), 2))
            }
            _ => None,
        }
    });
    let r = app
        .client
        .post(app.url("/sessions/call-1/events"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("an answer, not a dropped connection");
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "request_timeout");
    assert_eq!(
        app.get("/sessions/call-1").await.body["eventCount"],
        0,
        "nothing stored"
    );
}}

/// MongoDB only (the embedded store sends no commands): `mongodb_commands_total{command}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mongodb_the_commands_sent_are_counted_by_name_in_metrics() {
    let store = crate::support::TestStore::open(crate::support::Backend::Mongo).await;
    let app = spawn_app(store.ctx()).await;
    app.create_session("call-1").await;
    app.add_event("call-1", "e1").await;
    let metrics = app.get("/metrics").await.text;
    let sent = |command: &str| {
        let prefix = format!("mongodb_commands_total{{command=\"{command}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|n| n.trim().parse::<f64>().ok())
    };
    assert!(sent("findAndModify").is_some_and(|n| n >= 2.0), "{metrics}");
    assert!(
        sent("commitTransaction").is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
}
