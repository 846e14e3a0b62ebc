//! The benchmark's baseline: a bare Axum server with the service's routes that stores nothing.
//!
//! It parses every JSON body and answers a response of the same shape as the service's (201 with
//! `Location` for creates, the event echoed back with a `seq` and a `timestamp`); reads answer a
//! prebuilt page of 20 events, serialized on every request like the service does. What the service
//! costs beyond this is its validation, its storage and its middleware (tracing, limits).
//!
//! Run: `PORT=3001 cargo run --release --example bench_baseline` (HOST defaults to 127.0.0.1).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

const PAGE_SIZE: u64 = 20;
const PAGE_TOTAL: u64 = 1_000_000;

#[derive(Clone)]
struct Baseline {
    seq: Arc<AtomicU64>,
    page: Arc<Value>,
}

fn now() -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

fn bad_request(detail: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "type": "about:blank", "title": "Bad Request", "status": 400, "detail": detail })),
    )
        .into_response()
}

fn string_field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str)
}

fn created(location: String, body: Value) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn session_body(id: &str, status: &str, language: &str, metadata: Value, ended: bool) -> Value {
    let t = now();
    json!({
        "sessionId": id,
        "status": status,
        "language": language,
        "metadata": metadata,
        "startedAt": t,
        "endedAt": if ended { Value::String(t.clone()) } else { Value::Null },
        "eventCount": 0,
    })
}

async fn create_session(Json(body): Json<Map<String, Value>>) -> Response {
    let (Some(id), Some(language)) = (
        string_field(&body, "sessionId"),
        string_field(&body, "language"),
    ) else {
        return bad_request("sessionId and language are required");
    };
    let metadata = body
        .get("metadata")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    created(
        format!("/sessions/{id}"),
        session_body(id, "initiated", language, metadata, false),
    )
}

/// The event echoed back with the next `seq` and a timestamp, or why it is not one.
fn echo_event(
    state: &Baseline,
    session_id: &str,
    mut body: Map<String, Value>,
) -> Result<(String, Value), &'static str> {
    let (Some(event_id), Some(event_type)) = (
        string_field(&body, "eventId").map(str::to_owned),
        string_field(&body, "type").map(str::to_owned),
    ) else {
        return Err("eventId and type are required");
    };
    let Some(payload @ Value::Object(_)) = body.remove("payload") else {
        return Err("payload must be an object");
    };
    let seq = state.seq.fetch_add(1, Ordering::Relaxed) + 1;
    let event = json!({
        "sessionId": session_id,
        "eventId": event_id,
        "seq": seq,
        "type": event_type,
        "payload": payload,
        "timestamp": now(),
    });
    Ok((event_id, event))
}

async fn add_event(
    State(state): State<Baseline>,
    Path(session_id): Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> Response {
    match echo_event(&state, &session_id, body) {
        Ok((event_id, event)) => {
            created(format!("/sessions/{session_id}/events/{event_id}"), event)
        }
        Err(refused) => bad_request(refused),
    }
}

/// `events:batch`: every event echoed back, in order, as `{"events": [...]}`.
async fn add_events(
    State(state): State<Baseline>,
    Path(session_id): Path<String>,
    Json(mut body): Json<Map<String, Value>>,
) -> Response {
    let Some(Value::Array(items)) = body.remove("events") else {
        return bad_request("events must be an array");
    };
    let mut events = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(item) = item else {
            return bad_request("every event must be an object");
        };
        match echo_event(&state, &session_id, item) {
            Ok((_, event)) => events.push(event),
            Err(refused) => return bad_request(refused),
        }
    }
    (StatusCode::CREATED, Json(json!({ "events": events }))).into_response()
}

async fn get_session(State(state): State<Baseline>) -> Response {
    Json(&*state.page).into_response()
}

async fn complete_session(Path(session_id): Path<String>) -> Response {
    Json(session_body(
        &session_id,
        "completed",
        "en-US",
        Value::Object(Map::new()),
        true,
    ))
    .into_response()
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// A page shaped like the service's `GET /sessions/{id}?limit=20`, with the load generator's
/// payloads, so both answers are the same size.
fn prebuilt_page() -> Value {
    let texts = [
        "Hi, I'm calling about my appointment next week.",
        "Sure, I can help with that. May I have your name, please?",
        "It's Alex Morgan, M-O-R-G-A-N.",
        "Thank you, Alex. I see an appointment on Tuesday at 3 PM.",
        "Could we move it to Thursday morning instead?",
        "Thursday at 9:30 AM is available. Shall I book it?",
        "Yes, please. And can you send me a text confirmation?",
        "Done. You'll receive a confirmation text shortly.",
    ];
    let events: Vec<Value> = (1..=PAGE_SIZE)
        .map(|i| {
            json!({
                "sessionId": "bench-baseline",
                "eventId": format!("seed-{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                "seq": i,
                "type": if i % 2 == 1 { "user_speech" } else { "bot_speech" },
                "payload": {
                    "text": texts[(i % 8) as usize],
                    "confidence": 0.8 + (i % 20) as f64 / 100.0,
                    "turn": i,
                },
                "timestamp": "2025-12-21T15:30:15.123Z",
            })
        })
        .collect();
    json!({
        "sessionId": "bench-baseline",
        "status": "active",
        "language": "en-US",
        "metadata": { "caller": "+15550100", "callee": "+15550199", "campaign": "bench" },
        "startedAt": "2025-12-21T15:30:00.000Z",
        "endedAt": null,
        "eventCount": PAGE_TOTAL,
        "events": events,
        "pagination": {
            "total": PAGE_TOTAL,
            "limit": PAGE_SIZE,
            "page": 1,
            "totalPages": PAGE_TOTAL / PAGE_SIZE,
            "hasMore": true,
            "nextCursor": "djEuYS4yMA",
        },
    })
}

/// The same allocator as the service's binary, so that the ratios compare the work, not the
/// allocators.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PORT").unwrap_or_else(|_| "3001".into());
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .expect("HOST:PORT is not a socket address");
    let state = Baseline {
        seq: Arc::new(AtomicU64::new(0)),
        page: Arc::new(prebuilt_page()),
    };
    let app = Router::new()
        .route("/sessions", post(create_session))
        .route("/sessions/{session_id}", get(get_session))
        .route("/sessions/{session_id}/events", post(add_event))
        .route("/sessions/{session_id}/events:batch", post(add_events))
        .route("/sessions/{session_id}/complete", post(complete_session))
        .route("/health", get(health))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("cannot bind the baseline's address");
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("cannot listen for SIGTERM");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .expect("baseline server failed");
}
