//! `/metrics` moves with what the service does. One test in its own binary, so no other test's
//! requests share the process-wide recorder and every count can be exact.

#[path = "support/mod.rs"]
mod support;

use serde_json::json;
use support::app::spawn_app;
use support::{Backend, TestStore};

/// The sum of every series of `name` whose labels include all of `labels`.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric_name, label_text) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let wanted = labels
                .iter()
                .all(|(k, v)| label_text.split(',').any(|l| l == format!("{k}=\"{v}\"")));
            (metric_name == name && wanted).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_events_replays_conflicts_sessions_and_storage_calls() {
    let store = TestStore::open(Backend::Sqlite).await;
    let app = spawn_app(store.ctx()).await;
    let (base, client) = (app.base.clone(), app.client.clone());
    let scrape = || async {
        let r = client.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        r.text().await.unwrap()
    };
    let post = |path: &'static str, body: serde_json::Value| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            client
                .post(format!("{base}{path}"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    let before = scrape().await;
    let event = json!({"eventId": "e1", "type": "system", "payload": {"n": 1}});
    for (path, body, status) in [
        (
            "/sessions",
            json!({"sessionId": "m1", "language": "en"}),
            201,
        ),
        (
            "/sessions",
            json!({"sessionId": "m1", "language": "en"}),
            200,
        ),
        ("/sessions/m1/events", event.clone(), 201),
        (
            "/sessions/m1/events",
            json!({"eventId": "e2", "type": "system", "payload": {}}),
            201,
        ),
        ("/sessions/m1/events", event, 200),
        (
            "/sessions/m1/events",
            json!({"eventId": "e1", "type": "system", "payload": {"n": 2}}),
            409,
        ),
        ("/sessions/m1/complete", json!({"status": "failed"}), 200),
        ("/sessions/m1/complete", json!({"status": "failed"}), 200),
        (
            "/sessions/m1/events",
            json!({"eventId": "e3", "type": "system", "payload": {}}),
            409,
        ),
    ] {
        assert_eq!(post(path, body.clone()).await, status, "POST {path} {body}");
    }
    let after = scrape().await;

    let delta = |name: &str, labels: &[(&str, &str)]| {
        metric(&after, name, labels) - metric(&before, name, labels)
    };
    assert_eq!(delta("sessions_created_total", &[]), 1.0);
    assert_eq!(delta("events_stored_total", &[]), 2.0);
    assert_eq!(delta("event_replays_total", &[]), 1.0);
    assert_eq!(
        delta("event_conflicts_total", &[("reason", "event_id_conflict")]),
        1.0
    );
    assert_eq!(
        delta("event_conflicts_total", &[("reason", "session_ended")]),
        1.0
    );
    assert_eq!(
        delta("sessions_ended_total", &[("status", "failed")]),
        1.0,
        "a repeated end counts once"
    );
    let route = [
        ("route", "/sessions/{session_id}/events"),
        ("method", "POST"),
    ];
    assert_eq!(
        delta(
            "http_requests_total",
            &[route[0], route[1], ("status", "201")]
        ),
        2.0
    );
    assert_eq!(
        delta(
            "http_requests_total",
            &[route[0], route[1], ("status", "409")]
        ),
        2.0
    );
    assert_eq!(
        delta(
            "http_request_duration_seconds_count",
            &[route[0], ("status", "200")]
        ),
        1.0,
        "latency is recorded per route template and status"
    );
    assert_eq!(
        delta(
            "storage_operation_duration_seconds_count",
            &[("backend", "sqlite"), ("operation", "append_event")]
        ),
        5.0
    );
    assert!(delta("sqlite_write_batch_size_count", &[]) >= 1.0);
    assert!(
        after.contains("sqlite_write_batch_size_bucket"),
        "batch sizes are a histogram"
    );

    // Batches count their events like single appends, and themselves by outcome.
    let speech = |id: &str| json!({"eventId": id, "type": "system", "payload": {}});
    assert_eq!(
        post("/sessions", json!({"sessionId": "m2", "language": "en"})).await,
        201
    );
    let batch = json!({"events": [speech("b1"), speech("b2"), speech("b3")]});
    let mixed = json!({"events": [speech("b1"), speech("b4")]});
    let conflicting =
        json!({"events": [speech("b5"), {"eventId": "b1", "type": "system", "payload": {"n": 1}}]});
    for (body, status) in [
        (&batch, 201),
        (&batch, 200),
        (&mixed, 201),
        (&conflicting, 409),
    ] {
        assert_eq!(
            post("/sessions/m2/events:batch", body.clone()).await,
            status,
            "{body}"
        );
    }
    let batched = scrape().await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        metric(&batched, name, labels) - metric(&after, name, labels)
    };
    assert_eq!(delta("events_stored_total", &[]), 4.0);
    assert_eq!(delta("event_replays_total", &[]), 4.0);
    assert_eq!(
        delta("event_conflicts_total", &[("reason", "event_id_conflict")]),
        1.0
    );
    for (outcome, n) in [("stored", 2.0), ("replayed", 1.0), ("refused", 1.0)] {
        assert_eq!(
            delta("event_batches_total", &[("outcome", outcome)]),
            n,
            "{outcome}"
        );
    }
    assert_eq!(delta("event_batch_size_count", &[]), 4.0);
    assert_eq!(delta("event_batch_size_sum", &[]), 10.0);
    assert_eq!(
        delta(
            "storage_operation_duration_seconds_count",
            &[("backend", "sqlite"), ("operation", "append_event_batch")]
        ),
        4.0
    );

    // An invented method is counted as `other`: clients cannot add series without bound.
    for method in ["BREW", "WHEN", "BREW"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = client
            .request(method, format!("{base}/sessions/m2"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
    }
    let invented = scrape().await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        metric(&invented, name, labels) - metric(&batched, name, labels)
    };
    assert_eq!(
        delta(
            "http_requests_total",
            &[("method", "other"), ("status", "405")]
        ),
        3.0
    );
    assert!(!invented.contains("BREW") && !invented.contains("WHEN"));

    // Every metric is described: a `# HELP` line with text before its `# TYPE` line, so a
    // dashboard or an alert rule can say what it measures (`promtool check metrics` in
    // tools/prometheus/check.sh checks the same and more).
    let typed: Vec<&str> = invented
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert!(typed.len() >= 10, "too few metrics: {typed:?}");
    for name in &typed {
        let help = invented
            .lines()
            .find_map(|l| l.strip_prefix(&format!("# HELP {name} ")));
        assert!(
            help.is_some_and(|h| !h.trim().is_empty()),
            "{name} has no help text"
        );
    }
    assert!(
        typed.contains(&"streams_max"),
        "streams_max is set at start-up"
    );
    store.cleanup().await;
}
