//! `GET /changes`: the change feed, as a page of JSON (with a long poll), as Server-Sent Events
//! (live, resumable with `Last-Event-ID`), or as NDJSON (everything up to the request, then the
//! end).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::dto::{EventBody, SessionBody};
use super::stream::{LiveStream, RETRY_MS};
use super::{AppError, AppState, accepts};
use crate::domain::Timestamp;
use crate::repo::feed::{ChangeData, ChangeKind, ChangeKinds, FeedChange};
use crate::service::{
    ChangesFrom, ChangesPage, ChangesRequest, DEFAULT_CHANGES_LIMIT, MAX_CHANGES_LIMIT,
    MAX_CHANGES_WAIT_SECONDS, SessionService,
};

/// What a page of NDJSON reads at a time.
const NDJSON_CHUNK: u32 = 1_000;
/// How long the last (empty) page of an NDJSON export waits for a change.
const NDJSON_LAST_WAIT: Duration = Duration::from_millis(500);

/// The kind of a change.
#[derive(Serialize, ToSchema, Clone, Copy)]
pub enum ChangeType {
    #[serde(rename = "session.created")]
    SessionCreated,
    #[serde(rename = "event.appended")]
    EventAppended,
    #[serde(rename = "session.updated")]
    SessionUpdated,
    #[serde(rename = "session.ended")]
    SessionEnded,
    #[serde(rename = "session.deleted")]
    SessionDeleted,
}

impl From<ChangeKind> for ChangeType {
    fn from(kind: ChangeKind) -> Self {
        match kind {
            ChangeKind::SessionCreated => ChangeType::SessionCreated,
            ChangeKind::EventAppended => ChangeType::EventAppended,
            ChangeKind::SessionUpdated => ChangeType::SessionUpdated,
            ChangeKind::SessionEnded => ChangeType::SessionEnded,
            ChangeKind::SessionDeleted => ChangeType::SessionDeleted,
        }
    }
}

/// Only the id of a session: a deletion, or any change of a session erased since. Closed (no
/// other member), so that a session's data never also matches it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BareSession<'a> {
    session_id: &'a str,
}

/// What a change carries: the session (created, updated, ended), the event (appended), or only
/// the session's id (deleted, or any change of a session erased since).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum ChangeDataBody<'a> {
    Session(SessionBody<'a>),
    Event(EventBody<'a>),
    Bare(BareSession<'a>),
}

/// One change to one call.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Change)]
pub struct ChangeBody<'a> {
    /// Where to read on from once this change is handled.
    cursor: &'a str,
    #[serde(rename = "type")]
    kind: ChangeType,
    /// The server time of the change (RFC 3339, milliseconds).
    #[schema(value_type = String, format = DateTime)]
    at: Timestamp,
    session_id: &'a str,
    data: ChangeDataBody<'a>,
}

impl<'a> ChangeBody<'a> {
    fn new(cursor: &'a str, change: &'a FeedChange) -> Self {
        let data = match &change.data {
            ChangeData::Session(session) => ChangeDataBody::Session(SessionBody::from(&**session)),
            ChangeData::Event(event) => ChangeDataBody::Event(EventBody::from(event)),
            ChangeData::None => ChangeDataBody::Bare(BareSession {
                session_id: change.session_id.as_str(),
            }),
        };
        ChangeBody {
            cursor,
            kind: change.kind.into(),
            at: change.at,
            session_id: change.session_id.as_str(),
            data,
        }
    }
}

/// A page of the change feed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ChangePage)]
pub struct ChangesBody<'a> {
    changes: Vec<ChangeBody<'a>>,
    /// Where to read on from: after the last change here, or (none) past everything read.
    next_cursor: &'a str,
    /// Whether more changes were there already.
    has_more: bool,
}

/// The query of `GET /changes`, checked: every violation at once.
fn read_query(raw: Option<&str>) -> Result<ChangesRequest, AppError> {
    let mut errors = Vec::new();
    let mut request = ChangesRequest {
        from: ChangesFrom::Oldest,
        limit: DEFAULT_CHANGES_LIMIT,
        kinds: ChangeKinds::all(),
        wait: Duration::ZERO,
    };
    let mut seen = Vec::new();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if seen.contains(&key) {
            errors.push((key.to_string(), "must be given at most once".to_owned()));
            continue;
        }
        seen.push(key.clone());
        match &*key {
            "after" if value == "now" => request.from = ChangesFrom::Now,
            "after" if value.is_empty() => {
                errors.push(("after".into(), "must be a cursor or now".into()))
            }
            "after" => request.from = ChangesFrom::After(value.into_owned()),
            "limit" => match value.parse::<u32>() {
                Ok(n) if (1..=MAX_CHANGES_LIMIT).contains(&n) => request.limit = n,
                _ => errors.push((
                    "limit".into(),
                    format!("must be a whole number from 1 to {MAX_CHANGES_LIMIT}"),
                )),
            },
            "wait" => match value.parse::<u64>() {
                Ok(s) if s <= MAX_CHANGES_WAIT_SECONDS => request.wait = Duration::from_secs(s),
                _ => errors.push((
                    "wait".into(),
                    format!("must be whole seconds from 0 to {MAX_CHANGES_WAIT_SECONDS}"),
                )),
            },
            "types" => {
                let mut kinds = Vec::new();
                for name in value.split(',') {
                    match ChangeKind::parse(name.trim()) {
                        Some(kind) => kinds.push(kind),
                        None => errors.push((
                            "types".into(),
                            format!(
                                "{name:?} is not a change type: session.created, event.appended, \
                                 session.updated, session.ended, session.deleted"
                            ),
                        )),
                    }
                }
                request.kinds = ChangeKinds::of(kinds);
            }
            other => errors.push((other.to_owned(), "is not a known parameter".into())),
        }
    }
    if errors.is_empty() {
        Ok(request)
    } else {
        Err(AppError::Validation(
            errors
                .into_iter()
                .map(|(field, message)| super::error::FieldError::new(field, message))
                .collect(),
        ))
    }
}

#[utoipa::path(
    get,
    path = "/changes",
    tag = "changes",
    summary = "The change feed: every change to every call, in order",
    description = "Every change to every call, in commit order, each exactly once to a reader that goes on from `nextCursor` (or, streamed, from the last `id`): `session.created` (data: the session as created), `event.appended` (the event as stored; one per new event of a batch, none for a replay), `session.updated` (the session after a metadata patch), `session.ended` (the ended session, whoever ended it: complete, an append past the deadline, the sweeper), `session.deleted` (data: `{sessionId}`; DELETE and retention alike). A session's changes come in the order of its seqs. Once a session is erased, its earlier changes carry only `{sessionId}`.\n\nStart: `after` (a cursor from an earlier answer; absent: the oldest change retained; `now`: only changes from now on). `wait` (0–60 s): a long poll, answered as soon as a change is there or after `wait` with an empty page.\n\nWith `Accept: text/event-stream`: the same changes live, `id:` = cursor, `event:` = type, `data:` = the change, `: keepalive` comments while idle; resumes after `Last-Event-ID` (else `after`); counted in MAX_STREAMS.\n\nWith `Accept: application/x-ndjson`: every change after `after` up to the moment of the request, one per line, in constant memory; then the stream ends.\n\nChanges are kept CHANGES_RETENTION_SECONDS (default 7 days); an older cursor is 410 `cursor_expired` with `earliestCursor`.",
    params(
        ("after" = Option<String>, Query, description = "A cursor from an earlier answer, or `now`; absent: from the oldest change retained"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Changes per page (default 100)"),
        ("types" = Option<String>, Query, description = "Comma-separated change types to return (default: all)"),
        ("wait" = Option<u32>, Query, minimum = 0, maximum = 60, description = "Seconds to wait for a change when there is none yet (default 0)"),
        ("Last-Event-ID" = Option<String>, Header, nullable = false, description = "With `Accept: text/event-stream`: the `id` (cursor) of the last change received; the stream resumes after it"),
    ),
    responses(
        (status = 200, description = "A page of changes; with Accept: text/event-stream, the live feed; with Accept: application/x-ndjson, every change up to the request", content(
            (ChangesBody = "application/json"),
            (ChangeBody = "application/x-ndjson"),
            (String = "text/event-stream"),
        )),
        (status = 400, description = "A malformed cursor (`invalid_cursor`), or an unknown type, `limit` or `wait` out of range (`validation_failed`)", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 410, description = "The cursor is older than the changes retained (`cursor_expired`); `earliestCursor` is where to start again", body = super::error::Problem, content_type = "application/problem+json"),
        super::openapi::Unavailable,
    )
)]
pub async fn list_changes(
    State(state): State<AppState>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let mut request = read_query(raw_query.as_deref())?;
    if accepts(&headers, "text/event-stream") {
        if let Some(last) = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
        {
            request.from = ChangesFrom::After(last.to_owned());
        }
        return live(state, request).await;
    }
    if accepts(&headers, "application/x-ndjson") {
        return ndjson(state, request).await;
    }
    let _consumer = Consumer::new(!request.wait.is_zero());
    let page = state.service.changes(request).await?;
    Ok(Json(page_body(&page)).into_response())
}

fn page_body(page: &ChangesPage) -> ChangesBody<'_> {
    ChangesBody {
        changes: page
            .changes
            .iter()
            .map(|(cursor, change)| ChangeBody::new(cursor, change))
            .collect(),
        next_cursor: &page.next_cursor,
        has_more: page.has_more,
    }
}

/// A reader waiting on the feed, counted in `changes_consumers` while it lives.
struct Consumer(bool);

impl Consumer {
    fn new(counted: bool) -> Self {
        if counted {
            metrics::gauge!("changes_consumers").increment(1.0);
        }
        Consumer(counted)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if self.0 {
            metrics::gauge!("changes_consumers").decrement(1.0);
        }
    }
}

/// Where the next read starts: after the cursor of the last page.
fn following(request: &ChangesRequest, page: &ChangesPage) -> ChangesRequest {
    ChangesRequest {
        from: ChangesFrom::After(page.next_cursor.clone()),
        ..request.clone()
    }
}

/// The SSE frames of a page.
fn frames(page: &ChangesPage) -> Bytes {
    let mut out = Vec::new();
    for (cursor, change) in &page.changes {
        out.extend_from_slice(
            format!("id: {cursor}\nevent: {}\ndata: ", change.kind.as_str()).as_bytes(),
        );
        // Serializing our own types into memory cannot fail.
        let _ = serde_json::to_writer(&mut out, &ChangeBody::new(cursor, change));
        out.extend_from_slice(b"\n\n");
    }
    Bytes::from(out)
}

/// The live feed. The first read happens before the answer starts, so a bad or expired cursor
/// is a 400 / 410 and too many streams a 503; afterwards a storage failure ends the stream, and
/// the client resumes from the last `id` it saw.
async fn live(state: AppState, request: ChangesRequest) -> Result<Response, AppError> {
    let service = state.service.clone();
    let permit = service
        .hub()
        .try_open()
        .ok_or_else(|| AppError::TooManyStreams(service.hub().settings().max_streams))?;
    let keepalive = service.hub().settings().keepalive;
    // The first read answers at once (the headers wait for it); later ones wait.
    let first = service
        .changes(ChangesRequest {
            wait: Duration::ZERO,
            ..request.clone()
        })
        .await?;
    let next = following(&request, &first);
    let opening = Bytes::from(format!("retry: {RETRY_MS}\n\n"));
    let head = futures_util::stream::iter([opening, frames(&first)]);
    let consumer = Consumer::new(true);
    let rest = futures_util::stream::unfold(
        (service, next, permit, consumer),
        move |(service, request, permit, consumer)| async move {
            let waiting = ChangesRequest {
                wait: keepalive,
                ..request.clone()
            };
            // On shutdown the stream ends (cleanly, so the client resumes elsewhere with
            // `Last-Event-ID`) instead of being cut with its connection.
            let read = tokio::select! {
                read = service.changes(waiting) => read,
                () = service.hub().closed() => return None,
            };
            match read {
                Ok(page) if page.changes.is_empty() => {
                    let next = following(&request, &page);
                    Some((
                        Bytes::from_static(b": keepalive\n\n"),
                        (service, next, permit, consumer),
                    ))
                }
                Ok(page) => {
                    let next = following(&request, &page);
                    Some((frames(&page), (service, next, permit, consumer)))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a change feed stream ended on a storage error");
                    None
                }
            }
        },
    );
    let body = futures_util::StreamExt::map(
        futures_util::StreamExt::chain(head, rest),
        Ok::<_, Infallible>,
    );
    let mut response = Body::from_stream(body).into_response();
    response.extensions_mut().insert(LiveStream);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Every change after the start up to the newest one when the request came, a page at a time.
async fn ndjson(state: AppState, request: ChangesRequest) -> Result<Response, AppError> {
    let service: SessionService = state.service.clone();
    let head = service.changes_head().await?;
    // An empty page ends the export; it waits a moment first, so that a store whose read can
    // come back empty before it reached the newest change (a change stream) gets to look on.
    let request = ChangesRequest {
        limit: NDJSON_CHUNK,
        wait: NDJSON_LAST_WAIT,
        ..request
    };
    let first = service.changes(request.clone()).await?;
    let stream = futures_util::stream::unfold(Some((first, request)), move |state| {
        let service = service.clone();
        let head = head.clone();
        async move {
            let (page, request) = state?;
            let mut lines = Vec::with_capacity(page.changes.len() * 256);
            let mut done = !page.has_more;
            for (cursor, change) in &page.changes {
                if service.changes_beyond(cursor, &head) {
                    done = true;
                    break;
                }
                let _ = serde_json::to_writer(&mut lines, &ChangeBody::new(cursor, change));
                lines.push(b'\n');
            }
            let next = if done {
                None
            } else {
                let request = following(&request, &page);
                match service.changes(request.clone()).await {
                    Ok(page) => Some((page, request)),
                    Err(e) => {
                        tracing::error!(error = %e, "an NDJSON read of the feed was cut short");
                        return Some((Err(std::io::Error::other("storage failed")), None));
                    }
                }
            };
            Some((Ok(Bytes::from(lines)), next))
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A webhook message's body: `{"type", "timestamp", "data"}`, `data` as in the feed. When that
/// is over [`crate::domain::webhook::MAX_BODY_BYTES`], `data` goes without its unbounded parts
/// (an event's payload, a session's metadata) and with `"truncated": true`; should it still be
/// over, with its ids alone.
#[derive(Serialize)]
struct WebhookBody<D: Serialize> {
    #[serde(rename = "type")]
    kind: ChangeType,
    timestamp: Timestamp,
    data: D,
}

pub fn webhook_body(change: &FeedChange) -> String {
    let whole = ChangeBody::new("", change);
    let body = WebhookBody {
        kind: change.kind.into(),
        timestamp: change.at,
        data: &whole.data,
    };
    let text = serde_json::to_string(&body).unwrap_or_default();
    if text.len() <= crate::domain::webhook::MAX_BODY_BYTES {
        return text;
    }
    let mut data = serde_json::to_value(&whole.data).unwrap_or_default();
    let render = |data: &serde_json::Value| {
        serde_json::to_string(&WebhookBody {
            kind: change.kind.into(),
            timestamp: change.at,
            data,
        })
        .unwrap_or_default()
    };
    let Some(object) = data.as_object_mut() else {
        return text;
    };
    object.remove("payload");
    object.remove("metadata");
    object.insert("truncated".into(), serde_json::Value::Bool(true));
    let text = render(&data);
    if text.len() <= crate::domain::webhook::MAX_BODY_BYTES {
        return text;
    }
    if let Some(object) = data.as_object_mut() {
        object
            .retain(|key, _| ["sessionId", "eventId", "seq", "truncated"].contains(&key.as_str()));
    }
    render(&data)
}
