//! HTTP/2 connections (prior knowledge): many requests and live streams at once on one
//! connection, each request in a task of its own. Nothing is buffered per request while a
//! live stream is quiet: frames are written to the connection's buffer when they are sent.
//!
//! One timer per connection (its decisions are `open.rs`'s) closes it:
//! - when no request came within `header_read_timeout` of being accepted, or none has been open
//!   for `keepalive_timeout`: a `GOAWAY`, then what was sent has `STREAM_CLOSE_GRACE` to go;
//! - when an answer (live streams aside) has not moved for `keepalive_timeout`: a client that
//!   does not take it (a window left at zero) would otherwise hold the connection and its
//!   buffers. It is dropped. Live streams may stay quiet for as long as they like, as over
//!   HTTP/1.1, and handlers are bounded by the request timeout.
//! - on shutdown: a `GOAWAY`; what was asked for before it finishes, live streams get
//!   `STREAM_CLOSE_GRACE` to send their end, and requests begun after it are not waited for.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::watch;
use tower::ServiceExt;

use super::{ConnectionLimits, Prefixed, STREAM_CLOSE_GRACE, is_live_stream, later};

mod open;

use open::{Next, Open, Request, next, wound_down};

/// The largest request head accepted (HPACK-decoded), as hyper's default.
const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// What a client may send on one request before the service reads it (flow control; about the
/// protocol's default of 65,535). Bodies are read as they come, up to `MAX_BODY_BYTES`.
const STREAM_WINDOW_BYTES: u32 = 64 * 1024;
/// What a client may send on the whole connection before the service reads it: bounds the
/// memory one connection's unread bodies can take.
const CONNECTION_WINDOW_BYTES: u32 = 256 * 1024;
/// What one response may have buffered in the process, waiting for the client's window or the
/// socket (hyper's default, 400 KiB, would let 200 streams of a client that stops reading hold
/// 80 MB). One frame's worth.
const SEND_BUFFER_BYTES: usize = 16 * 1024;

pub(super) async fn serve_connection(
    io: Prefixed,
    accepted: Instant,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut closing: watch::Receiver<bool>,
) {
    let open = Arc::new(Open::new(accepted));
    let service_open = Arc::clone(&open);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // Counted from here: a request whose client resets it is dropped with its future.
        let request = Request::new(&service_open);
        req.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        async move {
            let response = router.oneshot(req.map(axum::body::Body::new)).await;
            response.map(|response| {
                let live = is_live_stream(&response);
                response.map(|body| axum::body::Body::new(request.answer(body, live)))
            })
        }
    });
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_streams)
        .max_header_list_size(MAX_HEADER_LIST_BYTES)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_send_buf_size(SEND_BUFFER_BYTES);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let timer = tokio::time::sleep_until(later(accepted, limits.header_read_timeout).into());
    // Once winding down, looked at every `STREAM_CLOSE_GRACE` (`wound_down`).
    let grace = tokio::time::sleep(STREAM_CLOSE_GRACE);
    tokio::pin!(timer, grace);
    let mut closing_seen = false;
    let mut since: Option<Instant> = None;
    loop {
        let mut wind_down = false;
        tokio::select! {
            biased;
            _ = connection.as_mut() => return,
            // Shutdown (or the server gone).
            _ = closing.changed(), if !closing_seen => {
                closing_seen = true;
                wind_down = true;
            }
            () = grace.as_mut(), if since.is_some() => {
                let now = Instant::now();
                if since.is_some_and(|at| wound_down(&open, at, &limits, now)) {
                    return;
                }
                grace.as_mut().reset(later(now, STREAM_CLOSE_GRACE).into());
            }
            () = timer.as_mut(), if since.is_none() => {
                let now = Instant::now();
                match next(&open, accepted, &limits, now) {
                    Next::At(at) => timer.as_mut().reset(at.into()),
                    Next::WindDown => wind_down = true,
                    Next::Drop => return,
                }
            }
        }
        if wind_down && since.is_none() {
            let now = Instant::now();
            since = Some(now);
            open.wind_down();
            connection.as_mut().graceful_shutdown();
            grace.as_mut().reset(later(now, STREAM_CLOSE_GRACE).into());
        }
    }
}
