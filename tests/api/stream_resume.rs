//! Where a stream starts and what it refuses: `Last-Event-ID` and `after` resume after the right
//! event (the header wins), bad starting points and other query parameters are a 400 problem,
//! unknown and deleted sessions are 404 and 410; and the key property, a subscriber that drops
//! and resumes at random points while eight writers append gets every event exactly once, in seq
//! order.

use reqwest::Method;

use crate::stream_support::{
    Rng, assert_received_everything, reconnecting_subscriber, write_concurrently,
};
use crate::support::app::TestApp;
use crate::support::sse::{SseRequest, names_of, seqs_of};

/// The `nextCursor` of the first ascending page of `session` with `limit` events: a cursor
/// after seq `limit`.
async fn cursor_after(app: &TestApp, session: &str, limit: u32) -> String {
    let page = app
        .read_session(session, &format!("?order=asc&limit={limit}"))
        .await;
    page["pagination"]["nextCursor"]
        .as_str()
        .unwrap_or_else(|| panic!("no nextCursor: {page}"))
        .to_owned()
}

/// Opens `request`, reads it to `caught-up`, and returns the seqs it sent and caught-up's seq.
async fn replayed(request: SseRequest) -> (Vec<u64>, u64) {
    let mut stream = request.open().await;
    stream.expect_retry().await;
    let frames = stream.until_event("caught-up").await;
    let (caught_up, events) = frames.split_last().expect("caught-up");
    assert!(
        events.iter().all(|f| f.is("event")),
        "{:?}",
        names_of(&frames)
    );
    (seqs_of(events), caught_up.caught_up_seq())
}

/// A session `call-1` with the events `e1` … `e5`.
async fn five_events(app: &TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e", 5).await;
}

backend_test! { async fn last_event_id_resumes_right_after_that_seq(app: TestApp) {
    five_events(&app).await;
    assert_eq!(replayed(app.sse("call-1").last_event_id("2")).await, (vec![3, 4, 5], 5));
    assert_eq!(replayed(app.sse("call-1").last_event_id("4")).await, (vec![5], 5));

    // Resumed at the end: nothing to replay, caught-up at the starting point, then live events.
    let mut stream = app.sse("call-1").last_event_id("5").open().await;
    stream.expect_retry().await;
    assert_eq!(stream.expect_frame().await.caught_up_seq(), 5);
    app.add_event("call-1", "e6").await;
    let live = stream.expect_frame().await;
    assert_eq!(live.event_json()["eventId"], "e6");
    assert_eq!(live.id_seq(), 6);
}}

backend_test! { async fn an_after_cursor_resumes_right_after_its_seq(app: TestApp) {
    five_events(&app).await;
    let after_2 = cursor_after(&app, "call-1", 2).await;
    assert_eq!(replayed(app.sse("call-1").after(&after_2)).await, (vec![3, 4, 5], 5));
    let after_4 = cursor_after(&app, "call-1", 4).await;
    assert_eq!(replayed(app.sse("call-1").after(&after_4)).await, (vec![5], 5));
}}

backend_test! { async fn last_event_id_wins_over_an_after_cursor_either_way(app: TestApp) {
    five_events(&app).await;
    let after_2 = cursor_after(&app, "call-1", 2).await;
    let after_4 = cursor_after(&app, "call-1", 4).await;
    assert_eq!(
        replayed(app.sse("call-1").after(&after_2).last_event_id("4")).await,
        (vec![5], 5)
    );
    assert_eq!(
        replayed(app.sse("call-1").after(&after_4).last_event_id("1")).await,
        (vec![2, 3, 4, 5], 5)
    );
}}

backend_test! { async fn a_malformed_last_event_id_is_a_400_naming_it(app: TestApp) {
    five_events(&app).await;
    for bad in ["abc", "-1", "1.5", "1e3", "0x10", "2 3"] {
        let r = app.sse("call-1").last_event_id(bad).refused().await;
        r.assert_problem(400, "validation_failed");
        assert_eq!(r.error_fields(), ["Last-Event-ID"], "{bad:?}: {}", r.text);
    }
    // Malformed even though a good cursor comes with it.
    let after_2 = cursor_after(&app, "call-1", 2).await;
    let r = app.sse("call-1").after(&after_2).last_event_id("x").refused().await;
    r.assert_problem(400, "validation_failed");
    assert_eq!(r.error_fields(), ["Last-Event-ID"], "{}", r.text);
    assert_eq!(app.event_count("call-1").await, 5, "nothing changed");
}}

backend_test! { async fn a_last_event_id_beyond_the_event_count_is_a_400(app: TestApp) {
    five_events(&app).await;
    for beyond in ["6", "1000", "18446744073709551615"] {
        let r = app.sse("call-1").last_event_id(beyond).refused().await;
        assert_eq!(r.status, 400, "{beyond}: {}", r.text);
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }
    app.create_session("empty").await;
    let r = app.sse("empty").last_event_id("1").refused().await;
    assert_eq!(r.status, 400, "{}", r.text);
}}

backend_test! { async fn query_parameters_other_than_an_ascending_after_cursor_are_a_400(app: TestApp) {
    five_events(&app).await;
    let after_2 = cursor_after(&app, "call-1", 2).await;
    for query in ["limit=5", "order=asc", "order=desc", "page=1", "foo=bar"] {
        let r = app.sse("call-1").query(query).refused().await;
        r.assert_problem(400, "validation_failed");
        let r = app.sse("call-1").after(&after_2).query(query).refused().await;
        r.assert_problem(400, "validation_failed");
    }
    let r = app.sse("call-1").after("not-a-cursor").refused().await;
    r.assert_problem(400, "validation_failed");
    assert_eq!(r.error_fields(), ["after"], "{}", r.text);
    let desc = app.read_session("call-1", "?order=desc&limit=2").await;
    let desc_cursor = desc["pagination"]["nextCursor"].as_str().expect("a cursor");
    let r = app.sse("call-1").after(desc_cursor).refused().await;
    r.assert_problem(400, "validation_failed");
}}

backend_test! { async fn an_unknown_session_is_a_404_and_a_deleted_one_a_410(app: TestApp) {
    app.sse("nobody")
        .refused()
        .await
        .assert_problem(404, "session_not_found");
    app.create_session("gone").await;
    app.add_event("gone", "e1").await;
    let r = app.request(Method::DELETE, "/sessions/gone").await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.sse("gone")
        .refused()
        .await
        .assert_problem(410, "session_deleted");
    app.sse("gone")
        .last_event_id("1")
        .refused()
        .await
        .assert_problem(410, "session_deleted");
}}

/// Concurrent writers during the reconnecting subscriber, and events each writes.
const WRITERS: usize = 8;
const EVENTS_PER_WRITER: usize = 40;

backend_test! { async fn a_subscriber_reconnecting_at_random_points_while_eight_writers_append_gets_every_event_once_in_seq_order(app: TestApp) {
    app.create_session("busy").await;
    let rng = Rng::new();
    let seed = rng.seed;
    let subscriber = tokio::spawn(reconnecting_subscriber(vec![app.handle()], "busy".into(), rng));
    let acked = write_concurrently(&[app.handle()], "busy", WRITERS, EVENTS_PER_WRITER).await;
    assert_eq!(acked.len(), WRITERS * EVENTS_PER_WRITER);
    let r = app.complete("busy", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let received = subscriber.await.expect("the subscriber");
    assert_received_everything(&app, "busy", &received, &acked, seed).await;
    eprintln!(
        "reconnecting subscriber (seed {seed}): {} events over {} connections",
        received.seqs.len(),
        received.connections
    );
}}
