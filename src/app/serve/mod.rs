//! The server loop (hyper's connection builders; `axum::serve` cannot bound header reads, idle
//! connections or the number of connections):
//! - at most `max_connections` open at once: past that the loop stops accepting, and new
//!   connections wait in the kernel's backlog; the ones being served are not affected;
//! - each connection speaks HTTP/1.1 (`http1.rs`), or HTTP/2 when it opens with HTTP/2's
//!   preface ("prior knowledge", `h2c`; `http2.rs`), where many requests and live streams share
//!   one connection;
//! - a connection must deliver its first request head (or HTTP/2's preface, then a first
//!   request) within `header_read_timeout` of being accepted, or it is closed;
//! - a connection idle for `keepalive_timeout` is closed, and so is one whose client has taken
//!   none of its answer for as long (HTTP/1.1: the socket refused every byte; HTTP/2: no answer
//!   moved, live streams aside);
//! - on shutdown: stop accepting, let in-flight requests finish, close idle connections and
//!   those whose first request head is not complete; a connection serving a live stream gets
//!   `STREAM_CLOSE_GRACE` to send the stream's end, then is closed, and so is one whose client
//!   has taken none of its answer for as long (a client that stopped reading would otherwise
//!   hold the drain).

mod http1;
mod http2;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub max_connections: usize,
    /// HTTP/2: requests (live streams included) open at once on one connection.
    pub http2_max_streams: u32,
}

/// How long a live stream's connection may take to finish after shutdown begins.
const STREAM_CLOSE_GRACE: Duration = Duration::from_millis(500);

/// What every HTTP/2 connection with prior knowledge begins with (RFC 9113, 3.4).
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

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

/// Which protocol the connection speaks, from its first bytes.
async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut closing: watch::Receiver<bool>,
) {
    let accepted = Instant::now();
    let deadline = later(accepted, limits.header_read_timeout);
    let sniffed = tokio::select! {
        sniffed = tokio::time::timeout_at(deadline.into(), sniff(&mut stream)) => sniffed,
        // Shutdown: a connection that has not said which protocol it speaks has asked nothing.
        _ = closing.wait_for(|closing| *closing) => return,
    };
    let Ok(Some(head)) = sniffed else {
        // Closed, failed or silent before a protocol could be told: nothing is in flight.
        return;
    };
    let http2 = head == HTTP2_PREFACE;
    let io = Prefixed::new(head, stream);
    // HTTP/2's state boxed: it is the larger, and an HTTP/1.1 connection's task would hold
    // room for it too.
    if http2 {
        Box::pin(http2::serve_connection(
            io, accepted, peer, router, limits, closing,
        ))
        .await;
    } else {
        http1::serve_connection(io, accepted, peer, router, limits, closing).await;
    }
}

/// Reads no more than HTTP/2's preface, and only as long as what came is a prefix of it: the
/// whole preface, or the first bytes of an HTTP/1.1 request (no method begins "PRI"). `None` if
/// the connection ends or fails first.
async fn sniff(stream: &mut (impl AsyncRead + Unpin)) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(HTTP2_PREFACE.len());
    let mut buf = [0u8; HTTP2_PREFACE.len()];
    while head.len() < HTTP2_PREFACE.len() && HTTP2_PREFACE.starts_with(&head) {
        let want = HTTP2_PREFACE.len() - head.len();
        match stream.read(&mut buf[..want]).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    Some(head)
}

/// The socket, with the bytes `sniff` read handed out again first.
struct Prefixed {
    head: Vec<u8>,
    read: usize,
    stream: TcpStream,
}

impl Prefixed {
    fn new(head: Vec<u8>, stream: TcpStream) -> Self {
        Self {
            head,
            read: 0,
            stream,
        }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.read < this.head.len() {
            let n = (this.head.len() - this.read).min(buf.remaining());
            buf.put_slice(&this.head[this.read..this.read + n]);
            this.read += n;
            if this.read == this.head.len() {
                this.head = Vec::new();
                this.read = 0;
                // With what has arrived after it, in this one read: hyper reserves a whole
                // buffer before each read, so a head that came in two reads would double its
                // buffer (8 KB more for every HTTP/1.1 connection, measured). An error or
                // nothing yet shows on the next read.
                if buf.remaining() > 0 {
                    let _ = Pin::new(&mut this.stream).poll_read(cx, buf);
                }
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
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

/// A moment in one connection's life, shared by its socket, its requests and the loop that times
/// it (they run on different tasks' polls): microseconds since the connection opened, in an
/// atomic. It only moves later.
struct Stamp {
    opened: Instant,
    micros: AtomicU64,
}

impl Stamp {
    /// The moment the connection opened at `opened`.
    fn new(opened: Instant) -> Self {
        Self {
            opened,
            micros: AtomicU64::new(0),
        }
    }

    /// Moves the moment to now (a clock read and an atomic `fetch_max`).
    fn touch(&self) {
        self.micros
            .fetch_max(micros_since(self.opened), Ordering::SeqCst);
    }

    fn at(&self) -> Instant {
        self.opened + Duration::from_micros(self.micros.load(Ordering::SeqCst))
    }
}

/// Microseconds from `opened` to now, as the connections' clocks keep them in atomics (below
/// `u64::MAX`, so that one more still fits).
fn micros_since(opened: Instant) -> u64 {
    opened.elapsed().as_micros().min(u128::from(u64::MAX - 1)) as u64
}

/// `by` after `at`; a timeout too long to add to a clock reading (the settings take any number of
/// milliseconds) is a century, which is never in practice.
fn later(at: Instant, by: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);
    at.checked_add(by.min(CENTURY)).unwrap_or(at)
}

/// Whether a response is a live stream's (its connection stays busy while it runs).
fn is_live_stream(response: &axum::response::Response) -> bool {
    response
        .extensions()
        .get::<crate::api::LiveStream>()
        .is_some()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio::io::AsyncWriteExt;

    use super::{HTTP2_PREFACE, later, sniff};

    #[test]
    fn a_timeout_too_long_for_the_clock_is_a_century() {
        let now = Instant::now();
        assert_eq!(
            later(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert!(later(now, Duration::MAX) >= now + Duration::from_secs(99 * 365 * 86_400));
        assert!(later(now, Duration::from_millis(u64::MAX)) > now);
    }

    /// What `sniff` reads from `chunks` written one by one, the writer then closing.
    async fn sniffed(chunks: &[&[u8]]) -> Option<Vec<u8>> {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        let writer = tokio::spawn(async move {
            for chunk in chunks {
                client.write_all(&chunk).await.unwrap();
                client.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            // Held open a little so that a sniff that wants more sees it wait, not end.
            tokio::time::sleep(Duration::from_millis(50)).await;
        });
        let head = sniff(&mut server).await;
        writer.await.unwrap();
        head
    }

    #[tokio::test]
    async fn the_preface_in_pieces_is_http2_and_nothing_after_it_is_read() {
        let mut with_more = HTTP2_PREFACE.to_vec();
        with_more.extend_from_slice(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00");
        let head = sniffed(&[b"P", b"RI * HTTP/2.0\r\n", &with_more[16..]]).await;
        assert_eq!(head.as_deref(), Some(HTTP2_PREFACE));
    }

    #[tokio::test]
    async fn http1_methods_are_told_apart_at_their_first_differing_byte() {
        for request in [
            &b"POST /sessions HTTP/1.1\r\n"[..],
            b"PATCH /sessions/a HTTP/1.1\r\n",
            b"PUT / HTTP/1.1\r\n",
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
            b"PRI / HTTP/1.1\r\n",
        ] {
            let head = sniffed(&[request]).await.unwrap();
            assert!(request.starts_with(&head), "{head:?}");
            assert!(!HTTP2_PREFACE.starts_with(&head), "{head:?}");
            assert!(head.len() <= HTTP2_PREFACE.len());
        }
    }

    #[tokio::test]
    async fn a_connection_closed_mid_preface_is_nothing() {
        assert_eq!(sniffed(&[b"PRI * HTTP"]).await, None);
        assert_eq!(sniffed(&[]).await, None);
    }
}
