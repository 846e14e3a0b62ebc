//! Live streams and the other ways events arrive: a batch (its events reach an open stream in
//! seq order, each once) and a store whose change feed is unavailable (a second instance then
//! finds other writers' events by reading by seq).

use serde_json::json;

use crate::support::StoreCtx;
use crate::support::app::spawn_app_with;
use crate::support::sse::{names_of, seqs_of};

backend_test! { async fn the_events_of_a_batch_reach_an_open_stream_once_each_in_seq_order(s: StoreCtx) {
    // No polling: on SQLite only the batch's own announcements can deliver its events.
    let app = spawn_app_with(s, &[("STREAM_POLL_INTERVAL_MS", "3600000")]).await;
    app.create_session("call-1").await;
    app.add_event("call-1", "e0").await;
    let mut stream = app.sse("call-1").open().await;
    stream.expect_retry().await;
    assert_eq!(names_of(&stream.until_event("caught-up").await), ["event", "caught-up"]);

    let batch = |ids: &[&str]| json!({"events": ids.iter().map(|id| json!({
        "eventId": id, "type": "bot_speech", "payload": {"text": id}
    })).collect::<Vec<_>>()});
    let event_ids = |frames: &[crate::support::sse::Frame]| -> Vec<String> {
        frames
            .iter()
            .filter(|f| f.is("event"))
            .map(|f| f.event_json()["eventId"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let r = app.post_json("/sessions/call-1/events:batch", &batch(&["b1", "b2", "b3"])).await;
    assert_eq!(r.status, 201, "{}", r.text);
    // Live, while the session is open: nothing but the batch's own announcements can bring them.
    let mut live = Vec::new();
    for _ in 0..3 {
        live.push(stream.expect_frame().await);
    }
    assert_eq!(seqs_of(&live), [2, 3, 4]);
    assert_eq!(event_ids(&live), ["b1", "b2", "b3"]);
    // A replayed batch stores nothing and announces nothing new; a mixed one, only its new event.
    let r = app.post_json("/sessions/call-1/events:batch", &batch(&["b1", "b2", "b3"])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.post_json("/sessions/call-1/events:batch", &batch(&["b3", "b4"])).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let next = stream.expect_frame().await;
    assert_eq!((next.id_seq(), next.event_json()["eventId"].clone()), (5, json!("b4")));
    assert_eq!(app.complete("call-1", None).await.status, 200);
    assert_eq!(names_of(&stream.until_event("session-ended").await), ["session-ended"]);
    stream.expect_end().await;
}}

backend_test! { async fn without_a_change_feed_another_instances_writes_are_found_by_reading_by_seq(s: StoreCtx) {
    // The reading instance is told the store has no change feed (as when MongoDB's change streams
    // are unavailable): it must fall back to polling and still deliver every event, in order.
    let mut repos = s.reopen().await;
    repos.changes = None;
    let reader = StoreCtx { repos, ..s.clone() };
    let vars = [("STREAM_POLL_INTERVAL_MS", "100")];
    let writer = spawn_app_with(s, &vars).await;
    let reader = spawn_app_with(reader, &vars).await;
    writer.create_session("call-1").await;
    let mut stream = reader.sse("call-1").open().await;
    stream.expect_retry().await;
    assert_eq!(names_of(&stream.until_event("caught-up").await), ["caught-up"]);
    writer.add_events("call-1", "e", 5).await;
    assert_eq!(writer.complete("call-1", None).await.status, 200);
    let rest = stream.until_event("session-ended").await;
    assert_eq!(seqs_of(&rest), [1, 2, 3, 4, 5]);
    stream.expect_end().await;
}}
