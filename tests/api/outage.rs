//! MongoDB becomes unreachable mid-test and comes back: requests fail fast with 503 problem JSON,
//! /ready says 503, nothing acknowledged is lost, and the service recovers without a restart.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use crate::support::app::TestApp;
use crate::support::proxy::{ChaosProxy, first_host};
use crate::support::{drop_database, mongo_store_at, mongodb_uri};

async fn event(app: &TestApp, id: &str) -> u16 {
    app.post_json(
        "/sessions/call/events",
        &json!({"eventId": id, "type": "user_speech", "payload": {"text": id}}),
    )
    .await
    .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_mongodb_gives_fast_503s_and_the_service_recovers_by_itself() {
    // Arrange: the service reaches MongoDB only through the proxy.
    let proxy = ChaosProxy::start(first_host(&mongodb_uri())).await;
    let database = format!("outage_{}", std::process::id());
    let store = mongo_store_at(
        format!(
            "mongodb://{}/?directConnection=true&serverSelectionTimeoutMS=1000&connectTimeoutMS=1000",
            proxy.addr
        ),
        database.clone(),
    )
    .await;
    let app = crate::support::app::spawn_app(store).await;
    app.create_session("call").await;
    let mut acknowledged = HashSet::new();
    for i in 0..5 {
        let id = format!("before-{i}");
        assert_eq!(event(&app, &id).await, 201);
        acknowledged.insert(id);
    }

    // Act: the database goes away while requests keep coming.
    proxy.cut().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20)) // a hang fails the test
        .build()
        .unwrap();
    let during: Vec<_> = (0..8)
        .map(|i| {
            let (client, url) = (client.clone(), app.url("/sessions/call/events"));
            tokio::spawn(async move {
                let body =
                    json!({"eventId": format!("during-{i}"), "type": "system", "payload": {}});
                let r = client
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .expect("no dropped connection");
                let status = r.status().as_u16();
                let ct = r.headers().get("content-type").cloned();
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                (status, ct, body)
            })
        })
        .collect();
    for task in during {
        let (status, ct, body) = task.await.unwrap();
        assert_eq!(status, 503, "{body}");
        assert_eq!(ct.unwrap(), "application/problem+json");
        assert_eq!(body["code"], "storage_unavailable");
    }
    let r = app.get("/sessions/call").await;
    r.assert_problem(503, "storage_unavailable");
    let r = app.get("/ready").await;
    r.assert_problem(503, "storage_unavailable");
    assert_eq!(
        app.get("/health").await.status,
        200,
        "the process itself is fine"
    );

    // The database comes back: the service recovers without a restart.
    proxy.restore();
    let mut ready = false;
    for _ in 0..150 {
        if app.get("/ready").await.status == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "/ready did not recover within 30 s");

    // Assert: everything acknowledged is there exactly once; a 503'd write left nothing half-done,
    // and retrying it now stores it once.
    for i in 0..8 {
        let id = format!("during-{i}");
        let status = app
            .post_json(
                "/sessions/call/events",
                &json!({"eventId": id, "type": "system", "payload": {}}),
            )
            .await
            .status;
        assert!(status == 201 || status == 200, "retry of {id} got {status}");
        acknowledged.insert(id);
    }
    let page = app.get("/sessions/call?limit=100").await;
    assert_eq!(page.status, 200, "{}", page.text);
    let ids: Vec<&str> = page.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventId"].as_str().unwrap())
        .collect();
    let seqs: Vec<u64> = page.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids.iter().copied().collect::<HashSet<_>>(),
        acknowledged.iter().map(String::as_str).collect()
    );
    assert_eq!(ids.len(), acknowledged.len(), "no event stored twice");
    assert_eq!(page.body["eventCount"], acknowledged.len());
    assert_eq!(seqs, (1..=acknowledged.len() as u64).collect::<Vec<_>>());

    drop_database(&mongodb_uri(), &database).await;
}
