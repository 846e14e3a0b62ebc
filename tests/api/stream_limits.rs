//! What bounds a stream and what does not: API keys as on every read, `MAX_STREAMS` (503
//! `too_many_streams` with `Retry-After`, until one closes), keepalive comments while idle, and
//! `REQUEST_TIMEOUT_MS`, which does not cut a stream.

use std::time::Duration;

use serde_json::json;

use crate::support::StoreCtx;
use crate::support::app::spawn_app_with;
use crate::support::sse::{FRAME_LIMIT, Next, names_of};

const READ_KEY: &str = "reader-key-0123456789abcdef";
const WRITE_KEY: &str = "writer-key-0123456789abcdef";

backend_test! { async fn a_stream_needs_a_valid_key_and_a_read_key_is_enough(s: StoreCtx) {
    let keys = format!("read:{READ_KEY},write:{WRITE_KEY}");
    let app = spawn_app_with(s, &[("API_KEYS", &keys)]).await;
    let created = app
        .client
        .post(app.url("/sessions"))
        .bearer_auth(WRITE_KEY)
        .json(&json!({"sessionId": "call-1", "language": "en-US"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);

    let r = app.sse("call-1").refused().await;
    r.assert_problem(401, "unauthorized");
    assert!(r.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")));
    app.sse("call-1")
        .bearer("wrong-key-0123456789abcdef")
        .refused()
        .await
        .assert_problem(401, "unauthorized");
    // Without a valid key the session's existence is not revealed either.
    app.sse("nobody")
        .refused()
        .await
        .assert_problem(401, "unauthorized");

    // Every scope includes read: both keys may stream.
    for key in [READ_KEY, WRITE_KEY] {
        let mut stream = app.sse("call-1").bearer(key).open().await;
        stream.expect_retry().await;
        assert_eq!(stream.expect_frame().await.caught_up_seq(), 0);
    }
}}

backend_test! { async fn beyond_max_streams_a_stream_is_refused_with_503_and_retry_after_until_one_closes(s: StoreCtx) {
    let app = spawn_app_with(s, &[("MAX_STREAMS", "2")]).await;
    app.create_session("call-1").await;
    let mut first = app.sse("call-1").open().await;
    first.expect_retry().await;
    let mut second = app.sse("call-1").open().await;
    second.expect_retry().await;

    let refused = app.sse("call-1").refused().await;
    refused.assert_problem(503, "too_many_streams");
    let retry_after = refused.header("retry-after").unwrap_or_else(|| {
        panic!("a 503 too_many_streams says when to retry: {:?}", refused.headers)
    });
    assert!(
        retry_after.parse::<u64>().is_ok(),
        "Retry-After is whole seconds: {retry_after:?}"
    );
    // The limit is on streams only: JSON reads still pass, and the open streams still deliver.
    assert_eq!(app.get("/sessions/call-1/events").await.status, 200);
    app.add_event("call-1", "e1").await;
    for stream in [&mut first, &mut second] {
        let frames = stream.until_event("event").await;
        assert_eq!(names_of(&frames), ["caught-up", "event"]);
    }

    // Closing one makes room; closing is asynchronous, so poll (bounded) until a stream opens.
    drop(first);
    let deadline = tokio::time::Instant::now() + FRAME_LIMIT;
    let mut third = loop {
        match app.sse("call-1").try_open().await {
            Ok(stream) => break stream,
            Err(r) => {
                r.assert_problem(503, "too_many_streams");
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no stream could open within {FRAME_LIMIT:?} of closing one"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    third.expect_retry().await;
    let frames = third.until_event("caught-up").await;
    assert_eq!(names_of(&frames), ["event", "caught-up"]);
    app.sse("call-1")
        .refused()
        .await
        .assert_problem(503, "too_many_streams");
}}

backend_test! { async fn an_idle_stream_gets_keepalive_comments_and_still_delivers_afterwards(s: StoreCtx) {
    let app = spawn_app_with(s, &[("STREAM_KEEPALIVE_SECONDS", "1")]).await;
    app.create_session("call-1").await;
    let mut stream = app.sse("call-1").open().await;
    stream.expect_retry().await;
    assert_eq!(stream.expect_frame().await.caught_up_seq(), 0);
    match stream.next(FRAME_LIMIT).await {
        Next::Frame(frame) => {
            assert!(frame.is_comment_only(), "an idle stream sent {frame:?}");
            assert_eq!(frame.comments, ["keepalive"]);
        }
        other => panic!("an idle stream with a 1 s keepalive gave {other:?}"),
    }
    app.add_event("call-1", "e1").await;
    let frame = stream.expect_frame().await;
    assert_eq!(frame.event_json()["eventId"], "e1");
}}

backend_test! { async fn a_stream_outlives_the_request_timeout_and_delivers_an_event_a_second_later(s: StoreCtx) {
    let app = spawn_app_with(s, &[("REQUEST_TIMEOUT_MS", "300")]).await;
    app.create_session("call-1").await;
    let mut stream = app.sse("call-1").open().await;
    stream.expect_retry().await;
    assert_eq!(stream.expect_frame().await.caught_up_seq(), 0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    app.add_event("call-1", "late").await;
    match stream.next(FRAME_LIMIT).await {
        Next::Frame(frame) => assert_eq!(frame.event_json()["eventId"], "late", "{frame:?}"),
        other => panic!("the stream did not deliver the event after the request timeout: {other:?}"),
    }
}}
