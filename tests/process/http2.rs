//! Shutdown with live streams over HTTP/2 (prior knowledge), in the real binary: SIGTERM ends the
//! streams of a connection that reads (each ends cleanly), drops a connection whose client keeps
//! its flow-control window shut (its stream could never send its end), and the process exits
//! without waiting for its drain limit.

use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

use crate::support::process::{ServiceCommand, ServiceProcess};
use crate::support::{Backend, ServiceStore};
use crate::{assert_exits_without_waiting_for_the_drain, client, post_json};

/// How long one wait in this test may take: a hang detector, never a timing assertion.
const LIMIT: Duration = Duration::from_secs(20);

/// An HTTP/2 connection to `service`, its window per stream `window` bytes.
async fn connect(service: &ServiceProcess, window: u32) -> SendRequest<Empty<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(service.addr())
        .await
        .expect("connect");
    let (send, conn) = http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(window)
        .handshake(TokioIo::new(tcp))
        .await
        .expect("HTTP/2 handshake");
    tokio::spawn(conn);
    send
}

/// Opens the live stream of `session` on `send`: the response's body.
async fn open(
    send: &mut SendRequest<Empty<Bytes>>,
    service: &ServiceProcess,
    session: &str,
) -> hyper::body::Incoming {
    send.ready().await.expect("connection ready");
    let request = hyper::Request::get(service.url(&format!("/sessions/{session}/events")))
        .header("accept", "text/event-stream")
        .body(Empty::new())
        .expect("request");
    let response = send.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200);
    response.into_body()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_http2_streams_and_drops_a_shut_window_without_waiting_for_the_drain_limit() {
    let store = ServiceStore::new(Backend::Sqlite, "http2_shutdown");
    let mut service = ServiceCommand::new()
        .store(&store)
        .env("RUST_LOG", "session_service=info")
        .env("SHUTDOWN_TIMEOUT_MS", "60000")
        .start()
        .await;
    service.wait_ready().await;
    let (status, reply) = post_json(
        &client(),
        &service.url("/sessions"),
        &json!({"sessionId": "call-1", "language": "en"}),
    )
    .await
    .expect("create");
    assert_eq!(status, 201, "{reply}");

    // Two streams on a connection that reads, read up to `caught-up`.
    let mut reading = connect(&service, 65_535).await;
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let mut body = open(&mut reading, &service, "call-1").await;
        let mut text = String::new();
        while !text.contains("event: caught-up") {
            let frame = tokio::time::timeout(LIMIT, body.frame())
                .await
                .expect("a frame within the limit")
                .expect("the stream goes on")
                .expect("a frame");
            if let Some(data) = frame.data_ref() {
                text.push_str(&String::from_utf8_lossy(data));
            }
        }
        bodies.push(body);
    }
    // One on a connection whose window stays shut: not a byte of it can be sent.
    let mut shut = connect(&service, 0).await;
    let _stuck = open(&mut shut, &service, "call-1").await;

    service.sigterm();
    for mut body in bodies {
        // Keepalives aside nothing more, then a clean end (not a reset).
        loop {
            match tokio::time::timeout(LIMIT, body.frame())
                .await
                .expect("the stream ended within the limit")
            {
                None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("the stream was cut, not ended: {e}"),
            }
        }
    }
    // The shut window did not hold the exit.
    assert_exits_without_waiting_for_the_drain(&mut service).await;
    store.cleanup().await;
}

/// HTTP/2's preface and an empty SETTINGS frame, as a client sends them first.
const PREFACE_AND_SETTINGS: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A `HEADERS` frame on stream 1 asking for `GET /health` (HPACK: `:method GET`, `:scheme http`
/// and `:path`, `:authority` literals), the request's end.
fn get_health() -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x44, 7];
    block.extend_from_slice(b"/health");
    block.extend_from_slice(&[0x41, 1, b'x']);
    let mut frame = vec![0, 0, block.len() as u8, 0x01, 0x05, 0, 0, 0, 1];
    frame.extend_from_slice(&block);
    frame
}

/// Connections that have nothing open when SIGTERM comes, whose clients then read nothing (so
/// they never acknowledge the `GOAWAY`'s ping), are dropped after a short grace: they neither
/// wait for the idle timeout nor hold the drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drops_http2_connections_with_nothing_open_whose_clients_read_nothing() {
    use tokio::io::AsyncWriteExt;

    let store = ServiceStore::new(Backend::Sqlite, "http2_idle_shutdown");
    let mut service = ServiceCommand::new()
        .store(&store)
        .env("RUST_LOG", "session_service=info")
        .env("SHUTDOWN_TIMEOUT_MS", "60000")
        .env("KEEPALIVE_TIMEOUT_MS", "60000")
        .env("HEADER_READ_TIMEOUT_MS", "60000")
        .start()
        .await;
    service.wait_ready().await;
    // One that never asked for anything, one whose request was answered.
    let mut silent = tokio::net::TcpStream::connect(service.addr())
        .await
        .expect("connect");
    silent
        .write_all(PREFACE_AND_SETTINGS)
        .await
        .expect("the preface");
    let mut served = tokio::net::TcpStream::connect(service.addr())
        .await
        .expect("connect");
    served
        .write_all(&[PREFACE_AND_SETTINGS, &get_health()].concat())
        .await
        .expect("a request");
    // Its answer has gone out (a hang detector: the metric counts answered requests).
    let client = client();
    let answered = async {
        loop {
            let metrics = client
                .get(service.url("/metrics"))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("metrics text");
            if metrics.contains("route=\"/health\"") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(LIMIT, answered)
        .await
        .expect("the raw request was answered");

    service.sigterm();
    assert_exits_without_waiting_for_the_drain(&mut service).await;
    drop((silent, served));
    store.cleanup().await;
}
