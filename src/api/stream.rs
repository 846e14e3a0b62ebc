//! The live transcript: `GET /sessions/{id}/events` with `Accept: text/event-stream`, as
//! Server-Sent Events. Each event is `id: <seq>` / `event: event` / `data: <event JSON>`; then
//! `event: caught-up` once; then new events as they are stored; then `event: session-ended` (or
//! `session-deleted`) and the end of the stream. A client resumes with `Last-Event-ID`.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::{AppError, AppState, dto, query};
use crate::domain::SessionId;
use crate::service::live::{LiveFrame, Start};
use crate::service::{PageRequest, ServiceError};

/// Marks a live stream's response, so the server loop can close its connection on shutdown
/// even when the client has stopped reading (a graceful end would wait for it).
#[derive(Debug, Clone, Copy)]
pub struct LiveStream;

/// How long a client waits before it reconnects (the SSE `retry` field), in milliseconds.
pub const RETRY_MS: u32 = 2000;
const LAST_EVENT_ID: &str = "last-event-id";

/// Opens the stream, after checking everything that can be answered with a status: the session
/// (404 / 410), the start (400), the number of open streams (503). From then on, problems can
/// only end the stream; the client resumes with `Last-Event-ID`.
pub async fn follow(
    state: AppState,
    session_id: SessionId,
    raw_query: Option<&str>,
    request: PageRequest,
    headers: &HeaderMap,
) -> Result<Response, AppError> {
    let after = query::ascending_after(raw_query, &request, "an event stream");
    let last_event_id = last_event_id(headers);
    let (after, last_event_id) = query::both(after, last_event_id)?;
    let (start, field) = match last_event_id {
        Some(seq) => (
            Start {
                after_seq: seq,
                resumed: true,
            },
            "Last-Event-ID",
        ),
        None => (
            Start {
                after_seq: after,
                resumed: false,
            },
            "after",
        ),
    };
    let frames = state
        .service
        .follow(&session_id, start)
        .await
        .map_err(|e| match e {
            ServiceError::StartAfterLastEvent { .. } => AppError::invalid(field, e.to_string()),
            other => other.into(),
        })?;
    let retry = Bytes::from(format!("retry: {RETRY_MS}\n\n"));
    let body = futures_util::stream::once(async move { retry })
        .chain(frames.map(|frame| encode(&frame)))
        .map(Ok::<_, Infallible>);
    let mut response = Body::from_stream(body).into_response();
    response.extensions_mut().insert(LiveStream);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    // Proxies that buffer responses (nginx) must pass each frame on at once.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The seq in `Last-Event-ID`: decimal digits only. An empty value is no value (what
/// `EventSource` sends before it has seen an id).
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, AppError> {
    let mut values = headers.get_all(LAST_EVENT_ID).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let invalid = || {
        AppError::invalid(
            "Last-Event-ID",
            "must be the id (a seq, in decimal) of an event this stream sent",
        )
    };
    if values.next().is_some() {
        return Err(invalid());
    }
    let raw = value.to_str().map_err(|_| invalid())?.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    if !raw.bytes().all(|b| b.is_ascii_digit()) || raw.len() > 19 {
        return Err(invalid());
    }
    raw.parse().map(Some).map_err(|_| invalid())
}

/// One frame in the `text/event-stream` format. JSON has no raw newlines, so `data` is one line.
fn encode(frame: &LiveFrame) -> Bytes {
    let (id, event, data) = match frame {
        LiveFrame::Event(event) => (
            Some(event.seq),
            "event",
            serde_json::to_string(&dto::EventBody::from(event.as_ref())),
        ),
        LiveFrame::CaughtUp(seq) => (None, "caught-up", Ok(format!("{{\"seq\":{seq}}}"))),
        LiveFrame::Ended(session) => (
            None,
            "session-ended",
            serde_json::to_string(&dto::SessionBody::from(session.as_ref())),
        ),
        LiveFrame::Deleted(id) => (
            None,
            "session-deleted",
            serde_json::to_string(&serde_json::json!({ "sessionId": id.as_str() })),
        ),
        LiveFrame::Keepalive => return Bytes::from_static(b": keepalive\n\n"),
    };
    // Serializing our own types into memory cannot fail; an empty object keeps the frame whole.
    let data = data.unwrap_or_else(|_| "{}".to_owned());
    let mut out = String::with_capacity(data.len() + 48);
    if let Some(id) = id {
        out.push_str(&format!("id: {id}\n"));
    }
    out.push_str("event: ");
    out.push_str(event);
    out.push_str("\ndata: ");
    out.push_str(&data);
    out.push_str("\n\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(LAST_EVENT_ID, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn last_event_id_is_a_decimal_seq_and_empty_means_none() {
        assert_eq!(last_event_id(&headers(&[])).unwrap(), None);
        assert_eq!(last_event_id(&headers(&[""])).unwrap(), None);
        assert_eq!(last_event_id(&headers(&["42"])).unwrap(), Some(42));
        assert_eq!(last_event_id(&headers(&[" 7 "])).unwrap(), Some(7));
        for bad in ["abc", "-1", "1.5", "+3", "0x10", "99999999999999999999"] {
            assert!(last_event_id(&headers(&[bad])).is_err(), "{bad}");
        }
        assert!(last_event_id(&headers(&["1", "2"])).is_err());
    }

    #[test]
    fn frames_follow_the_event_stream_format() {
        assert_eq!(
            &encode(&LiveFrame::CaughtUp(12))[..],
            b"event: caught-up\ndata: {\"seq\":12}\n\n"
        );
        assert_eq!(&encode(&LiveFrame::Keepalive)[..], b": keepalive\n\n");
        let deleted = encode(&LiveFrame::Deleted(SessionId::parse("call-1").unwrap()));
        assert_eq!(
            &deleted[..],
            b"event: session-deleted\ndata: {\"sessionId\":\"call-1\"}\n\n"
        );
    }
}
