//! A live stream's connection is busy for as long as the stream runs: the server's idle timer
//! (`KEEPALIVE_TIMEOUT_MS`) never closes it, however long it stays quiet.

use std::time::Duration;

use serde_json::json;

use crate::support::process::ServiceCommand;
use crate::support::sse::{self, SseRequest, names_of};
use crate::support::{Backend, ServiceStore};
use crate::{client, post_json};

#[tokio::test]
async fn a_quiet_stream_outlives_the_keepalive_timeout() {
    let store = ServiceStore::new(Backend::Sqlite, "stream_quiet");
    let service = ServiceCommand::new()
        .store(&store)
        .env("KEEPALIVE_TIMEOUT_MS", "1000")
        .start()
        .await;
    service.wait_ready().await;
    let http = client();
    let (status, _) = post_json(
        &http,
        &service.url("/sessions"),
        &json!({"sessionId": "call-1", "language": "en"}),
    )
    .await
    .expect("create");
    assert_eq!(status, 201);
    let mut stream = SseRequest::new(&sse::client(), &service.base(), "call-1")
        .open()
        .await;
    stream.expect_retry().await;
    assert_eq!(
        names_of(&stream.until_event("caught-up").await),
        ["caught-up"]
    );
    // Several idle timeouts pass with nothing sent either way.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let event =
        json!({"eventId": "e1", "type": "user_speech", "payload": {"text": "still there?"}});
    let (status, _) = post_json(&http, &service.url("/sessions/call-1/events"), &event)
        .await
        .expect("append");
    assert_eq!(status, 201);
    let frame = stream.expect_frame().await;
    assert_eq!(
        frame.id_seq(),
        1,
        "{frame:?} after {:?}",
        names_of(&stream.seen)
    );
    drop(service);
    store.cleanup().await;
}
