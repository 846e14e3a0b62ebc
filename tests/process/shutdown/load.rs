//! The load during a graceful shutdown: keep-alive clients posting events, how each request
//! ended, and one request sent by hand in two halves around SIGTERM.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client;
use crate::support::raw_http::{RawConnection, complete_response, header_end, post_head};

/// A bound on one client's requests (SIGTERM normally ends them far earlier).
const MAX_OPS_PER_CLIENT: usize = 20_000;

/// How a request without a response failed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// No connection could be made (the listener is gone).
    Refused,
    /// The connection was closed or reset before a complete response.
    Closed,
    /// Anything else (a timeout, a protocol error): never acceptable.
    Other(String),
}

fn classify(e: &reqwest::Error) -> Failure {
    if e.is_timeout() {
        return Failure::Other(format!("timeout: {e:?}"));
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionRefused => return Failure::Refused,
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
                    return Failure::Closed;
                }
                _ => {}
            }
        }
        if let Some(h) = cause.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled() || h.is_closed())
        {
            return Failure::Closed;
        }
        source = cause.source();
    }
    Failure::Other(format!("{e:?}"))
}

/// One event request: when it was started and what came of it.
#[derive(Debug)]
pub struct Attempt {
    pub event_id: String,
    pub started: Instant,
    pub outcome: Result<(u16, Value), Failure>,
}

#[derive(Default)]
pub struct Shared {
    /// Set just before SIGTERM is sent.
    pub sigterm_at: OnceLock<Instant>,
    /// Tells the clients to stop (a bound; the service going away normally stops them).
    pub stop: AtomicBool,
    pub acks: AtomicUsize,
    pub attempts: Mutex<Vec<Attempt>>,
}

/// Why a client loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// A request failed after SIGTERM: the service is gone.
    ServiceGone,
    Stopped,
    MaxOps,
}

async fn post_event(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
) -> Result<(u16, Value), Failure> {
    crate::post_json(client, url, body)
        .await
        .map_err(|e| classify(&e))
}

/// Posts unique events one after another over one keep-alive connection until a request fails
/// after SIGTERM.
pub async fn client_loop(c: usize, url: String, shared: Arc<Shared>) -> Ended {
    let client = client();
    for i in 0..MAX_OPS_PER_CLIENT {
        if shared.stop.load(Ordering::Relaxed) {
            return Ended::Stopped;
        }
        let event_id = format!("c{c}-e{i}");
        let kind = ["user_speech", "bot_speech", "system"][i % 3];
        let body = json!({
            "eventId": event_id,
            "type": kind,
            "payload": {"client": c, "i": i, "text": format!("utterance {i} of client {c}")},
        });
        let started = Instant::now();
        let outcome = post_event(&client, &url, &body).await;
        let failed = outcome.is_err();
        if matches!(outcome, Ok((200 | 201, _))) {
            shared.acks.fetch_add(1, Ordering::Relaxed);
        }
        shared
            .attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Attempt {
                event_id,
                started,
                outcome,
            });
        if failed {
            if shared.sigterm_at.get().is_some() {
                return Ended::ServiceGone;
            }
            // A failure before SIGTERM fails the test later; do not spin on it meanwhile.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ended::MaxOps
}

/// A request whose headers and first half of the body are sent (and seen by the handler)
/// before SIGTERM.
pub struct SlowRequest {
    connection: RawConnection,
    rest: Vec<u8>,
    pub event_id: String,
}

impl SlowRequest {
    /// Sends the head with `Expect: 100-continue` and waits for `100 Continue`, which hyper only
    /// sends once the handler starts reading the body: from then on the request is in flight.
    /// Then sends half of the body.
    pub async fn begin(addr: &str, session: &str) -> SlowRequest {
        let event_id = "slow-in-flight".to_owned();
        let body = json!({
            "eventId": event_id,
            "type": "system",
            "payload": {"note": "sent in two halves around SIGTERM", "padding": "p".repeat(200)},
        })
        .to_string();
        let (first, rest) = body.as_bytes().split_at(body.len() / 2);
        let head = post_head(
            &format!("/sessions/{session}/events"),
            body.len(),
            "Expect: 100-continue\r\n",
        );
        let mut connection = RawConnection::connect(addr).await;
        connection.send(head.as_bytes()).await;
        connection
            .read_until(Duration::from_secs(10), "100 Continue", |b| {
                header_end(b).is_some()
            })
            .await;
        let interim = connection.text();
        assert!(
            interim.starts_with("HTTP/1.1 100")
                && header_end(&connection.received) == Some(connection.received.len()),
            "expected exactly `100 Continue` before the body, got {interim:?}"
        );
        connection.received.clear();
        connection.send(first).await;
        SlowRequest {
            connection,
            rest: rest.to_vec(),
            event_id,
        }
    }

    /// Sends the rest of the body and returns the status line and body of the response.
    pub async fn finish(mut self) -> (String, Value, String) {
        self.connection
            .try_send(&self.rest)
            .await
            .expect("send the rest of the body after SIGTERM: the connection was not kept open");
        self.connection
            .read_until(
                Duration::from_secs(15),
                "response to the slow request",
                complete_response,
            )
            .await;
        let buf = &self.connection.received;
        let text = self.connection.text();
        let status_line = text.lines().next().unwrap_or_default().to_owned();
        let body = header_end(buf)
            .and_then(|end| serde_json::from_slice(&buf[end..]).ok())
            .unwrap_or(Value::Null);
        (status_line, body, text)
    }
}
