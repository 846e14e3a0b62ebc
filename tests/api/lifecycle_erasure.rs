//! Erasure over HTTP: `DELETE /sessions/{id}`, the 410 on every route afterwards, the background
//! removal of a long session's events (checked in the store's own tables), tombstones that
//! expire, and retention.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use session_service::config::DatabaseConfig;
use session_service::domain::{EventId, EventType, JsonObject, NewEvent, SessionId, Timestamp};
use session_service::repo::Appended;

use crate::lifecycle_support::eventually;
use crate::support::StoreCtx;
use crate::support::app::{TestApp, spawn_app_with};

const FAST_SWEEP: (&str, &str) = ("SWEEP_INTERVAL_MS", "50");

async fn delete(app: &TestApp, id: &str) -> u16 {
    let r = app
        .request(Method::DELETE, &format!("/sessions/{id}"))
        .await;
    assert!(
        r.status != 204 || r.text.is_empty(),
        "a 204 has no body: {}",
        r.text
    );
    r.status
}

/// How often [`eventually`] checks in this file.
const POLL: Duration = Duration::from_millis(100);

/// How many events of `session` the store still holds, counted in its own tables.
async fn stored_events(store: &StoreCtx, session: &str) -> u64 {
    match &store.config {
        DatabaseConfig::Sqlite(sqlite) => {
            let path = sqlite.path.clone();
            let session = session.to_owned();
            tokio::task::spawn_blocking(move || {
                let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
                let conn = rusqlite::Connection::open_with_flags(path, flags).unwrap();
                conn.query_row(
                    "SELECT COUNT(*) FROM events WHERE session_id = ?1",
                    [session],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap() as u64
            })
            .await
            .unwrap()
        }
        DatabaseConfig::Mongo(m) => {
            let client = mongodb::Client::with_uri_str(&m.uri).await.unwrap();
            let events = client
                .database(&m.database)
                .collection::<mongodb::bson::Document>("events");
            events
                .count_documents(mongodb::bson::doc! {"sessionId": session})
                .await
                .unwrap()
        }
    }
}

backend_test! { async fn delete_answers_204_then_204_again_and_404_for_an_unknown_id(app: TestApp) {
    app.create_session("call-1").await;
    assert_eq!(delete(&app, "call-1").await, 204);
    assert_eq!(delete(&app, "call-1").await, 204);
    let r = app.request(Method::DELETE, "/sessions/nobody").await;
    r.assert_problem(404, "session_not_found");
}}

backend_test! { async fn after_a_delete_every_route_for_the_id_answers_410(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 3).await;
    app.create_session("call-2").await;
    assert_eq!(delete(&app, "call-1").await, 204);

    for path in [
        "/sessions/call-1",
        "/sessions/call-1/events",
        "/sessions/call-1/events/e-1",
    ] {
        app.get(path).await.assert_problem(410, "session_deleted");
    }
    let ndjson = app
        .get_with_header("/sessions/call-1/events", "accept", "application/x-ndjson")
        .await;
    assert_eq!(ndjson.status(), 410);
    app.post_event(
        "call-1",
        &json!({"eventId": "e-1", "type": "user_speech", "payload": {"text": "e-1"}}),
    )
    .await
    .assert_problem(410, "session_deleted");
    app.post_event(
        "call-1",
        &json!({"eventId": "e-9", "type": "system", "payload": {}}),
    )
    .await
    .assert_problem(410, "session_deleted");
    app.complete("call-1", None)
        .await
        .assert_problem(410, "session_deleted");
    app.complete("call-1", Some(&json!({"status": "failed"})))
        .await
        .assert_problem(410, "session_deleted");
    app.post_json(
        "/sessions",
        &json!({"sessionId": "call-1", "language": "en-US"}),
    )
    .await
    .assert_problem(409, "session_deleted");

    let listed = app.get("/sessions").await;
    assert_eq!(
        listed.body["sessions"].as_array().unwrap().len(),
        1,
        "{}",
        listed.text
    );
    assert_eq!(listed.body["sessions"][0]["sessionId"], "call-2");
    assert_eq!(app.event_count("call-2").await, 0);
}}

backend_test! { async fn a_long_session_deleted_loses_all_its_events_from_storage(s: StoreCtx) {
    let app = spawn_app_with(s, &[FAST_SWEEP]).await;
    app.create_session("long").await;
    app.create_session("kept").await;
    app.add_events("kept", "k-", 3).await;
    // 3,000 events appended through the repository: over HTTP it would take long.
    let session = SessionId::parse("long").unwrap();
    for i in 0..3_000 {
        let new = NewEvent {
            session_id: session.clone(),
            event_id: EventId::parse(format!("e-{i}")).unwrap(),
            event_type: EventType::UserSpeech,
            payload: JsonObject::parse(json!({"text": i})).unwrap(),
            client_timestamp: None,
            received_at: Timestamp::now(),
            expected_seq: None,
            redact: None,
        };
        let r = app.store.repos.events.append(new).await.unwrap();
        assert!(matches!(r, Appended::New(_)), "{r:?}");
    }
    assert_eq!(app.event_count("long").await, 3_000);
    assert_eq!(stored_events(&app.store, "long").await, 3_000);

    assert_eq!(delete(&app, "long").await, 204);
    app.get("/sessions/long")
        .await
        .assert_problem(410, "session_deleted");
    eventually(
        POLL,
        30,
        "the background work removes the 3,000 events",
        || async { stored_events(&app.store, "long").await == 0 },
    )
    .await;
    assert_eq!(stored_events(&app.store, "kept").await, 3);
    assert_eq!(app.event_count("kept").await, 3);
    // The tombstone (30 days by default) still holds the id.
    app.get("/sessions/long")
        .await
        .assert_problem(410, "session_deleted");
}}

backend_test! { async fn once_its_tombstone_expires_the_id_is_free_again(s: StoreCtx) {
    // The tombstone stays while the change feed may hold the session's changes: both go by.
    let app = spawn_app_with(
        s,
        &[
            FAST_SWEEP,
            ("TOMBSTONE_RETENTION_SECONDS", "1"),
            ("CHANGES_RETENTION_SECONDS", "1"),
        ],
    )
    .await;
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 2).await;
    assert_eq!(delete(&app, "call-1").await, 204);
    app.get("/sessions/call-1")
        .await
        .assert_problem(410, "session_deleted");
    let create = json!({"sessionId": "call-1", "language": "fr"});
    eventually(
        POLL,
        15,
        "the tombstone expires and the id can be created again",
        || async {
            let r = app.post_json("/sessions", &create).await;
            assert!(r.status == 201 || r.status == 409, "{}", r.text);
            r.status == 201
        },
    )
    .await;
    let fresh = app.read_session("call-1", "").await;
    assert_eq!(
        (fresh["language"].clone(), fresh["eventCount"].clone()),
        (json!("fr"), json!(0))
    );
    assert_eq!(fresh["events"], json!([]));
    app.get("/sessions/call-1/events/e-1")
        .await
        .assert_problem(404, "event_not_found");
}}

backend_test! { async fn retention_erases_ended_sessions_and_keeps_open_ones(s: StoreCtx) {
    let app = spawn_app_with(s, &[FAST_SWEEP, ("RETENTION_SECONDS", "1")]).await;
    for id in ["ended", "open", "active"] {
        app.create_session(id).await;
    }
    app.add_event("active", "e-1").await;
    app.add_event("ended", "e-1").await;
    let r = app
        .complete("ended", Some(&json!({"reason": "caller_hangup"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    eventually(POLL, 15, "retention erases the ended session", || async {
        app.get("/sessions/ended").await.status == 410
    })
    .await;
    app.get("/sessions/ended/events")
        .await
        .assert_problem(410, "session_deleted");
    // Well past the retention, the open sessions are still there.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(app.read_session("open", "").await["status"], "initiated");
    assert_eq!(app.read_session("active", "").await["eventCount"], 1);
}}

backend_test! { async fn retention_also_erases_sessions_their_timer_ended(s: StoreCtx) {
    let app = spawn_app_with(s, &[FAST_SWEEP, ("RETENTION_SECONDS", "1")]).await;
    let timed = json!({"sessionId": "timed", "language": "en", "inactivityTimeoutSeconds": 1});
    assert_eq!(app.post_json("/sessions", &timed).await.status, 201);
    app.add_event("timed", "e-1").await;
    eventually(POLL, 15, "the timer ends the session and retention erases it", || async {
        app.get("/sessions/timed").await.status == 410
    })
    .await;
    let again = app.post_json("/sessions", &timed).await;
    again.assert_problem(409, "session_deleted");
}}
