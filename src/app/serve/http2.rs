//! HTTP/2 connections (prior knowledge): many requests and live streams at once on one
//! connection, each request in a task of its own. Nothing is buffered per request while a
//! live stream is quiet: frames are written to the connection's buffer when they are sent.
//!
//! A connection is idle while no request is open. It is closed (`GOAWAY`, then the requests in
//! flight finish) when it has been idle for `keepalive_timeout`, or when no request came within
//! `header_read_timeout` of being accepted.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use pin_project_lite::pin_project;
use tokio::sync::watch;
use tower::ServiceExt;

use super::{ConnectionLimits, Prefixed, STREAM_CLOSE_GRACE, is_live_stream, later};

/// The largest request head accepted (HPACK-decoded), as hyper's default.
const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// What a client may send on one request before the service reads it (flow control; the
/// protocol's default). Bodies are read as they come, up to `MAX_BODY_BYTES`.
const STREAM_WINDOW_BYTES: u32 = 64 * 1024;
/// What a client may send on the whole connection before the service reads it: bounds the
/// memory one connection's unread bodies can take.
const CONNECTION_WINDOW_BYTES: u32 = 256 * 1024;

/// The requests open on one connection, and since when none is.
struct Open {
    opened: Instant,
    requests: AtomicUsize,
    live: AtomicUsize,
    /// Whether a request has come (before the first, the header timeout applies).
    served: AtomicBool,
    /// When the last request closed, in microseconds since `opened`.
    idle_since: AtomicU64,
}

impl Open {
    fn idle_since(&self) -> Instant {
        self.opened + std::time::Duration::from_micros(self.idle_since.load(Ordering::SeqCst))
    }
}

/// One open request: from its head until its response's body is sent or dropped.
struct Request {
    open: Arc<Open>,
    live: bool,
}

impl Request {
    fn new(open: &Arc<Open>) -> Self {
        open.served.store(true, Ordering::SeqCst);
        open.requests.fetch_add(1, Ordering::SeqCst);
        Self {
            open: Arc::clone(open),
            live: false,
        }
    }

    fn live(mut self) -> Self {
        self.open.live.fetch_add(1, Ordering::SeqCst);
        self.live = true;
        self
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.live {
            self.open.live.fetch_sub(1, Ordering::SeqCst);
        }
        if self.open.requests.fetch_sub(1, Ordering::SeqCst) == 1 {
            let micros = self
                .open
                .opened
                .elapsed()
                .as_micros()
                .min(u128::from(u64::MAX)) as u64;
            self.open.idle_since.store(micros, Ordering::SeqCst);
        }
    }
}

pin_project! {
    /// A response's body, holding its request open until it is sent or dropped.
    struct Held {
        #[pin]
        body: axum::body::Body,
        request: Request,
    }
}

impl hyper::body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

pub(super) async fn serve_connection(
    io: Prefixed,
    accepted: Instant,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut closing: watch::Receiver<bool>,
) {
    let open = Arc::new(Open {
        opened: accepted,
        requests: AtomicUsize::new(0),
        live: AtomicUsize::new(0),
        served: AtomicBool::new(false),
        idle_since: AtomicU64::new(0),
    });
    let service_open = Arc::clone(&open);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // Counted from here: a request whose client resets it is dropped with its future.
        let request = Request::new(&service_open);
        req.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        async move {
            let response = router.oneshot(req.map(axum::body::Body::new)).await;
            response.map(|response| {
                let request = if is_live_stream(&response) {
                    request.live()
                } else {
                    request
                };
                response.map(|body| axum::body::Body::new(Held { body, request }))
            })
        }
    });
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_streams)
        .max_header_list_size(MAX_HEADER_LIST_BYTES)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let timer = tokio::time::sleep_until(later(accepted, limits.header_read_timeout).into());
    // Once closing: how long requests in flight have before the connection is dropped, checked
    // again at each expiry (a live stream, or nothing left, ends it; other requests may finish).
    let grace = tokio::time::sleep(STREAM_CLOSE_GRACE);
    tokio::pin!(timer, grace);
    let mut closing_seen = false;
    let mut shutting = false;
    loop {
        let mut shut_down = false;
        tokio::select! {
            biased;
            _ = connection.as_mut() => return,
            // Shutdown (or the server gone).
            _ = closing.changed(), if !closing_seen => {
                closing_seen = true;
                shut_down = true;
            }
            () = grace.as_mut(), if shutting => {
                if open.live.load(Ordering::SeqCst) > 0 || open.requests.load(Ordering::SeqCst) == 0 {
                    return;
                }
                grace.as_mut().reset(later(Instant::now(), STREAM_CLOSE_GRACE).into());
            }
            () = timer.as_mut(), if !shutting => {
                let now = Instant::now();
                if open.requests.load(Ordering::SeqCst) > 0 {
                    timer.as_mut().reset(later(now, limits.keepalive_timeout).into());
                } else {
                    let due = if open.served.load(Ordering::SeqCst) {
                        later(open.idle_since(), limits.keepalive_timeout)
                    } else {
                        later(accepted, limits.header_read_timeout)
                    };
                    if now >= due {
                        shut_down = true;
                    } else {
                        timer.as_mut().reset(due.into());
                    }
                }
            }
        }
        if shut_down && !shutting {
            shutting = true;
            connection.as_mut().graceful_shutdown();
            grace
                .as_mut()
                .reset(later(Instant::now(), STREAM_CLOSE_GRACE).into());
        }
    }
}
