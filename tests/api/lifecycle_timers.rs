//! Timers over HTTP: the new session fields, timer validation and defaults, a session that is
//! ended from its deadline on whether the sweeper noticed or not, the sweeper itself (also two
//! instances on one store).

use std::time::Duration;

use serde_json::{Value, json};
use session_service::domain::{SessionId, Timestamp};

use crate::lifecycle_support::{assert_listed_first, eventually};
use crate::support::StoreCtx;
use crate::support::app::{TestApp, spawn_app_with, two_instances};

/// The sweeper as good as off: these tests see what reads do on their own.
const NO_SWEEP: &[(&str, &str)] = &[("SWEEP_INTERVAL_MS", "3600000")];
const FAST_SWEEP: &[(&str, &str)] = &[("SWEEP_INTERVAL_MS", "50")];

fn time(v: &Value) -> Timestamp {
    Timestamp::parse(v.as_str().unwrap_or_else(|| panic!("not a time: {v}"))).unwrap()
}

async fn create_with(app: &TestApp, id: &str, extra: Value) -> crate::support::app::Reply {
    let mut body = json!({"sessionId": id, "language": "en-US"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.post_json("/sessions", &body).await
}

/// Creates `id` with both timers set to the given JSON values.
async fn create_timed(
    app: &TestApp,
    id: &str,
    inactivity: impl serde::Serialize,
    max_duration: impl serde::Serialize,
) -> crate::support::app::Reply {
    let timers =
        json!({"inactivityTimeoutSeconds": inactivity, "maxDurationSeconds": max_duration});
    create_with(app, id, timers).await
}

/// The session's two timers, as (inactivity, maximum duration).
fn timers_of(session: &Value) -> (Value, Value) {
    (
        session["inactivityTimeoutSeconds"].clone(),
        session["maxDurationSeconds"].clone(),
    )
}

/// How often [`eventually`] checks in this file.
const POLL: Duration = Duration::from_millis(50);

backend_test! { async fn a_new_session_shows_its_default_timers_and_when_it_expires(app: TestApp) {
    let s = app.create_session("call-1").await;
    assert_eq!(s["endedReason"], Value::Null);
    assert_eq!(s["lastEventAt"], Value::Null);
    assert_eq!(s["inactivityTimeoutSeconds"], 3600);
    assert_eq!(s["maxDurationSeconds"], 0);
    assert_eq!(
        time(&s["expiresAt"]),
        time(&s["startedAt"]).plus_seconds(3600)
    );

    app.add_event("call-1", "e-1").await;
    let s = app.read_session("call-1", "").await;
    let last = time(&s["lastEventAt"]);
    assert!(last >= time(&s["startedAt"]), "{s}");
    assert_eq!(time(&s["expiresAt"]), last.plus_seconds(3600));
}}

backend_test! { async fn timers_set_on_create_are_kept_and_a_second_create_never_changes_them(app: TestApp) {
    let r = create_timed(&app, "call-1", 0, 31536000).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(timers_of(&r.body), (json!(0), json!(31536000)));
    assert_eq!(
        time(&r.body["expiresAt"]),
        time(&r.body["startedAt"]).plus_seconds(31536000)
    );

    let again = create_timed(&app, "call-1", 5, 5).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body, r.body);
    let off = create_timed(&app, "call-2", 0, 0).await;
    assert_eq!(off.status, 201, "{}", off.text);
    assert_eq!(off.body["expiresAt"], Value::Null);
}}

backend_test! { async fn invalid_timers_are_a_400_listing_every_problem_and_create_nothing(app: TestApp) {
    let bad = [
        json!(-1),
        json!(31536001),
        json!(1.5),
        json!("60"),
        json!(true),
    ];
    for value in &bad {
        let r = create_timed(&app, "call-1", value, value).await;
        r.assert_problem(400, "validation_failed");
        let mut fields = r.error_fields();
        fields.sort();
        assert_eq!(
            fields,
            ["inactivityTimeoutSeconds", "maxDurationSeconds"],
            "{value}: {}",
            r.text
        );
    }
    let r = create_with(
        &app,
        "call-1",
        json!({"maxDurationSeconds": -5, "language": "??"}),
    )
    .await;
    r.assert_problem(400, "validation_failed");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["language", "maxDurationSeconds"], "{}", r.text);
    app.assert_no_session("call-1").await;
}}

backend_test! { async fn the_server_defaults_come_from_the_environment(s: StoreCtx) {
    let vars = [
        ("SESSION_INACTIVITY_TIMEOUT_SECONDS", "7"),
        ("SESSION_MAX_DURATION_SECONDS", "9"),
    ];
    let app = spawn_app_with(s, &vars).await;
    let body = app.create_session("call-1").await;
    assert_eq!(timers_of(&body), (json!(7), json!(9)));
    assert_eq!(
        time(&body["expiresAt"]),
        time(&body["startedAt"]).plus_seconds(7)
    );
    let own = create_with(&app, "call-2", json!({"maxDurationSeconds": 0})).await;
    assert_eq!(timers_of(&own.body), (json!(7), json!(0)));
}}

backend_test! { async fn from_its_deadline_on_a_session_has_ended_even_unswept(s: StoreCtx) {
    let app = spawn_app_with(s, NO_SWEEP).await;
    let r = create_with(&app, "call-1", json!({"inactivityTimeoutSeconds": 1})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    app.add_event("call-1", "e-1").await;
    let open = app.read_session("call-1", "").await;
    assert_eq!(open["status"], "active");
    let expires_at = open["expiresAt"].clone();
    assert_eq!(
        time(&expires_at),
        time(&open["lastEventAt"]).plus_seconds(1)
    );

    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let ended = app.read_session("call-1", "").await;
    assert_eq!(ended["status"], "failed", "{ended}");
    assert_eq!(ended["endedReason"], "inactivity_timeout");
    assert_eq!(ended["endedAt"], expires_at);
    assert_eq!(ended["expiresAt"], Value::Null);
    assert_eq!(app.get("/sessions/call-1/events").await.status, 200);

    let late = app
        .post_event(
            "call-1",
            &json!({"eventId": "e-2", "type": "user_speech", "payload": {}}),
        )
        .await;
    late.assert_problem(409, "session_ended");
    let retry = app
        .post_event(
            "call-1",
            &json!({"eventId": "e-1", "type": "user_speech", "payload": {"text": "e-1"}}),
        )
        .await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(retry.body["seq"], 1);

    app.complete("call-1", None)
        .await
        .assert_problem(409, "session_already_ended");
    let failed = app
        .complete(
            "call-1",
            Some(&json!({"status": "failed", "reason": "caller_hangup"})),
        )
        .await;
    assert_eq!(failed.status, 200, "{}", failed.text);
    assert_eq!(failed.body["endedReason"], "inactivity_timeout");
    assert_eq!(failed.body["endedAt"], expires_at);
    let after = app.read_session("call-1", "").await;
    assert_eq!(
        (after["endedAt"].clone(), after["eventCount"].clone()),
        (expires_at, json!(1))
    );
}}

backend_test! { async fn the_maximum_duration_ends_a_session_however_busy(s: StoreCtx) {
    let app = spawn_app_with(s, NO_SWEEP).await;
    let r = create_timed(&app, "call-1", 3600, 1).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let deadline = time(&r.body["startedAt"]).plus_seconds(1);
    assert_eq!(time(&r.body["expiresAt"]), deadline);
    let mut i = 0;
    loop {
        i += 1;
        let e = app
            .post_event(
                "call-1",
                &json!({"eventId": format!("e-{i}"), "type": "system", "payload": {}}),
            )
            .await;
        if e.status == 409 {
            e.assert_problem(409, "session_ended");
            break;
        }
        assert_eq!(e.status, 201, "{}", e.text);
        assert!(
            i < 1_000,
            "events were accepted long after the maximum duration"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ended = app.read_session("call-1", "").await;
    assert_eq!(ended["status"], "failed");
    assert_eq!(ended["endedReason"], "max_duration_exceeded");
    assert_eq!(time(&ended["endedAt"]), deadline);
    assert_eq!(ended["eventCount"], i - 1);
}}

/// The ids of `GET /sessions?status=failed` (one page of 100).
async fn failed_ids(app: &TestApp) -> Vec<String> {
    let r = app.get("/sessions?status=failed&limit=100").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessionId"].as_str().unwrap().to_owned())
        .collect()
}

backend_test! { async fn the_sweeper_records_expired_sessions_so_status_filters_find_them(s: StoreCtx) {
    let app = spawn_app_with(s, FAST_SWEEP).await;
    for id in ["short-1", "short-2", "short-3"] {
        create_with(&app, id, json!({"inactivityTimeoutSeconds": 1})).await;
    }
    app.create_session("long").await;
    eventually(POLL, 10, "the sweeper ends the three short sessions", || async {
        failed_ids(&app).await.len() == 3
    })
    .await;
    let mut ids = failed_ids(&app).await;
    ids.sort();
    assert_eq!(ids, ["short-1", "short-2", "short-3"]);
    for id in ["short-1", "short-2", "short-3"] {
        let stored = app
            .store
            .repos
            .sessions
            .get(&SessionId::parse(id).unwrap())
            .await
            .unwrap();
        assert_eq!(stored.ended_reason.unwrap().as_str(), "inactivity_timeout");
        assert_eq!(
            stored.ended_at,
            Some(stored.started_at.plus_seconds(1)),
            "{id}"
        );
    }
    assert_listed_first(&app, "/sessions?status=initiated", "long").await;
}}

backend_test! { async fn two_instances_sweeping_one_store_record_each_end_once(s: StoreCtx) {
    let (one, two) = two_instances(s, &[("SWEEP_INTERVAL_MS", "20")]).await;
    let ids: Vec<String> = (0..20).map(|i| format!("call-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let app = if i % 2 == 0 { &one } else { &two };
        let r = create_with(app, id, json!({"inactivityTimeoutSeconds": 1})).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    eventually(POLL, 15, "both sweepers end all 20 sessions", || async {
        failed_ids(&one).await.len() == 20 && failed_ids(&two).await.len() == 20
    })
    .await;
    for id in &ids {
        let a = one.read_session(id, "").await;
        let b = two.read_session(id, "").await;
        assert_eq!(a, b, "both instances show one end");
        assert_eq!(a["endedReason"], "inactivity_timeout");
        assert_eq!(
            time(&a["endedAt"]),
            time(&a["startedAt"]).plus_seconds(1),
            "{a}"
        );
    }
}}
