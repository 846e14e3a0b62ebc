//! HTTP/1.1 written by hand over a plain TCP socket, for what a client library will not do:
//! half-sent heads and bodies, bodies sent in parts around an event, responses never read.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One raw connection to the service at `host:port`.
pub struct RawConnection {
    stream: TcpStream,
    /// Everything read from the connection so far.
    pub received: Vec<u8>,
}

impl RawConnection {
    /// Connects to `addr` (`host:port`, or a base URL `http://host:port`) within 5 s.
    pub async fn connect(addr: &str) -> RawConnection {
        let addr = addr.trim_start_matches("http://");
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| panic!("connect to {addr} in time"))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_nodelay(true).expect("nodelay");
        RawConnection {
            stream,
            received: Vec::new(),
        }
    }

    /// Sends `bytes` as they are, and flushes them.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .expect("send on the raw connection");
        self.stream.flush().await.expect("flush the raw connection");
    }

    /// Like [`send`](Self::send), but `Err` when the connection no longer takes bytes.
    pub async fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Reads into [`received`](Self::received) until `done(received)` or the end of the stream,
    /// within `limit`; panics naming `what` when it takes longer or the read fails.
    pub async fn read_until(&mut self, limit: Duration, what: &str, done: impl Fn(&[u8]) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(&self.received) {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(left, self.stream.read(&mut chunk)).await {
                Err(_) => panic!(
                    "no complete {what} within {limit:?}; got so far: {:?}",
                    String::from_utf8_lossy(&self.received)
                ),
                Ok(Err(e)) => panic!(
                    "reading the {what} failed: {e}; got so far: {:?}",
                    String::from_utf8_lossy(&self.received)
                ),
                Ok(Ok(0)) => return,
                Ok(Ok(n)) => self.received.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads until the service closes the connection; `false` if that takes longer than `limit`.
    pub async fn read_to_end_within(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.stream.read_to_end(&mut self.received))
            .await
            .is_ok()
    }

    /// What was received, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.received).into_owned()
    }
}

/// The head of a `POST` to `path` with a JSON body of `content_length` bytes (`extra` are more
/// header lines, each ending in `\r\n`).
pub fn post_head(path: &str, content_length: usize, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {content_length}\r\n{extra}\r\n"
    )
}

/// Where the head of the response in `buf` ends (just after its blank line).
pub fn header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Whether `buf` holds a complete response head and the `Content-Length` bytes after it.
pub fn complete_response(buf: &[u8]) -> bool {
    let Some(end) = header_end(buf) else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(length) => buf.len() >= end + length,
        // Without a length the response ends with the connection.
        None => false,
    }
}
