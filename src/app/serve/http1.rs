//! HTTP/1.1 connections: one request at a time, its phase (awaiting a head, in a request, idle,
//! streaming) timed by one timer per connection (`serve_connection`).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tower::ServiceExt;

use super::{
    ConnectionLimits, Prefixed, STREAM_CLOSE_GRACE, Stamp, is_live_stream, later, micros_since,
};

/// Held by a live stream's body while hyper sends it: the connection is busy (no idle timer
/// runs) until the body is dropped, and then it is idle.
struct Streaming {
    conn: Arc<Conn>,
}

impl Drop for Streaming {
    fn drop(&mut self) {
        self.conn.enter(Phase::Streaming, Phase::Idle);
        self.conn.activity.notify_one();
    }
}

/// Where a connection is between requests, as its reads and the service see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    AwaitingHead = 0,
    InRequest = 1,
    Idle = 2,
    /// Sending a live stream: busy until its body ends, however long that takes.
    Streaming = 3,
}

impl Phase {
    fn from_u8(n: u8) -> Phase {
        match n {
            0 => Phase::AwaitingHead,
            1 => Phase::InRequest,
            2 => Phase::Idle,
            _ => Phase::Streaming,
        }
    }
}

/// One connection's phase and when it entered it, shared by its socket, its requests and the
/// loop that times it (an atomic, as they run on different tasks' polls). Phase changes cost
/// two atomic stores and a clock read; the loop is not woken for them (see `serve_connection`).
struct Conn {
    phase: AtomicU8,
    /// When the phase began.
    since: Stamp,
    /// Since when the socket has refused the answer's bytes, if it does.
    stalled: Stalled,
    /// Wakes the loop when a live stream ends (its end may be what a shutdown waits for).
    activity: tokio::sync::Notify,
}

impl Conn {
    /// A connection accepted at `opened`, awaiting its first request head since then.
    fn new(opened: Instant) -> Self {
        Self {
            phase: AtomicU8::new(Phase::AwaitingHead as u8),
            since: Stamp::new(opened),
            stalled: Stalled::new(opened),
            activity: tokio::sync::Notify::new(),
        }
    }

    fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::SeqCst))
    }

    /// Puts the connection in `to`, whatever it was in.
    fn set(&self, to: Phase) {
        self.phase.store(to as u8, Ordering::SeqCst);
    }

    /// Moves from `from` to `to` (if the connection is in `from`), noting when.
    fn enter(&self, from: Phase, to: Phase) -> bool {
        let moved = self
            .phase
            .compare_exchange(from as u8, to as u8, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if moved {
            self.since.touch();
        }
        moved
    }

    /// When the current phase began.
    fn since(&self) -> Instant {
        self.since.at()
    }
}

/// Since when a connection's socket has refused the answer's bytes (its client takes none of
/// them), if it does: microseconds since the connection opened, plus one, in an atomic; 0 while
/// the socket takes what it is given. A client that reads, however slowly, clears it.
struct Stalled {
    opened: Instant,
    micros: AtomicU64,
}

impl Stalled {
    fn new(opened: Instant) -> Self {
        Self {
            opened,
            micros: AtomicU64::new(0),
        }
    }

    /// A write found the socket full: the stall begins now, unless it began before.
    fn refused(&self) {
        let micros = micros_since(self.opened) + 1;
        let _ = self
            .micros
            .compare_exchange(0, micros, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// A write went through (one relaxed load when nothing was refused).
    fn taken(&self) {
        if self.micros.load(Ordering::Relaxed) != 0 {
            self.micros.store(0, Ordering::SeqCst);
        }
    }

    fn since(&self) -> Option<Instant> {
        match self.micros.load(Ordering::SeqCst) {
            0 => None,
            micros => Some(self.opened + Duration::from_micros(micros - 1)),
        }
    }
}

/// The socket, noting when a new request starts arriving on an idle connection, and when the
/// client stops taking the answer.
struct Watched {
    stream: Prefixed,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.enter(Phase::Idle, Phase::AwaitingHead);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        match polled {
            Poll::Pending => self.conn.stalled.refused(),
            Poll::Ready(_) => self.conn.stalled.taken(),
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

pub(super) async fn serve_connection(
    stream: Prefixed,
    accepted: Instant,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut closing: watch::Receiver<bool>,
) {
    let conn = Arc::new(Conn::new(accepted));
    let io = TokioIo::new(Watched {
        stream,
        conn: Arc::clone(&conn),
    });
    let service_conn = Arc::clone(&conn);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        service_conn.set(Phase::InRequest);
        req.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        let conn = Arc::clone(&service_conn);
        async move {
            let response = router.oneshot(req.map(axum::body::Body::new)).await;
            let response = response.map(|response| track_stream(response, &conn));
            // The head of the next request may already be buffered; hyper reads it next.
            conn.enter(Phase::InRequest, Phase::Idle);
            response
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // Header reads and idle keep-alive are timed by the loop below instead: hyper's own
        // header timer would also run while a kept-alive connection is idle.
        .header_read_timeout(None)
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(connection);
    // One timer for the connection's life, not one per request: it is never later than the
    // deadline of the phase the connection is in, and when it fires it checks that phase and
    // sets itself again. A phase change therefore needs no wakeup: while idle or busy the timer
    // looks again at least every `tick` (the shorter timeout), so a request head that begins to
    // arrive is seen in time for its own deadline, which is then kept exactly.
    let tick = limits.header_read_timeout.min(limits.keepalive_timeout);
    let timer = tokio::time::sleep_until(later(accepted, limits.header_read_timeout).into());
    // Started when shutdown begins: how long a live stream may take to send its end.
    let stream_grace = tokio::time::sleep(STREAM_CLOSE_GRACE);
    tokio::pin!(timer, stream_grace);
    let mut closing_seen = false;
    loop {
        tokio::select! {
            // The connection first: it is what is ready on almost every wakeup.
            biased;
            _ = connection.as_mut() => return,
            // Shutdown (or the server gone): finish the request in flight, then close.
            _ = closing.changed(), if !closing_seen => {
                // A request head not yet complete is no request in flight.
                if conn.phase() == Phase::AwaitingHead {
                    return;
                }
                closing_seen = true;
                stream_grace.as_mut().reset(later(Instant::now(), STREAM_CLOSE_GRACE).into());
                connection.as_mut().graceful_shutdown();
            }
            // A live stream ended: look at the phase again.
            () = conn.activity.notified() => {}
            // Shutting down, looked at every `STREAM_CLOSE_GRACE`: a live stream that has had
            // its grace, or an answer whose client has taken none of it for as long (its last
            // bytes may wait in hyper's buffer, the phase then idle), is closed. A request begun
            // since, which a graceful shutdown lets finish, is waited for.
            () = stream_grace.as_mut(), if closing_seen => {
                let now = Instant::now();
                let stuck = conn
                    .stalled
                    .since()
                    .is_some_and(|since| now >= later(since, STREAM_CLOSE_GRACE));
                if stuck || conn.phase() == Phase::Streaming {
                    return;
                }
                stream_grace.as_mut().reset(later(now, STREAM_CLOSE_GRACE).into());
            }
            () = timer.as_mut() => {
                let now = Instant::now();
                // A client that has taken none of its answer for as long as an idle connection
                // may stay: dropped, whatever the phase (the timer looks at least every `tick`
                // while an answer is on its way).
                if conn
                    .stalled
                    .since()
                    .is_some_and(|since| now >= later(since, limits.keepalive_timeout))
                {
                    return;
                }
                let next = match conn.phase() {
                    Phase::AwaitingHead => {
                        let due = later(conn.since(), limits.header_read_timeout);
                        // A request head that did not arrive in time: nothing is in flight.
                        if now >= due {
                            return;
                        }
                        due
                    }
                    Phase::Idle => {
                        let due = later(conn.since(), limits.keepalive_timeout);
                        if now >= due {
                            connection.as_mut().graceful_shutdown();
                            later(now, tick)
                        } else {
                            due.min(later(now, tick))
                        }
                    }
                    Phase::InRequest | Phase::Streaming => later(now, tick),
                };
                timer.as_mut().reset(next.into());
            }
        }
    }
}

/// A live stream's response, with the connection marked busy until its body is dropped.
fn track_stream(response: axum::response::Response, conn: &Arc<Conn>) -> axum::response::Response {
    use futures_util::StreamExt;
    if !is_live_stream(&response) {
        return response;
    }
    conn.set(Phase::Streaming);
    let guard = Streaming {
        conn: Arc::clone(conn),
    };
    response.map(|body| {
        axum::body::Body::from_stream(body.into_data_stream().map(move |chunk| {
            let _ = &guard;
            chunk
        }))
    })
}
