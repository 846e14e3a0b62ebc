//! `GET /sessions` where the stored status is not the whole story: a session past its deadline is
//! listed as ended before the sweeper records it; cursor walks under selective filters.

use std::time::Duration;

use serde_json::json;

use super::lifecycle_listing::{create_all, ids, list, walk};
use crate::support::StoreCtx;
use crate::support::app::{TestApp, spawn_app_with};

backend_test! { async fn a_session_past_its_deadline_is_listed_as_failed_before_it_is_swept(s: StoreCtx) {
    let app = spawn_app_with(s, &[("SWEEP_INTERVAL_MS", "3600000")]).await;
    let r = app
        .post_json(
            "/sessions",
            &json!({"sessionId": "short", "language": "en", "inactivityTimeoutSeconds": 1}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    app.add_event("short", "e-1").await;
    app.create_session("long").await;
    app.add_event("long", "e-1").await;
    assert_eq!(
        list(&app, "?status=active&order=asc").await,
        ["short", "long"]
    );

    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(
        list(&app, "?status=active").await,
        ["long"],
        "an ended session is not active"
    );
    let all = app.get("/sessions?order=asc").await;
    assert_eq!(ids(&all.body), ["short", "long"]);
    let short = &all.body["sessions"][0];
    assert_eq!(short["status"], "failed", "{short}");
    assert_eq!(short["endedReason"], "inactivity_timeout");
    assert_eq!(
        short["endedAt"],
        app.read_session("short", "").await["endedAt"]
    );
    assert_eq!(
        list(&app, "?endedReason=inactivity_timeout").await,
        ["short"]
    );
}}

backend_test! { async fn filtered_cursor_walks_return_every_match_once_in_both_orders(app: TestApp) {
    let names: Vec<String> = (0..24).map(|i| format!("s-{i:02}")).collect();
    let mut even = Vec::new();
    for (i, id) in names.iter().enumerate() {
        let parity = if i % 2 == 0 { "even" } else { "odd" };
        create_all(&app, &[id], json!({"parity": parity})).await;
        if i.is_multiple_of(3) {
            app.complete(id, Some(&json!({"reason": "caller_hangup"})))
                .await;
        }
        if i.is_multiple_of(2) {
            even.push(id.clone());
        }
    }
    let mut in_order = walk(&app, "asc", 100, "").await;
    in_order.retain(|id| even.contains(id));
    assert_eq!(in_order.len(), 12);
    for limit in [1, 5, 12] {
        let asc = walk(&app, "asc", limit, "&metadata.parity=even").await;
        assert_eq!(asc, in_order, "limit {limit}");
        let mut desc = walk(&app, "desc", limit, "&metadata.parity=even").await;
        desc.reverse();
        assert_eq!(desc, in_order, "limit {limit}");
    }
    // Even and ended with a reason: every sixth session.
    let ended: Vec<String> = in_order
        .iter()
        .filter(|id| {
            let i: usize = id[2..].parse().unwrap();
            i.is_multiple_of(3)
        })
        .cloned()
        .collect();
    assert_eq!(ended.len(), 4);
    let query = "&metadata.parity=even&endedReason=caller_hangup&status=completed";
    assert_eq!(walk(&app, "asc", 3, query).await, ended);
    let initiated = walk(&app, "desc", 2, "&status=initiated&metadata.parity=even").await;
    assert_eq!(initiated.len(), 8);
    assert!(initiated.iter().all(|id| !ended.contains(id)));
}}
