//! The live-transcript stream (`GET /sessions/{id}/events`, `Accept: text/event-stream`) from
//! open to close: `retry`, the replay of what is stored, `caught-up`, live events, and the end of
//! the stream when the session ends (completed, failed, by its timer) or is deleted.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::StoreCtx;
use crate::support::app::{TestApp, spawn_app_with};
use crate::support::sse::{Frame, events_of, names_of, parse_in_pieces, seqs_of};

/// The event `event_id` as `GET /sessions/{session}/events/{event_id}` returns it.
async fn stored_event(app: &TestApp, session: &str, event_id: &str) -> Value {
    let r = app
        .get(&format!("/sessions/{session}/events/{event_id}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

#[test]
fn the_test_clients_parser_reads_frames_split_anywhere_with_any_line_end() {
    let text = "retry: 2000\n\nid: 1\nevent: event\ndata: {\"a\":\ndata: 1}\n\n: keepalive\n\n\
                :no-space\r\n\r\nid:2\revent:caught-up\rdata:{\"seq\":2}\r\r\n\nid: 3\nda";
    for step in 1..=text.len() {
        let frames = parse_in_pieces(text, step);
        assert_eq!(
            names_of(&frames),
            ["retry", "event", "comment", "comment", "caught-up"],
            "pieces of {step}"
        );
        assert_eq!(frames[0].retry.as_deref(), Some("2000"));
        assert_eq!(frames[1].id.as_deref(), Some("1"));
        assert_eq!(frames[1].data.as_deref(), Some("{\"a\":\n1}"));
        assert_eq!(frames[2].comments, ["keepalive"]);
        assert_eq!(frames[3].comments, ["no-space"]);
        assert_eq!(frames[4].caught_up_seq(), 2);
        assert_eq!(frames[4].id_seq(), 2);
    }
}

backend_test! { async fn a_stream_replays_the_stored_events_says_caught_up_delivers_live_ones_and_ends_with_the_completed_session(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e", 3).await;
    let mut stream = app.sse("call-1").open().await;
    stream.expect_retry().await;
    let replay = stream.until_event("caught-up").await;
    assert_eq!(names_of(&replay), ["event", "event", "event", "caught-up"]);
    for (event, i) in events_of(&replay).iter().zip(1..) {
        assert_eq!(event, &stored_event(&app, "call-1", &format!("e{i}")).await);
    }
    assert_eq!(replay[3].caught_up_seq(), 3);

    app.add_event("call-1", "e4").await;
    let live = stream.expect_frame().await;
    assert_eq!(live.event_json(), stored_event(&app, "call-1", "e4").await);

    // Appended and completed before the stream is read on: the events come first, then the end.
    app.add_event("call-1", "e5").await;
    app.add_event("call-1", "e6").await;
    let r = app.complete("call-1", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rest = stream.until_event("session-ended").await;
    assert_eq!(names_of(&rest), ["event", "event", "session-ended"]);
    assert_eq!(seqs_of(&rest), [5, 6]);
    let ended = rest[2].json();
    assert_eq!(ended["status"], "completed");
    assert_eq!(ended["eventCount"], 6);
    assert_eq!(ended, app.session_part("call-1").await);
    stream.expect_end().await;
}}

backend_test! { async fn a_stream_of_an_empty_session_says_caught_up_at_zero_then_delivers_the_first_event(app: TestApp) {
    app.create_session("call-1").await;
    let mut stream = app.sse("call-1").open().await;
    stream.expect_retry().await;
    let caught_up = stream.expect_frame().await;
    assert_eq!(caught_up.caught_up_seq(), 0, "{caught_up:?}");
    app.add_event("call-1", "first").await;
    let first = stream.expect_frame().await;
    assert_eq!(first.event_json(), stored_event(&app, "call-1", "first").await);
    assert_eq!(first.id_seq(), 1);
}}

/// Opens a stream on an ended session (resuming after `last_event_id` if given), reads it to its
/// end, and checks it: `retry`, the events after the starting point, `caught-up`,
/// `session-ended` with the session, then a clean close. The seqs it replayed.
async fn read_ended_stream(app: &TestApp, session: &str, last_event_id: Option<u64>) -> Vec<u64> {
    let mut stream = app.sse(session).resume_from(last_event_id).open().await;
    stream.expect_retry().await;
    let frames: Vec<Frame> = stream.until_event("session-ended").await;
    stream.expect_end().await;
    let names = names_of(&frames);
    let n = frames.len();
    assert!(
        n >= 2 && names[n - 2] == "caught-up" && names[..n - 2].iter().all(|f| f == "event"),
        "{session} after {last_event_id:?}: {names:?}"
    );
    let seqs = seqs_of(&frames);
    let start = last_event_id.unwrap_or(0);
    assert_eq!(
        frames[n - 2].caught_up_seq(),
        seqs.last().copied().unwrap_or(start)
    );
    assert_eq!(frames[n - 1].json(), app.session_part(session).await);
    seqs
}

backend_test! { async fn a_stream_opened_after_the_end_replays_says_caught_up_and_session_ended_then_closes(app: TestApp) {
    app.create_session("hung-up").await;
    app.add_events("hung-up", "e", 2).await;
    let body = json!({"status": "failed", "reason": "caller_hangup"});
    let r = app.complete("hung-up", Some(&body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(read_ended_stream(&app, "hung-up", None).await, [1, 2]);
    let ended = app.session_part("hung-up").await;
    assert_eq!(
        (&ended["status"], &ended["endedReason"]),
        (&json!("failed"), &json!("caller_hangup"))
    );
    assert_eq!(read_ended_stream(&app, "hung-up", Some(1)).await, [2]);
    assert_eq!(read_ended_stream(&app, "hung-up", Some(2)).await, Vec::<u64>::new());

    app.create_session("silent").await;
    let r = app.complete("silent", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(read_ended_stream(&app, "silent", None).await, Vec::<u64>::new());
}}

backend_test! { async fn a_session_ended_by_its_inactivity_timer_while_streaming_ends_the_stream_with_the_failed_session(s: StoreCtx) {
    let app = spawn_app_with(s, &[("SWEEP_INTERVAL_MS", "50")]).await;
    // Two seconds rather than one: room for the stream to be open before the timer fires.
    let body = json!({"sessionId": "call-1", "language": "en-US", "inactivityTimeoutSeconds": 2});
    let r = app.post_json("/sessions", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    app.add_event("call-1", "e1").await;
    let mut stream = app.sse("call-1").open().await;
    stream.expect_retry().await;
    let replay = stream.until_event("caught-up").await;
    assert_eq!(names_of(&replay), ["event", "caught-up"]);
    assert_eq!(
        app.session_part("call-1").await["status"],
        "active",
        "the stream must be open before the timer ends the session (a slow machine?)"
    );

    let rest = stream.until_event("session-ended").await;
    assert_eq!(names_of(&rest), ["session-ended"]);
    let ended = rest[0].json();
    assert_eq!(ended["status"], "failed", "{ended}");
    assert_eq!(ended["endedReason"], "inactivity_timeout", "{ended}");
    assert_eq!(ended["eventCount"], 1);
    assert_eq!(ended, app.session_part("call-1").await);
    stream.expect_end().await;
}}

backend_test! { async fn a_session_ended_by_its_maximum_duration_ends_the_stream_even_with_the_sweeper_off(s: StoreCtx) {
    let app = spawn_app_with(s, &[("SWEEP_INTERVAL_MS", "3600000")]).await;
    let body = json!({"sessionId": "call-1", "language": "en-US", "maxDurationSeconds": 2});
    let r = app.post_json("/sessions", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut stream = app.sse("call-1").open().await;
    stream.expect_retry().await;
    assert_eq!(stream.expect_frame().await.caught_up_seq(), 0);
    app.add_event("call-1", "e1").await;
    assert_eq!(stream.expect_frame().await.event_json()["eventId"], "e1");

    let rest = stream.until_event("session-ended").await;
    assert_eq!(names_of(&rest), ["session-ended"]);
    let ended = rest[0].json();
    assert_eq!(ended["status"], "failed", "{ended}");
    assert_eq!(ended["endedReason"], "max_duration_exceeded", "{ended}");
    assert_eq!(ended["endedAt"], r.body["expiresAt"], "{ended}");
    assert_eq!(ended, app.session_part("call-1").await);
    stream.expect_end().await;
}}

backend_test! { async fn deleting_a_session_while_streaming_sends_session_deleted_then_closes(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e", 2).await;
    let mut stream = app.sse("call-1").open().await;
    stream.expect_retry().await;
    assert_eq!(
        names_of(&stream.until_event("caught-up").await),
        ["event", "event", "caught-up"]
    );
    let r = app.request(Method::DELETE, "/sessions/call-1").await;
    assert_eq!(r.status, 204, "{}", r.text);
    let rest = stream.until_event("session-deleted").await;
    assert_eq!(names_of(&rest), ["session-deleted"]);
    assert_eq!(rest[0].json(), json!({"sessionId": "call-1"}));
    stream.expect_end().await;
    app.sse("call-1")
        .refused()
        .await
        .assert_problem(410, "session_deleted");
}}
