//! `GET /stats` over HTTP: calls counted per step of a zone, grouped, with their events and
//! durations; an erased call is not counted once its DELETE answered; concurrent ends of one call
//! count it once; bad parameters are a 400 problem naming each one.

use std::sync::Arc;

use serde_json::{Value, json};
use session_service::domain::Timestamp;

use crate::support::StoreCtx;
use crate::support::app::{TestApp, spawn_app};

/// `from` and `to` around now, an hour either side.
fn around_now() -> String {
    let now = Timestamp::now();
    format!(
        "from={}&to={}",
        now.minus_seconds(3600),
        now.plus_seconds(3600)
    )
}

async fn stats(app: &TestApp, query: &str) -> Value {
    let r = app.get(&format!("/stats?{query}")).await;
    assert_eq!(r.status, 200, "{query}: {}", r.text);
    r.body
}

/// Three calls: `a` (2 events, ended `caller_hangup`), `b` (1 event, failed `error`), `c` (open,
/// 1 event).
async fn three_calls(app: &TestApp) {
    for (id, events) in [("a", 2), ("b", 1), ("c", 1)] {
        app.create_session(id).await;
        app.add_events(id, "e", events).await;
    }
    let r = app
        .complete("a", Some(&json!({"reason": "caller_hangup"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .complete("b", Some(&json!({"status": "failed", "reason": "error"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

fn groups(body: &Value) -> Vec<(Value, u64)> {
    body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["group"].clone(), g["calls"].as_u64().unwrap()))
        .collect()
}

backend_test! { async fn calls_are_counted_per_hour_of_the_zone_and_per_group(s: StoreCtx) {
    let app = spawn_app(s).await;
    three_calls(&app).await;
    let query = format!("{}&bucket=hour&tz=asia/kolkata&groupBy=endedReason", around_now());
    let body = stats(&app, &query).await;
    assert_eq!(body["tz"], "Asia/Kolkata");
    assert_eq!(body["bucket"], "hour");
    assert_eq!(body["groupBy"], "endedReason");
    let totals = &body["totals"];
    assert_eq!((totals["calls"].as_u64(), totals["ended"].as_u64()), (Some(3), Some(2)));
    assert_eq!(totals["events"], json!({"total": 4, "perCall": 1.33}));
    assert_eq!(totals["durationSeconds"]["max"].as_u64().map(|m| m < 60), Some(true));
    assert_eq!(body["activeNow"], 1);
    assert_eq!(
        groups(&body),
        [(json!("caller_hangup"), 1), (json!("error"), 1), (Value::Null, 1)]
    );
    let buckets = body["buckets"].as_array().unwrap();
    // Two or three local hours, each once per group; every start in the zone's offset.
    assert!(buckets.len() == 6 || buckets.len() == 9, "{buckets:?}");
    assert!(buckets.iter().all(|b| b["start"].as_str().unwrap().ends_with(":00:00+05:30")));
    let open: Vec<&Value> = buckets.iter().filter(|b| b["group"].is_null() && b["calls"] == 1).collect();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["durationSeconds"], Value::Null);
    assert_eq!(open[0]["ended"], 0);
}}

backend_test! { async fn defaults_are_the_last_seven_days_by_utc_day(s: StoreCtx) {
    let app = spawn_app(s).await;
    app.create_session("only").await;
    let body = stats(&app, "").await;
    assert_eq!((body["bucket"].as_str(), body["tz"].as_str()), (Some("day"), Some("UTC")));
    assert_eq!(body["groupBy"], Value::Null);
    let buckets = body["buckets"].as_array().unwrap();
    assert!(buckets.len() == 7 || buckets.len() == 8, "{}", buckets.len());
    assert_eq!(buckets.last().unwrap()["calls"], 1, "the call started just now");
    assert_eq!(body["totals"]["calls"], 1);
}}

backend_test! { async fn an_erased_call_is_not_counted_once_its_delete_answered(s: StoreCtx) {
    let app = spawn_app(s).await;
    three_calls(&app).await;
    for id in ["a", "c"] {
        let r = app.request(reqwest::Method::DELETE, &format!("/sessions/{id}")).await;
        assert_eq!(r.status, 204);
        let body = stats(&app, &format!("{}&groupBy=status", around_now())).await;
        if id == "a" {
            assert_eq!(groups(&body), [(json!("active"), 1), (json!("failed"), 1)]);
        }
    }
    let body = stats(&app, &format!("{}&groupBy=status", around_now())).await;
    assert_eq!(groups(&body), [(json!("failed"), 1)]);
    assert_eq!((body["totals"]["calls"].as_u64(), body["activeNow"].as_u64()), (Some(1), Some(0)));
}}

backend_test! { async fn concurrent_ends_of_one_call_count_it_once(s: StoreCtx) {
    let app = Arc::new(spawn_app(s).await);
    app.create_session("raced").await;
    let ends: Vec<_> = (0..16)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let reason = if i % 2 == 0 { "caller_hangup" } else { "transferred" };
                app.complete("raced", Some(&json!({"reason": reason}))).await.status
            })
        })
        .collect();
    for end in ends {
        assert_eq!(end.await.unwrap(), 200);
    }
    let body = stats(&app, &format!("{}&groupBy=endedReason", around_now())).await;
    assert_eq!((body["totals"]["calls"].as_u64(), body["totals"]["ended"].as_u64()), (Some(1), Some(1)));
    assert_eq!(groups(&body).len(), 1, "{body}");
}}

backend_test! { async fn bad_parameters_are_a_400_problem_naming_each(s: StoreCtx) {
    let app = spawn_app(s).await;
    let fields = |r: &crate::support::app::Reply| -> Vec<String> {
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(
            r.headers["content-type"].to_str().unwrap(),
            "application/problem+json"
        );
        assert!(r.body["type"].as_str().unwrap().ends_with("validation_failed"), "{}", r.text);
        r.body["errors"].as_array().unwrap().iter()
            .map(|e| e["field"].as_str().unwrap().to_owned()).collect()
    };
    let r = app.get("/stats?from=yesterday&bucket=week&tz=Mars/Base&groupBy=colour&limit=5").await;
    assert_eq!(fields(&r), ["from", "bucket", "tz", "groupBy", "limit"]);
    let r = app.get("/stats?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z").await;
    assert_eq!(fields(&r), ["to"]);
    // Steps that would end past the years the clock can represent: the range's end is at fault.
    let r = app.get("/stats?from=9999-12-30T00:00:00Z&to=9999-12-31T00:00:00Z").await;
    assert_eq!(fields(&r), ["to"]);
    let r = app.get("/stats?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z&bucket=hour").await;
    assert_eq!(fields(&r), ["bucket"]);
    assert!(r.text.contains("more than 1000 hours"), "{}", r.text);
    // 1,000 days is the most one answer holds.
    let r = app.get("/stats?from=2020-01-01T00:00:00Z&to=2022-09-27T00:00:00Z").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["buckets"].as_array().unwrap().len(), 1000);
}}
