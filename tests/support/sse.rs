//! A client for the live-transcript stream (`GET /sessions/{id}/events` with `Accept:
//! text/event-stream`): a request builder ([`SseRequest`]) that opens a stream with an optional
//! `Last-Event-ID`, `after` cursor and bearer key, and a reader ([`SseStream`]) that parses the
//! server-sent-events framing incrementally from reqwest's byte stream (`id`, `event`, `data`,
//! `retry`, comments; LF, CRLF or CR line ends; frames split anywhere across chunks). It works
//! against any base URL, so the in-process [`TestApp`] and the real binary
//! ([`super::process::ServiceProcess`]) share it.
//!
//! ```ignore
//! let mut stream = app.sse("call-1").last_event_id("3").open().await;
//! stream.expect_retry().await;
//! let frames = stream.until_event("caught-up").await;
//! ```
//!
//! Every wait has a limit ([`FRAME_LIMIT`] unless given): a hang detector, never a timing
//! assertion.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use serde_json::Value;

use super::app::{Reply, TestApp};

/// How long the response head of a stream may take: a hang detector.
pub const OPEN_LIMIT: Duration = Duration::from_secs(20);
/// How long the helpers wait for one frame (or the end) unless told otherwise: a hang detector,
/// generous enough for a slow MongoDB-compatible server and a poll interval of a second.
pub const FRAME_LIMIT: Duration = Duration::from_secs(20);

/// A client for streams: no overall request timeout (a stream lasts as long as it lasts), a
/// connect timeout so that a dead service fails fast.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("http client for streams")
}

// ---------------------------------------------------------------------------------------------
// frames

/// One server-sent-events frame: the fields of the lines up to a blank line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    /// The `data` lines joined with `\n`; `None` without any.
    pub data: Option<String>,
    pub retry: Option<String>,
    /// The text of every comment line (`:text` or `: text`), without the colon and one leading
    /// space.
    pub comments: Vec<String>,
    /// Lines with any other field name, as (field, value).
    pub other: Vec<(String, String)>,
}

impl Frame {
    /// Whether this frame is an `event: name` frame.
    pub fn is(&self, name: &str) -> bool {
        self.event.as_deref() == Some(name)
    }

    /// Whether this frame holds only comments (a keepalive).
    pub fn is_comment_only(&self) -> bool {
        !self.comments.is_empty()
            && self.id.is_none()
            && self.event.is_none()
            && self.data.is_none()
            && self.retry.is_none()
            && self.other.is_empty()
    }

    /// The `data` parsed as JSON; panics if there is none or it is not JSON.
    pub fn json(&self) -> Value {
        let data = self
            .data
            .as_deref()
            .unwrap_or_else(|| panic!("the frame has no data: {self:?}"));
        serde_json::from_str(data)
            .unwrap_or_else(|e| panic!("the frame's data is not JSON ({e}): {self:?}"))
    }

    /// The `id` as a seq; panics if there is none or it is not a number.
    pub fn id_seq(&self) -> u64 {
        self.id
            .as_deref()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("the frame has no numeric id: {self:?}"))
    }

    /// An `event: event` frame checked and taken apart: its `id` is its event's `seq`. Returns
    /// the event JSON.
    pub fn event_json(&self) -> Value {
        assert!(self.is("event"), "not an `event: event` frame: {self:?}");
        let event = self.json();
        assert_eq!(
            Some(self.id_seq()),
            event["seq"].as_u64(),
            "the frame's id is not its event's seq: {self:?}"
        );
        event
    }

    /// The `seq` of an `event: caught-up` frame's data.
    pub fn caught_up_seq(&self) -> u64 {
        assert!(self.is("caught-up"), "not a caught-up frame: {self:?}");
        self.json()["seq"]
            .as_u64()
            .unwrap_or_else(|| panic!("caught-up without a numeric seq: {self:?}"))
    }
}

/// The events of the `event: event` frames among `frames`, checked ([`Frame::event_json`]).
pub fn events_of(frames: &[Frame]) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| f.is("event"))
        .map(Frame::event_json)
        .collect()
}

/// The seqs of the `event: event` frames among `frames`.
pub fn seqs_of(frames: &[Frame]) -> Vec<u64> {
    events_of(frames)
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect()
}

/// The frame names (`event` field, `retry`, or `comment`) of `frames`, for failure messages
/// and sequence assertions.
pub fn names_of(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .map(|f| match (&f.event, &f.retry) {
            (Some(name), _) => name.clone(),
            (None, Some(_)) => "retry".to_owned(),
            (None, None) if f.is_comment_only() => "comment".to_owned(),
            (None, None) => format!("{f:?}"),
        })
        .collect()
}

/// What the next read of a stream found.
#[derive(Debug)]
pub enum Next {
    Frame(Frame),
    /// The server ended the response: `Ok` for a clean end, else the transport error.
    Ended(Result<(), String>),
    /// Nothing complete arrived within the limit.
    TimedOut,
}

/// The incremental parser: bytes in, frames out.
#[derive(Default)]
struct Parser {
    buffer: Vec<u8>,
    /// The frame whose lines have been read so far.
    current: Frame,
    /// Whether `current` has had any line.
    started: bool,
}

impl Parser {
    fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete line, without its line end. A CR at the very end of the buffer waits
    /// for the next byte (it may be the first half of a CRLF) unless `at_end`.
    fn line(&mut self, at_end: bool) -> Option<String> {
        let end = self.buffer.iter().position(|&b| b == b'\n' || b == b'\r')?;
        let skip = match self.buffer[end] {
            b'\r' if end + 1 == self.buffer.len() && !at_end => return None,
            b'\r' if self.buffer.get(end + 1) == Some(&b'\n') => 2,
            _ => 1,
        };
        let line = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
        self.buffer.drain(..end + skip);
        Some(line)
    }

    /// The next complete frame, if the buffer holds one.
    fn frame(&mut self, at_end: bool) -> Option<Frame> {
        while let Some(line) = self.line(at_end) {
            if line.is_empty() {
                if self.started {
                    self.started = false;
                    return Some(std::mem::take(&mut self.current));
                }
                continue;
            }
            self.started = true;
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line.as_str(), ""),
            };
            let frame = &mut self.current;
            match field {
                "" => frame.comments.push(value.to_owned()),
                "id" => frame.id = Some(value.to_owned()),
                "event" => frame.event = Some(value.to_owned()),
                "retry" => frame.retry = Some(value.to_owned()),
                "data" => match &mut frame.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => frame.data = Some(value.to_owned()),
                },
                other => frame.other.push((other.to_owned(), value.to_owned())),
            }
        }
        None
    }

    /// Whether bytes or lines of an unfinished frame are left.
    fn has_partial(&self) -> bool {
        self.started || !self.buffer.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// the stream

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Vec<u8>>> + Send>>;

/// An open stream. It reads from the connection only while a method waits for a frame, so a
/// stream nobody reads is a stalled consumer; dropping it closes the connection.
pub struct SseStream {
    bytes: ByteStream,
    parser: Parser,
    /// How the response ended, once it has.
    ended: Option<Result<(), String>>,
    /// Every frame read so far, in order.
    pub seen: Vec<Frame>,
}

impl SseStream {
    /// Reads `response` (a `200 text/event-stream`) as a stream.
    pub fn new(response: reqwest::Response) -> SseStream {
        let bytes = response.bytes_stream().map(|r| r.map(|b| b.to_vec()));
        SseStream {
            bytes: Box::pin(bytes),
            parser: Parser::default(),
            ended: None,
            seen: Vec::new(),
        }
    }

    /// The next frame (comments included), the end, or a timeout after `limit`. Safe to call
    /// again after a timeout: nothing read is lost.
    pub async fn next(&mut self, limit: Duration) -> Next {
        self.next_by(tokio::time::Instant::now() + limit).await
    }

    async fn next_by(&mut self, deadline: tokio::time::Instant) -> Next {
        loop {
            if let Some(frame) = self.parser.frame(self.ended.is_some()) {
                self.seen.push(frame.clone());
                return Next::Frame(frame);
            }
            if let Some(end) = &self.ended {
                return Next::Ended(end.clone());
            }
            match tokio::time::timeout_at(deadline, self.bytes.next()).await {
                Err(_) => return Next::TimedOut,
                Ok(Some(Ok(chunk))) => self.parser.push(&chunk),
                Ok(Some(Err(e))) => self.ended = Some(Err(e.to_string())),
                Ok(None) => self.ended = Some(Ok(())),
            }
        }
    }

    /// The next frame that is not only comments, the end, or a timeout after `limit`: keepalive
    /// comments do not restart the clock, so they cannot stretch a hang detector.
    pub async fn next_significant(&mut self, limit: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.next_by(deadline).await {
                Next::Frame(frame) if frame.is_comment_only() => continue,
                other => return other,
            }
        }
    }

    /// The next frame within `limit`; `None` on a timeout or at the end ([`Self::ended`] tells
    /// which).
    pub async fn next_frame(&mut self, limit: Duration) -> Option<Frame> {
        match self.next(limit).await {
            Next::Frame(frame) => Some(frame),
            Next::Ended(_) | Next::TimedOut => None,
        }
    }

    /// How the response ended: `None` while it is open (as far as has been read).
    pub fn ended(&self) -> Option<&Result<(), String>> {
        self.ended.as_ref()
    }

    /// The next frame that is not only comments, within [`FRAME_LIMIT`]; panics on a timeout or
    /// the end, saying what was seen.
    pub async fn expect_frame(&mut self) -> Frame {
        match self.next_significant(FRAME_LIMIT).await {
            Next::Frame(frame) => frame,
            other => panic!(
                "expected a frame within {FRAME_LIMIT:?}, got {other:?} after {:?}",
                names_of(&self.seen)
            ),
        }
    }

    /// Reads the first frame and asserts that it is `retry: 2000` and nothing else.
    pub async fn expect_retry(&mut self) {
        let first = self.expect_frame().await;
        assert_eq!(
            first,
            Frame {
                retry: Some("2000".into()),
                ..Frame::default()
            },
            "the first frame of a stream is `retry: 2000`"
        );
    }

    /// Reads frames (comments included) until `stop` holds for one (included); panics on the
    /// end before that, or when no frame other than comments arrives for `limit`.
    pub async fn collect_until(
        &mut self,
        limit: Duration,
        mut stop: impl FnMut(&Frame) -> bool,
    ) -> Vec<Frame> {
        let mut frames = Vec::new();
        let mut deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.next_by(deadline).await {
                Next::Frame(frame) => {
                    if !frame.is_comment_only() {
                        deadline = tokio::time::Instant::now() + limit;
                    }
                    let done = stop(&frame);
                    frames.push(frame);
                    if done {
                        return frames;
                    }
                }
                other => panic!(
                    "the stream gave {other:?} before the awaited frame (limit {limit:?}); read \
                     so far: {:?}",
                    names_of(&self.seen)
                ),
            }
        }
    }

    /// Reads frames up to the first `event: name` frame (included), without the comment-only
    /// ones, each within [`FRAME_LIMIT`].
    pub async fn until_event(&mut self, name: &str) -> Vec<Frame> {
        let mut frames = self.collect_until(FRAME_LIMIT, |f| f.is(name)).await;
        frames.retain(|f| !f.is_comment_only());
        frames
    }

    /// Asserts that the server ends the response cleanly within [`FRAME_LIMIT`] without
    /// sending anything more (comments aside) and without a partial frame.
    pub async fn expect_end(&mut self) {
        match self.next_significant(FRAME_LIMIT).await {
            Next::Frame(frame) => panic!("expected the end of the stream, got {frame:?}"),
            Next::TimedOut => panic!(
                "the server did not end the stream within {FRAME_LIMIT:?} after {:?}",
                names_of(&self.seen)
            ),
            Next::Ended(end) => {
                assert_eq!(end, Ok(()), "the stream did not end cleanly");
                assert!(
                    !self.parser.has_partial(),
                    "the stream ended inside a frame: {:?}",
                    String::from_utf8_lossy(&self.parser.buffer)
                );
            }
        }
    }

    /// Reads everything up to the end of the response; panics when neither a frame other than
    /// comments nor the end arrives for `limit`. The frames read, comment-only ones left out
    /// ([`Self::ended`] tells whether the end was clean).
    pub async fn read_to_end(&mut self, limit: Duration) -> Vec<Frame> {
        let mut frames = Vec::new();
        loop {
            match self.next_significant(limit).await {
                Next::Frame(frame) => frames.push(frame),
                Next::Ended(_) => return frames,
                Next::TimedOut => panic!(
                    "the stream neither sent a frame nor ended within {limit:?} after {:?}",
                    names_of(&self.seen)
                ),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// opening one

/// A stream request, built up and then sent with [`Self::send`], [`Self::open`] or
/// [`Self::refused`].
#[derive(Clone)]
pub struct SseRequest {
    client: reqwest::Client,
    base: String,
    session: String,
    last_event_id: Option<String>,
    after: Option<String>,
    key: Option<String>,
    query: Vec<String>,
}

impl SseRequest {
    /// The stream of `session` at `base` (`http://host:port`).
    pub fn new(client: &reqwest::Client, base: &str, session: &str) -> SseRequest {
        SseRequest {
            client: client.clone(),
            base: base.to_owned(),
            session: session.to_owned(),
            last_event_id: None,
            after: None,
            key: None,
            query: Vec::new(),
        }
    }

    /// Sends `Last-Event-ID: value` (exactly as given).
    pub fn last_event_id(mut self, value: impl Into<String>) -> SseRequest {
        self.last_event_id = Some(value.into());
        self
    }

    /// Sends `Last-Event-ID` if `seq` is `Some`.
    pub fn resume_from(self, seq: Option<u64>) -> SseRequest {
        match seq {
            Some(seq) => self.last_event_id(seq.to_string()),
            None => self,
        }
    }

    /// Adds `after=cursor` to the query.
    pub fn after(mut self, cursor: impl Into<String>) -> SseRequest {
        self.after = Some(cursor.into());
        self
    }

    /// Adds `pair` (e.g. `"limit=5"`) to the query as is.
    pub fn query(mut self, pair: &str) -> SseRequest {
        self.query.push(pair.to_owned());
        self
    }

    /// Sends `Authorization: Bearer key`.
    pub fn bearer(mut self, key: &str) -> SseRequest {
        self.key = Some(key.to_owned());
        self
    }

    fn url(&self) -> String {
        let mut pairs = self.query.clone();
        if let Some(after) = &self.after {
            pairs.push(format!("after={after}"));
        }
        let query = if pairs.is_empty() {
            String::new()
        } else {
            format!("?{}", pairs.join("&"))
        };
        format!("{}/sessions/{}/events{query}", self.base, self.session)
    }

    /// Sends the request and hands back the response with its body unread (within
    /// [`OPEN_LIMIT`]).
    pub async fn send(&self) -> reqwest::Response {
        let mut request = self
            .client
            .get(self.url())
            .header("accept", "text/event-stream");
        if let Some(id) = &self.last_event_id {
            request = request.header("last-event-id", id);
        }
        if let Some(key) = &self.key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        tokio::time::timeout(OPEN_LIMIT, request.send())
            .await
            .unwrap_or_else(|_| panic!("GET {} sent no response head in time", self.url()))
            .unwrap_or_else(|e| panic!("GET {}: {e}", self.url()))
    }

    /// Opens the stream: asserts `200 text/event-stream`.
    pub async fn open(&self) -> SseStream {
        match self.try_open().await {
            Ok(stream) => stream,
            Err(reply) => panic!(
                "GET {} (stream) got {}: {}",
                self.url(),
                reply.status,
                reply.text
            ),
        }
    }

    /// Opens the stream, or hands back the refusal read whole if it is not a 200.
    pub async fn try_open(&self) -> Result<SseStream, Reply> {
        let response = self.send().await;
        if response.status() != 200 {
            return Err(read_reply(response).await);
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "a stream is text/event-stream, got {content_type:?}"
        );
        Ok(SseStream::new(response))
    }

    /// Sends the request, asserts that it is refused (not a 200), and reads the refusal whole.
    pub async fn refused(&self) -> Reply {
        match self.try_open().await {
            Err(reply) => reply,
            Ok(mut stream) => panic!(
                "GET {} (stream) was expected to be refused but opened; first frame: {:?}",
                self.url(),
                stream.next_frame(Duration::from_secs(1)).await
            ),
        }
    }
}

/// A refused response read whole, like `TestApp`'s replies.
async fn read_reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = tokio::time::timeout(OPEN_LIMIT, response.text())
        .await
        .expect("the refusal's body in time")
        .unwrap_or_default();
    Reply::new(status, headers, text)
}

impl TestApp {
    /// A stream request for `session` on this application.
    pub fn sse(&self, session: &str) -> SseRequest {
        SseRequest::new(&self.client, &self.base, session)
    }

    /// The session part of `GET /sessions/{id}`: the body without `events` and `pagination`,
    /// which is what `session-ended` carries.
    pub async fn session_part(&self, session: &str) -> Value {
        let mut body = self.read_session(session, "?limit=1").await;
        let fields = body.as_object_mut().expect("a session is an object");
        fields.remove("events");
        fields.remove("pagination");
        body
    }
}

/// Frames parsed from `text` fed in pieces of `step` bytes, for the parser's own check.
pub fn parse_in_pieces(text: &str, step: usize) -> Vec<Frame> {
    let mut parser = Parser::default();
    let mut frames = Vec::new();
    for piece in text.as_bytes().chunks(step.max(1)) {
        parser.push(piece);
        while let Some(frame) = parser.frame(false) {
            frames.push(frame);
        }
    }
    while let Some(frame) = parser.frame(true) {
        frames.push(frame);
    }
    frames
}
