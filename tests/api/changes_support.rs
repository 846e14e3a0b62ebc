//! Readers of the change feed (`GET /changes`) for its tests: a page (its shape checked), the
//! whole feed by following `nextCursor`, NDJSON, and the live feed as Server-Sent Events (each
//! frame checked against the change it carries).

use std::time::Duration;

use serde_json::Value;

use crate::support::app::{Reply, TestApp};
use crate::support::sse::{FRAME_LIMIT, Frame, OPEN_LIMIT, SseStream, names_of};

/// The change types, in the order the API names them.
pub const TYPES: [&str; 5] = [
    "session.created",
    "event.appended",
    "session.updated",
    "session.ended",
    "session.deleted",
];

/// How long a whole answer (a page, NDJSON to its end) may take: a hang detector, generous for a
/// slow MongoDB-compatible server.
pub const READ_LIMIT: Duration = Duration::from_secs(30);

/// The most pages [`read_feed`] follows: a bound against a cursor that never gets anywhere.
const MAX_PAGES: usize = 500;

/// `GET /changes{query}`, with `Authorization: Bearer key` if given, read whole.
pub async fn get_changes(app: &TestApp, query: &str, key: Option<&str>) -> Reply {
    let mut request = app.client.get(app.url(&format!("/changes{query}")));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = tokio::time::timeout(READ_LIMIT, request.send())
        .await
        .unwrap_or_else(|_| panic!("GET /changes{query} did not answer in time"))
        .expect("GET /changes");
    TestApp::read(response).await
}

/// `GET /changes{query}`: asserts a 200 page, checks its shape and every change's, and returns
/// the body.
pub async fn page(app: &TestApp, query: &str) -> Value {
    let r = get_changes(app, query, None).await;
    assert_eq!(r.status, 200, "GET /changes{query}: {}", r.text);
    assert_page_shape(&r.body);
    r.body
}

/// A page is `{changes: [Change…], nextCursor, hasMore}` and nothing else.
pub fn assert_page_shape(body: &Value) {
    let fields = body.as_object().expect("a page is an object");
    let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["changes", "hasMore", "nextCursor"], "{body}");
    assert!(
        body["nextCursor"].as_str().is_some_and(|c| !c.is_empty()),
        "{body}"
    );
    assert!(body["hasMore"].is_boolean(), "{body}");
    for change in body["changes"].as_array().expect("changes is an array") {
        assert_change_shape(change);
    }
}

/// A change is `{cursor, type, at, sessionId, data}`: a known type, `at` in RFC 3339 with
/// milliseconds (UTC), and data naming the same session.
pub fn assert_change_shape(change: &Value) {
    let fields = change.as_object().expect("a change is an object");
    let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["at", "cursor", "data", "sessionId", "type"],
        "{change}"
    );
    assert!(
        change["cursor"].as_str().is_some_and(|c| !c.is_empty()),
        "{change}"
    );
    assert!(
        TYPES.contains(&change["type"].as_str().unwrap_or_default()),
        "{change}"
    );
    let at = change["at"].as_str().expect("at is a string");
    assert!(
        is_rfc3339_millis(at),
        "at is not RFC 3339 with ms: {change}"
    );
    assert!(change["sessionId"].is_string(), "{change}");
    assert_eq!(change["data"]["sessionId"], change["sessionId"], "{change}");
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn is_rfc3339_millis(text: &str) -> bool {
    let pattern = "dddd-dd-ddTdd:dd:dd.dddZ";
    text.len() == pattern.len()
        && text.chars().zip(pattern.chars()).all(|(c, p)| match p {
            'd' => c.is_ascii_digit(),
            other => c == other,
        })
}

/// The whole feed from `after` (a cursor; `None` from the oldest change) with pages of `limit`,
/// following `nextCursor` while `hasMore`: every page but the last is full.
pub struct Feed {
    pub changes: Vec<Value>,
    /// The last page's `nextCursor`.
    pub next: String,
    pub pages: usize,
}

pub async fn read_feed(app: &TestApp, after: Option<&str>, limit: u32) -> Feed {
    let mut after = after.map(str::to_owned);
    let mut changes = Vec::new();
    for pages in 1..=MAX_PAGES {
        let query = match &after {
            Some(cursor) => format!("?limit={limit}&after={cursor}"),
            None => format!("?limit={limit}"),
        };
        let body = page(app, &query).await;
        let got = body["changes"].as_array().expect("changes");
        assert!(got.len() <= limit as usize, "{query}: {body}");
        let next = body["nextCursor"].as_str().expect("nextCursor").to_owned();
        changes.extend(got.iter().cloned());
        if body["hasMore"] != true {
            return Feed {
                changes,
                next,
                pages,
            };
        }
        assert_eq!(
            got.len(),
            limit as usize,
            "a page with more after it is full: {body}"
        );
        assert_eq!(
            Some(&got[got.len() - 1]["cursor"]),
            body.get("nextCursor"),
            "with more to come, nextCursor is the last change's cursor: {body}"
        );
        after = Some(next);
    }
    panic!("the feed still had more after {MAX_PAGES} pages");
}

/// The `type` of each change.
pub fn types_of(changes: &[Value]) -> Vec<&str> {
    changes
        .iter()
        .map(|c| c["type"].as_str().expect("type"))
        .collect()
}

/// The changes of `session` among `changes`.
pub fn of_session<'a>(changes: &'a [Value], session: &str) -> Vec<&'a Value> {
    changes
        .iter()
        .filter(|c| c["sessionId"] == session)
        .collect()
}

/// Asserts that no two changes share a cursor.
pub fn assert_cursors_distinct(changes: &[Value]) {
    let mut cursors: Vec<&str> = changes
        .iter()
        .map(|c| c["cursor"].as_str().expect("cursor"))
        .collect();
    cursors.sort_unstable();
    let before = cursors.len();
    cursors.dedup();
    assert_eq!(cursors.len(), before, "two changes share a cursor");
}

/// `GET /changes{query}` with `Accept: application/x-ndjson`: asserts a 200
/// `application/x-ndjson` that ends (within [`READ_LIMIT`]), one change per line, each line
/// ended by a newline. The body's text and its changes.
pub async fn ndjson(app: &TestApp, query: &str) -> (String, Vec<Value>) {
    let send = app
        .client
        .get(app.url(&format!("/changes{query}")))
        .header("accept", "application/x-ndjson")
        .send();
    let response = tokio::time::timeout(READ_LIMIT, send)
        .await
        .expect("the NDJSON head in time")
        .expect("GET /changes (NDJSON)");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = tokio::time::timeout(READ_LIMIT, response.text())
        .await
        .expect("the NDJSON answer ends")
        .expect("read the NDJSON body");
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_type, "application/x-ndjson", "{text}");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "every line ends with a newline: {text:?}"
    );
    let changes: Vec<Value> = text
        .lines()
        .map(|line| {
            let change: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("an NDJSON line is not JSON ({e}): {line:?}"));
            assert_change_shape(&change);
            change
        })
        .collect();
    (text, changes)
}

/// Sends `GET /changes{query}` with `Accept: text/event-stream` (and `Last-Event-ID`, a bearer
/// key if given); the response with its body unread.
pub async fn send_stream(
    app: &TestApp,
    query: &str,
    last_event_id: Option<&str>,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url(&format!("/changes{query}")))
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    tokio::time::timeout(OPEN_LIMIT, request.send())
        .await
        .unwrap_or_else(|_| panic!("GET /changes{query} (stream) sent no head in time"))
        .expect("GET /changes (stream)")
}

/// Opens the live feed: asserts `200 text/event-stream` and the opening `retry: 2000`.
pub async fn open_stream(
    app: &TestApp,
    query: &str,
    last_event_id: Option<&str>,
    key: Option<&str>,
) -> SseStream {
    let response = send_stream(app, query, last_event_id, key).await;
    if response.status() != 200 {
        let refused = TestApp::read(response).await;
        panic!(
            "GET /changes{query} (stream): {} {}",
            refused.status, refused.text
        );
    }
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type:?}"
    );
    let mut stream = SseStream::new(response);
    stream.expect_retry().await;
    stream
}

/// Sends the stream request and asserts that it is refused; the refusal read whole.
pub async fn stream_refused(
    app: &TestApp,
    query: &str,
    last_event_id: Option<&str>,
    key: Option<&str>,
) -> Reply {
    let response = send_stream(app, query, last_event_id, key).await;
    assert_ne!(
        response.status(),
        200,
        "GET /changes{query} (stream) opened"
    );
    tokio::time::timeout(READ_LIMIT, TestApp::read(response))
        .await
        .expect("the refusal in time")
}

/// The change a frame carries, checked: `id:` is its cursor and `event:` its type.
pub fn change_of(frame: &Frame) -> Value {
    let change = frame.json();
    assert_change_shape(&change);
    assert_eq!(
        frame.id.as_deref(),
        change["cursor"].as_str(),
        "id is the cursor: {frame:?}"
    );
    assert_eq!(
        frame.event.as_deref(),
        change["type"].as_str(),
        "event is the type: {frame:?}"
    );
    change
}

/// The next `n` changes of the stream (keepalives skipped), each within [`FRAME_LIMIT`].
pub async fn next_changes(stream: &mut SseStream, n: usize) -> Vec<Value> {
    let mut changes = Vec::with_capacity(n);
    for _ in 0..n {
        changes.push(change_of(&stream.expect_frame().await));
    }
    changes
}

/// Reads up to the next `: keepalive` comment (sent when a wait for changes found none) and
/// asserts that no change came before it: the stream has nothing more to send.
pub async fn assert_idle(stream: &mut SseStream) {
    let frames = stream
        .collect_until(FRAME_LIMIT, Frame::is_comment_only)
        .await;
    let keepalive = frames.last().expect("the keepalive");
    assert_eq!(keepalive.comments, ["keepalive"], "{keepalive:?}");
    let extra: Vec<&Frame> = frames.iter().filter(|f| !f.is_comment_only()).collect();
    assert!(
        extra.is_empty(),
        "nothing more was expected, got {:?}: {extra:?}",
        names_of(&frames)
    );
}

/// Reads the stream up to the first keepalive that follows at least `min` changes: every change
/// it had to send (the stream was opened after the writes).
pub async fn changes_until_idle(stream: &mut SseStream, min: usize) -> Vec<Value> {
    let mut changes = next_changes(stream, min).await;
    loop {
        let frames = stream
            .collect_until(FRAME_LIMIT, Frame::is_comment_only)
            .await;
        let more: Vec<Value> = frames
            .iter()
            .filter(|f| !f.is_comment_only())
            .map(change_of)
            .collect();
        if more.is_empty() {
            return changes;
        }
        changes.extend(more);
    }
}
