//! The HTTP/1.1 server loop (hyper's connection builder; `axum::serve` cannot bound header reads,
//! idle keep-alive or the number of connections):
//! - at most `max_connections` open at once: past that the loop stops accepting, and new
//!   connections wait in the kernel's backlog; the ones being served are not affected;
//! - a connection must deliver a complete request head within `header_read_timeout` of its
//!   first byte (or of being accepted), or it is closed;
//! - a connection idle between requests for `keepalive_timeout` is closed;
//! - on shutdown: stop accepting, let in-flight requests finish, close idle connections; a
//!   connection serving a live stream gets `STREAM_CLOSE_GRACE` to send the stream's end, then is
//!   closed (a client that stopped reading would otherwise hold the drain).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub max_connections: usize,
}

/// How long a live stream's connection may take to finish after shutdown begins.
const STREAM_CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Held by a live stream's body while hyper sends it: the connection is busy (no idle timer
/// runs) until the body is dropped, and then it is idle.
struct Streaming {
    phase: Arc<AtomicU8>,
    activity: Arc<tokio::sync::Notify>,
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self
            .phase
            .compare_exchange(STREAMING, IDLE, Ordering::SeqCst, Ordering::SeqCst);
        self.activity.notify_one();
    }
}

/// Where a connection is between requests, as its reads and the service see it.
const AWAITING_HEAD: u8 = 0;
const IN_REQUEST: u8 = 1;
const IDLE: u8 = 2;
/// Sending a live stream: busy until its body ends, however long that takes.
const STREAMING: u8 = 3;

/// The socket, noting when a new request starts arriving on an idle connection.
struct Watched {
    stream: TcpStream,
    phase: Arc<AtomicU8>,
    activity: Arc<tokio::sync::Notify>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before
            && self
                .phase
                .compare_exchange(IDLE, AWAITING_HEAD, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            self.activity.notify_one();
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
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves `router` on `listener` until `stop` resolves, then stops accepting and waits for the
/// open connections (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()> + Send,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (closing_tx, closing_rx) = watch::channel(false);
    tokio::pin!(stop);
    let mut last_accept_warning: Option<std::time::Instant> = None;
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, or a connection that died in the backlog: wait a
                // little rather than spin; the connections being served go on.
                if last_accept_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(error = %e, "accept failed (logged at most once a second)");
                    last_accept_warning = Some(std::time::Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let closing = closing_rx.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, router, limits, closing).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    // Every connection holds a permit until it ends.
    let _ = permits
        .acquire_many(limits.max_connections as u32)
        .await
        .map(|all| all.forget());
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut closing: watch::Receiver<bool>,
) {
    let phase = Arc::new(AtomicU8::new(AWAITING_HEAD));
    let activity = Arc::new(tokio::sync::Notify::new());
    let io = TokioIo::new(Watched {
        stream,
        phase: Arc::clone(&phase),
        activity: Arc::clone(&activity),
    });
    let service_phase = Arc::clone(&phase);
    let service_activity = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        service_phase.store(IN_REQUEST, Ordering::SeqCst);
        req.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        let phase = Arc::clone(&service_phase);
        let activity = Arc::clone(&service_activity);
        async move {
            let response = router.oneshot(req.map(axum::body::Body::new)).await;
            let response = response.map(|response| track_stream(response, &phase, &activity));
            // The head of the next request may already be buffered; hyper reads it next.
            let _ = phase.compare_exchange(IN_REQUEST, IDLE, Ordering::SeqCst, Ordering::SeqCst);
            activity.notify_one();
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
    let mut closing_seen = false;
    loop {
        let streaming = || phase.load(Ordering::SeqCst) == STREAMING;
        let stream_grace = async {
            if closing_seen && streaming() {
                tokio::time::sleep(STREAM_CLOSE_GRACE).await;
            } else {
                std::future::pending().await
            }
        };
        let deadline = match phase.load(Ordering::SeqCst) {
            AWAITING_HEAD => Some(limits.header_read_timeout),
            IDLE => Some(limits.keepalive_timeout),
            _ => None,
        };
        let timer = async {
            match deadline {
                Some(after) => tokio::time::sleep(after).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = closing.changed(), if !closing_seen => {
                closing_seen = true;
                connection.as_mut().graceful_shutdown();
            }
            () = activity.notified() => {}
            // The stream's end could not be sent in time (its client is not reading): close.
            () = stream_grace => if streaming() { return },
            () = timer => {
                match phase.load(Ordering::SeqCst) {
                    // A request head that did not arrive in time: nothing is in flight.
                    AWAITING_HEAD => return,
                    IDLE => {
                        connection.as_mut().graceful_shutdown();
                    }
                    _ => {}
                }
            }
        }
    }
}

/// A live stream's response, with the connection marked busy until its body is dropped.
fn track_stream(
    response: axum::response::Response,
    phase: &Arc<AtomicU8>,
    activity: &Arc<tokio::sync::Notify>,
) -> axum::response::Response {
    use futures_util::StreamExt;
    if response
        .extensions()
        .get::<crate::api::LiveStream>()
        .is_none()
    {
        return response;
    }
    phase.store(STREAMING, Ordering::SeqCst);
    let guard = Streaming {
        phase: Arc::clone(phase),
        activity: Arc::clone(activity),
    };
    response.map(|body| {
        axum::body::Body::from_stream(body.into_data_stream().map(move |chunk| {
            let _ = &guard;
            chunk
        }))
    })
}
