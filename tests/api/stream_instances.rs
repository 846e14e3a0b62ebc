//! Two instances on one store (MongoDB: one database; SQLite: one file, opened twice as a second
//! process would): a stream on one delivers what is written through the other, exactly once and
//! in order, also when the subscriber reconnects to either instance at random points; and a
//! deletion through the other instance ends the stream with `session-deleted`.

use reqwest::Method;
use serde_json::json;

use crate::stream_support::{
    Rng, assert_received_everything, reconnecting_subscriber, write_concurrently,
};
use crate::support::StoreCtx;
use crate::support::app::two_instances;
use crate::support::sse::{names_of, seqs_of};

backend_test! { async fn a_stream_on_one_instance_delivers_what_is_written_through_another(s: StoreCtx) {
    // The default poll interval: "within about a second" is what a listener gets.
    let (writer, reader) = two_instances(s, &[]).await;
    writer.create_session("call-1").await;
    writer.add_events("call-1", "e", 2).await;
    let mut stream = reader.sse("call-1").open().await;
    stream.expect_retry().await;
    let replay = stream.until_event("caught-up").await;
    assert_eq!(names_of(&replay), ["event", "event", "caught-up"]);

    for i in 3..=5 {
        writer.add_event("call-1", &format!("e{i}")).await;
        let frame = stream.expect_frame().await;
        assert_eq!(frame.event_json()["eventId"], format!("e{i}"), "{frame:?}");
        assert_eq!(frame.id_seq(), i);
    }
    writer.add_event("call-1", "e6").await;
    let r = writer.complete("call-1", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rest = stream.until_event("session-ended").await;
    assert_eq!(seqs_of(&rest), [6]);
    let ended = rest.last().expect("session-ended").json();
    assert_eq!(ended["status"], "completed");
    assert_eq!(ended, writer.session_part("call-1").await);
    stream.expect_end().await;
}}

backend_test! { async fn a_subscriber_reconnecting_to_either_instance_while_writers_append_through_both_gets_every_event_once(s: StoreCtx) {
    let (one, two) = two_instances(s, &[("STREAM_POLL_INTERVAL_MS", "100")]).await;
    one.create_session("shared").await;
    let rng = Rng::new();
    let seed = rng.seed;
    let subscriber = tokio::spawn(reconnecting_subscriber(
        vec![one.handle(), two.handle()],
        "shared".into(),
        rng,
    ));
    let acked = write_concurrently(&[one.handle(), two.handle()], "shared", 4, 15).await;
    let r = two.complete("shared", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let received = subscriber.await.expect("the subscriber");
    assert_received_everything(&one, "shared", &received, &acked, seed).await;
}}

backend_test! { async fn a_session_deleted_through_another_instance_ends_the_stream_with_session_deleted(s: StoreCtx) {
    let (writer, reader) = two_instances(s, &[]).await;
    writer.create_session("call-1").await;
    writer.add_event("call-1", "e1").await;
    let mut stream = reader.sse("call-1").open().await;
    stream.expect_retry().await;
    assert_eq!(
        names_of(&stream.until_event("caught-up").await),
        ["event", "caught-up"]
    );
    let r = writer.request(Method::DELETE, "/sessions/call-1").await;
    assert_eq!(r.status, 204, "{}", r.text);
    let rest = stream.until_event("session-deleted").await;
    assert_eq!(names_of(&rest), ["session-deleted"]);
    assert_eq!(rest[0].json(), json!({"sessionId": "call-1"}));
    stream.expect_end().await;
}}
