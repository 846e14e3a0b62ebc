//! HTTP/2 with prior knowledge (h2c): one TCP connection carries requests and several live
//! streams at once; its idle and first-request timeouts close it as HTTP/1.1's do, and never
//! while a stream is open. The client is hyper's own HTTP/2 client over a socket the test opens,
//! so "one connection" is a fact of the test, not of a pool.

use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::{self, SendRequest};
use hyper::{Method, Request, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::support::StoreCtx;
use crate::support::app::{TestApp, spawn_app, spawn_app_with};

type Sender = SendRequest<Full<Bytes>>;

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// One HTTP/2 connection: its sender, and its driver (which ends when the connection does).
async fn connect(app: &TestApp) -> (Sender, JoinHandle<Result<(), hyper::Error>>) {
    let tcp = tokio::net::TcpStream::connect(addr(app))
        .await
        .expect("connect");
    let (send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .expect("HTTP/2 handshake");
    (send, tokio::spawn(conn))
}

async fn call(send: &mut Sender, method: Method, url: &str, body: Option<&Value>) -> (u16, Value) {
    let mut request = Request::builder().method(method).uri(url);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    send.ready().await.expect("connection ready");
    let response = send
        .send_request(request.body(Full::new(body)).expect("request"))
        .await
        .expect("response");
    assert_eq!(response.version(), Version::HTTP_2);
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A live stream on the connection: its body, read as text until a frame names `event`.
struct Live {
    body: hyper::body::Incoming,
    text: String,
}

impl Live {
    async fn open(send: &mut Sender, url: &str) -> Live {
        send.ready().await.expect("connection ready");
        let request = Request::get(url)
            .header("accept", "text/event-stream")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let response = send.send_request(request).await.expect("response");
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), Version::HTTP_2);
        Live {
            body: response.into_body(),
            text: String::new(),
        }
    }

    /// Reads until a whole frame containing `needle` has arrived.
    async fn until(&mut self, needle: &str) {
        let read = async {
            loop {
                if let Some(at) = self.text.find(needle)
                    && self.text[at..].contains("\n\n")
                {
                    return;
                }
                match self.body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            self.text.push_str(&String::from_utf8_lossy(data));
                        }
                    }
                    other => panic!("the stream ended before {needle:?}: {other:?}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} within 10 s; so far: {}", self.text));
    }
}

backend_test! { async fn one_http2_connection_carries_writes_reads_and_live_streams_at_once(s: StoreCtx) {
    let app = spawn_app(s).await;
    let (mut send, conn) = connect(&app).await;
    let (status, _) = call(
        &mut send,
        Method::POST,
        &app.url("/sessions"),
        Some(&json!({"sessionId": "call-1", "language": "en"})),
    )
    .await;
    assert_eq!(status, 201);

    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut live = Live::open(&mut send, &app.url("/sessions/call-1/events")).await;
        live.until("event: caught-up").await;
        streams.push(live);
    }
    // Written on the same connection while the three streams are open on it.
    let (status, event) = call(
        &mut send,
        Method::POST,
        &app.url("/sessions/call-1/events"),
        Some(&json!({"eventId": "e-1", "type": "bot_speech", "payload": {"text": "hello"},
                     "timestamp": "2026-12-07T10:00:00Z"})),
    )
    .await;
    assert_eq!(status, 201, "{event}");
    for live in &mut streams {
        live.until("\"eventId\":\"e-1\"").await;
    }
    let (status, page) = call(&mut send, Method::GET, &app.url("/sessions/call-1/events"), None).await;
    assert_eq!(status, 200);
    assert_eq!(page["events"][0]["eventId"], "e-1", "{page}");
    assert!(!conn.is_finished(), "the connection closed");
}}

/// How a connection ended, within `limit`.
async fn closed_within(conn: JoinHandle<Result<(), hyper::Error>>, limit: Duration) -> bool {
    tokio::time::timeout(limit, conn).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http2_connections_are_closed_when_idle_or_silent_but_not_while_a_stream_is_open() {
    crate::support::run_with_store(crate::support::Backend::Sqlite, |store| async {
        let s = <StoreCtx as crate::support::Fixture>::make(store).await;
        let app = spawn_app_with(
            s,
            &[
                ("HEADER_READ_TIMEOUT_MS", "500"),
                ("KEEPALIVE_TIMEOUT_MS", "1000"),
            ],
        )
        .await;
        app.create_session("call-1").await;

        // The preface and nothing else: closed by the header timeout.
        let mut silent = tokio::net::TcpStream::connect(addr(&app)).await.unwrap();
        silent
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match silent.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {} // the server's SETTINGS, then its GOAWAY
                }
            }
        })
        .await;
        assert!(
            ended.is_ok(),
            "a connection that sent no request is still open"
        );

        // A request, then nothing: closed by the idle timeout.
        let (mut send, conn) = connect(&app).await;
        let (status, _) = call(&mut send, Method::GET, &app.url("/health"), None).await;
        assert_eq!(status, 200);
        assert!(
            closed_within(conn, Duration::from_secs(5)).await,
            "an idle connection is still open"
        );

        // A quiet live stream keeps its connection through several idle timeouts.
        let (mut send, conn) = connect(&app).await;
        let mut live = Live::open(&mut send, &app.url("/sessions/call-1/events")).await;
        live.until("event: caught-up").await;
        tokio::time::sleep(Duration::from_millis(3000)).await;
        assert!(!conn.is_finished(), "the stream's connection was closed");
        // Not even winding down (a GOAWAY would refuse this request).
        let (status, _) = call(&mut send, Method::GET, &app.url("/health"), None).await;
        assert_eq!(status, 200);
        app.add_event("call-1", "e-1").await;
        live.until("\"eventId\":\"e-1\"").await;
        // Once the stream is gone the connection is idle again, and closed.
        drop(live);
        assert!(
            closed_within(conn, Duration::from_secs(5)).await,
            "the connection stayed open after its stream closed"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_http2_client_that_takes_no_answer_is_dropped_after_the_idle_timeout() {
    crate::support::run_with_store(crate::support::Backend::Sqlite, |store| async {
        let s = <StoreCtx as crate::support::Fixture>::make(store).await;
        let app = spawn_app_with(
            s,
            &[
                ("HEADER_READ_TIMEOUT_MS", "1000"),
                ("KEEPALIVE_TIMEOUT_MS", "1000"),
            ],
        )
        .await;
        // A window of zero: the answers' heads come, their bodies never can.
        let tcp = tokio::net::TcpStream::connect(addr(&app)).await.unwrap();
        let (mut send, conn) = http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(0)
            .handshake::<_, Full<Bytes>>(TokioIo::new(tcp))
            .await
            .expect("HTTP/2 handshake");
        let conn = tokio::spawn(conn);
        send.ready().await.unwrap();
        let request = Request::get(app.url("/health"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = send.send_request(request).await.expect("the answer's head");
        assert_eq!(response.status(), 200);
        // Requests coming and going beside it (each reset once its head came) do not hide it.
        let mut poke = send.clone();
        let url = app.url("/health");
        let poker = tokio::spawn(async move {
            while poke.ready().await.is_ok() {
                let request = Request::get(&url).body(Full::new(Bytes::new())).unwrap();
                if poke.send_request(request).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        assert!(
            closed_within(conn, Duration::from_secs(10)).await,
            "a connection whose answer could not move is still open"
        );
        poker.abort();
        drop(response);
        // The service goes on serving.
        let (status, _) = {
            let (mut send, _conn) = connect(&app).await;
            call(&mut send, Method::GET, &app.url("/health"), None).await
        };
        assert_eq!(status, 200);
    })
    .await;
}

/// A handler that takes longer than the idle timeout (a long poll of the change feed) is not an
/// answer that stopped moving: its connection, which also carries a live stream, stays open and
/// gets the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_poll_outlasting_the_idle_timeout_is_answered_over_http2() {
    crate::support::run_with_store(crate::support::Backend::Sqlite, |store| async {
        let s = <StoreCtx as crate::support::Fixture>::make(store).await;
        let app = spawn_app_with(
            s,
            &[
                ("HEADER_READ_TIMEOUT_MS", "500"),
                ("KEEPALIVE_TIMEOUT_MS", "500"),
            ],
        )
        .await;
        app.create_session("call-1").await;
        let (mut send, conn) = connect(&app).await;
        let mut live = Live::open(&mut send, &app.url("/sessions/call-1/events")).await;
        live.until("event: caught-up").await;
        let (status, page) =
            call(&mut send, Method::GET, &app.url("/changes?limit=100"), None).await;
        assert_eq!(status, 200, "{page}");
        let after = page["nextCursor"].as_str().expect("a cursor").to_owned();
        // Nothing changes for 2 s: the long poll waits, then answers with no change.
        let (status, polled) = call(
            &mut send,
            Method::GET,
            &app.url(&format!("/changes?after={after}&wait=2")),
            None,
        )
        .await;
        assert_eq!(status, 200, "{polled}");
        assert_eq!(polled["changes"], json!([]), "{polled}");
        assert!(!conn.is_finished(), "the connection was closed");
        drop(live);
    })
    .await;
}
