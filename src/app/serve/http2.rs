//! HTTP/2 connections (prior knowledge): many requests and live streams at once on one
//! connection, each request in a task of its own. Nothing is buffered per request while a
//! live stream is quiet: frames are written to the connection's buffer when they are sent.
//!
//! One timer per connection (`next`) closes it:
//! - when no request came within `header_read_timeout` of being accepted, or none has been open
//!   for `keepalive_timeout` (gracefully: `GOAWAY`, then what was sent may still be read);
//! - when requests other than live streams are open and none of them has moved (a response
//!   made, a frame of its body taken) for `keepalive_timeout`: a client that does not take its
//!   answers (a window left at zero) would otherwise hold the connection and its buffers. It is
//!   dropped. Live streams may stay quiet for as long as they like, as over HTTP/1.1.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

use super::{ConnectionLimits, Prefixed, STREAM_CLOSE_GRACE, Stamp, is_live_stream, later};

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

/// The requests open on one connection, and when one last moved.
struct Open {
    requests: AtomicUsize,
    live: AtomicUsize,
    /// Whether a request has come (before the first, the header timeout applies).
    served: AtomicBool,
    /// When a request last began, was answered, had a frame of its body taken or ended (live
    /// streams' frames aside).
    moved: Stamp,
}

impl Open {
    fn new(opened: Instant) -> Self {
        Self {
            requests: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            moved: Stamp::new(opened),
        }
    }

    fn touch(&self) {
        self.moved.touch();
    }

    fn moved(&self) -> Instant {
        self.moved.at()
    }
}

/// What the connection's timer does next.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Look again then.
    At(Instant),
    /// Idle (or silent) too long: `GOAWAY`, and let the client read what was sent.
    WindDown,
    /// Requests that have not moved for too long: drop the connection.
    Drop,
}

/// The timer's decision at `now`, before any shutdown.
fn next(open: &Open, accepted: Instant, limits: &ConnectionLimits, now: Instant) -> Next {
    let requests = open.requests.load(Ordering::SeqCst);
    let live = open.live.load(Ordering::SeqCst);
    let (due, then) = if requests == 0 {
        let due = if open.served.load(Ordering::SeqCst) {
            later(open.moved(), limits.keepalive_timeout)
        } else {
            later(accepted, limits.header_read_timeout)
        };
        (due, Next::WindDown)
    } else if requests > live {
        (later(open.moved(), limits.keepalive_timeout), Next::Drop)
    } else {
        // Live streams only: busy, however quiet.
        return Next::At(later(now, limits.keepalive_timeout));
    };
    if now >= due { then } else { Next::At(due) }
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
        open.touch();
        Self {
            open: Arc::clone(open),
            live: false,
        }
    }

    /// Answered: a live stream's from now on, or not.
    fn answered(mut self, live: bool) -> Self {
        if live {
            self.open.live.fetch_add(1, Ordering::SeqCst);
            self.live = true;
        }
        self.open.touch();
        self
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        // Moved first: the timer that sees no request open must see this time.
        self.open.touch();
        if self.live {
            self.open.live.fetch_sub(1, Ordering::SeqCst);
        }
        self.open.requests.fetch_sub(1, Ordering::SeqCst);
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
        let this = self.project();
        let polled = this.body.poll_frame(cx);
        if polled.is_ready() && !this.request.live {
            this.request.open.touch();
        }
        polled
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
                let request = request.answered(is_live_stream(&response));
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
            connection.as_mut().graceful_shutdown();
            grace.as_mut().reset(later(now, STREAM_CLOSE_GRACE).into());
        }
    }
}

/// Whether a connection winding down since `since` (a `GOAWAY` sent) is to be dropped now:
/// - requests other than live streams may finish, unless they stopped moving;
/// - then live streams, which end by themselves on shutdown, have had `STREAM_CLOSE_GRACE`
///   (a client that stopped reading would hold the drain);
/// - with nothing open, the client has `keepalive_timeout` to read what was sent.
fn wound_down(open: &Open, since: Instant, limits: &ConnectionLimits, now: Instant) -> bool {
    let requests = open.requests.load(Ordering::SeqCst);
    let live = open.live.load(Ordering::SeqCst);
    if requests > live {
        now >= later(open.moved(), limits.keepalive_timeout)
    } else if live > 0 {
        true
    } else {
        now >= later(since, limits.keepalive_timeout)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use super::{ConnectionLimits, Next, Open, Request, next, wound_down};

    const LIMITS: ConnectionLimits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(10),
        keepalive_timeout: Duration::from_secs(75),
        max_connections: 10,
        http2_max_streams: 200,
    };

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_connection_without_a_request_winds_down_after_the_header_timeout() {
        let accepted = Instant::now();
        let open = Open::new(accepted);
        assert_eq!(
            next(&open, accepted, &LIMITS, accepted + secs(1)),
            Next::At(accepted + secs(10))
        );
        assert_eq!(
            next(&open, accepted, &LIMITS, accepted + secs(10)),
            Next::WindDown
        );
    }

    #[test]
    fn an_idle_connection_winds_down_after_the_keepalive_timeout_from_its_last_request() {
        let accepted = Instant::now();
        let open = Arc::new(Open::new(accepted));
        drop(Request::new(&open).answered(false));
        let idle_from = open.moved();
        assert!(idle_from >= accepted);
        assert_eq!(
            next(&open, accepted, &LIMITS, idle_from + secs(74)),
            Next::At(idle_from + secs(75))
        );
        assert_eq!(
            next(&open, accepted, &LIMITS, idle_from + secs(75)),
            Next::WindDown
        );
    }

    #[test]
    fn live_streams_keep_a_connection_however_quiet_and_a_stalled_answer_drops_it() {
        let accepted = Instant::now();
        let open = Arc::new(Open::new(accepted));
        let stream = Request::new(&open).answered(true);
        let far = accepted + secs(3600);
        assert_eq!(
            next(&open, accepted, &LIMITS, far),
            Next::At(far + secs(75))
        );
        // An answer beside it that the client does not take.
        let stalled = Request::new(&open).answered(false);
        let moved = open.moved();
        assert_eq!(
            next(&open, accepted, &LIMITS, moved + secs(1)),
            Next::At(moved + secs(75))
        );
        assert_eq!(next(&open, accepted, &LIMITS, moved + secs(75)), Next::Drop);
        drop(stalled);
        assert_eq!(open.requests.load(Ordering::SeqCst), 1);
        drop(stream);
        assert_eq!(open.live.load(Ordering::SeqCst), 0);
        assert_eq!(open.requests.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn winding_down_waits_for_answers_then_gives_streams_the_grace_then_the_client_its_reads() {
        let accepted = Instant::now();
        let open = Arc::new(Open::new(accepted));
        let stream = Request::new(&open).answered(true);
        let answer = Request::new(&open);
        let since = open.moved();
        // An answer in the making: waited for, unless it stops moving.
        assert!(!wound_down(&open, since, &LIMITS, since + secs(1)));
        assert!(wound_down(&open, since, &LIMITS, since + secs(75)));
        drop(answer);
        // Only a live stream left: it has had its grace.
        assert!(wound_down(&open, since, &LIMITS, since + secs(1)));
        drop(stream);
        // Nothing open: the client may read what was sent, for a while.
        assert!(!wound_down(&open, since, &LIMITS, since + secs(1)));
        assert!(wound_down(&open, since, &LIMITS, since + secs(75)));
    }
}
