//! The benchmark's second baseline: the service's ingest and first-page routes doing only the
//! durable work, nothing else. SQLite in WAL mode with `synchronous=FULL` on the service's own
//! schema (its migrations), one writer thread with group commit (every command waiting is run in
//! one transaction, with no savepoints, and answered after the commit), payloads carried as
//! `serde_json::value::RawValue` (never parsed into a tree), and the raw page query on two reader
//! connections. No validation beyond JSON shape, no idempotency lookup, no timers, no middleware.
//! What the service costs beyond this is what it does beyond the durable insert.
//!
//! Run: `PORT=3002 DATABASE_PATH=/tmp/durable.db cargo run --release --example bench_durable`
//! (HOST defaults to 127.0.0.1). Routes: `POST /sessions`, `POST /sessions/{id}/events`,
//! `POST /sessions/{id}/events:batch`, `GET /sessions/{id}?limit=N` (the first page), `GET
//! /health`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, mpsc as std_mpsc};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::macros::format_description;
use tokio::sync::{mpsc, oneshot};

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_create_sessions_and_events.sql"),
    include_str!("../migrations/sqlite/0002_session_lifecycle.sql"),
];
/// The most commands one transaction takes, as in the service.
const MAX_BATCH: usize = 512;
const READERS: usize = 2;

/// One event to insert: id, type, payload JSON text, timestamp (ms).
struct Row {
    event_id: String,
    kind: String,
    payload: String,
    timestamp: i64,
}

enum Command {
    Create(
        String,
        String,
        String,
        oneshot::Sender<Result<bool, String>>,
    ),
    /// Appends the rows to the session; answers their seqs (`None`: no such session).
    Append(
        String,
        Vec<Row>,
        oneshot::Sender<Result<Option<u64>, String>>,
    ),
}

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

#[derive(Clone)]
struct Durable {
    writer: mpsc::Sender<Command>,
    readers: std_mpsc::SyncSender<ReadJob>,
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn format_ms(ms: i64) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

fn problem(status: StatusCode, detail: &str) -> Response {
    let body = format!(r#"{{"status":{},"detail":{detail:?}}}"#, status.as_u16());
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body,
    )
        .into_response()
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// A refusal, answered as [`problem`].
struct Refused(StatusCode, String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        problem(self.0, &self.1)
    }
}

fn refused(status: StatusCode, detail: impl Into<String>) -> Refused {
    Refused(status, detail.into())
}

// ---------------------------------------------------------------------------------------------
// the writer

fn open(path: &str) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // As the service's writer: checkpoints every 10,000 WAL pages, every statement kept prepared.
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    conn.set_prepared_statement_cache_capacity(32);
    let tx = conn.transaction()?;
    let fresh: bool = tx.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'events')",
        [],
        |r| r.get(0),
    )?;
    if fresh {
        for sql in MIGRATIONS {
            tx.execute_batch(sql)?;
        }
    }
    tx.commit()?;
    Ok(conn)
}

fn run_writer(conn: Connection, mut rx: mpsc::Receiver<Command>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        commit(&conn, &mut batch);
    }
}

enum Answer {
    Create(oneshot::Sender<Result<bool, String>>, Result<bool, String>),
    Append(
        oneshot::Sender<Result<Option<u64>, String>>,
        Result<Option<u64>, String>,
    ),
}

fn commit(conn: &Connection, batch: &mut Vec<Command>) {
    let exec = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.raw_execute())
            .map(|_| ())
    };
    let mut answers = Vec::with_capacity(batch.len());
    // No savepoints: nothing here fails halfway but on an SQL error, which fails the whole batch
    // (every caller gets it), so the minimal program needs none.
    let mut run = || -> Result<(), String> {
        exec("BEGIN IMMEDIATE").map_err(|e| e.to_string())?;
        for cmd in batch.drain(..) {
            let answer = match cmd {
                Command::Create(id, language, metadata, reply) => {
                    let r = create(conn, &id, &language, &metadata).map_err(|e| e.to_string());
                    Answer::Create(reply, r)
                }
                Command::Append(id, rows, reply) => {
                    let r = append(conn, &id, &rows).map_err(|e| e.to_string());
                    Answer::Append(reply, r)
                }
            };
            let failed = matches!(
                &answer,
                Answer::Create(_, Err(_)) | Answer::Append(_, Err(_))
            );
            answers.push(answer);
            if failed {
                return Err("a command failed: the batch is rolled back".into());
            }
        }
        exec("COMMIT").map_err(|e| e.to_string())
    };
    let committed = run();
    if committed.is_err() && !conn.is_autocommit() {
        let _ = exec("ROLLBACK");
    }
    batch.clear();
    for answer in answers {
        match answer {
            Answer::Create(reply, r) => {
                let _ = reply.send(committed.clone().and(r));
            }
            Answer::Append(reply, r) => {
                let _ = reply.send(committed.clone().and(r));
            }
        }
    }
}

fn create(conn: &Connection, id: &str, language: &str, metadata: &str) -> rusqlite::Result<bool> {
    let now = now_ms();
    let inserted = conn
        .prepare_cached(
            "INSERT INTO sessions (session_id, status, language, metadata, started_at, event_count,
                 inactivity_timeout_seconds, max_duration_seconds, timers_since)
             VALUES (?1, 'initiated', ?2, ?3, ?4, 0, 0, 0, ?4)
             ON CONFLICT (session_id) DO NOTHING",
        )?
        .execute(params![id, language, metadata, now])?;
    Ok(inserted == 1)
}

/// Inserts `rows` with the next seqs; the first seq, or `None` without such a session.
fn append(conn: &Connection, id: &str, rows: &[Row]) -> rusqlite::Result<Option<u64>> {
    let count: Option<i64> = conn
        .prepare_cached("SELECT event_count FROM sessions WHERE session_id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    let Some(count) = count else {
        return Ok(None);
    };
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (session_id, seq, event_id, type, payload, timestamp)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (k, row) in rows.iter().enumerate() {
        insert.execute(params![
            id,
            count + 1 + k as i64,
            row.event_id,
            row.kind,
            row.payload,
            row.timestamp
        ])?;
    }
    // The status is left alone: writing it evaluates its CHECK, an IN list that SQLite answers
    // with a temporary table on every update (the service writes it on the first event only).
    conn.prepare_cached(
        "UPDATE sessions SET event_count = ?2, last_event_at = ?3 WHERE session_id = ?1",
    )?
    .execute(params![id, count + rows.len() as i64, now_ms()])?;
    Ok(Some(count as u64 + 1))
}

// ---------------------------------------------------------------------------------------------
// handlers

#[derive(Deserialize)]
struct CreateIn<'a> {
    #[serde(rename = "sessionId")]
    session_id: String,
    language: String,
    #[serde(borrow)]
    metadata: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct EventIn<'a> {
    #[serde(rename = "eventId")]
    event_id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(borrow)]
    payload: &'a RawValue,
}

#[derive(Deserialize)]
struct BatchIn<'a> {
    #[serde(borrow)]
    events: Vec<EventIn<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventOut<'a> {
    session_id: &'a str,
    event_id: &'a str,
    seq: u64,
    #[serde(rename = "type")]
    kind: &'a str,
    payload: &'a RawValue,
    timestamp: String,
}

async fn write<T>(
    state: &Durable,
    make: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Command,
) -> Result<T, Refused> {
    let (tx, rx) = oneshot::channel();
    let unavailable = |_| refused(StatusCode::SERVICE_UNAVAILABLE, "the writer has stopped");
    state.writer.send(make(tx)).await.map_err(unavailable)?;
    rx.await
        .map_err(|_| refused(StatusCode::SERVICE_UNAVAILABLE, "no answer"))?
        .map_err(|e| refused(StatusCode::INTERNAL_SERVER_ERROR, e))
}

async fn create_session(State(state): State<Durable>, body: Bytes) -> Response {
    let Ok(new) = serde_json::from_slice::<CreateIn>(&body) else {
        return problem(StatusCode::BAD_REQUEST, "not a session");
    };
    let metadata = new.metadata.map_or("{}", RawValue::get).to_owned();
    let (id, language) = (new.session_id.clone(), new.language);
    match write(&state, |reply| {
        Command::Create(id, language, metadata, reply)
    })
    .await
    {
        Ok(created) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            json_response(status, &serde_json::json!({ "sessionId": new.session_id }))
        }
        Err(refused) => refused.into_response(),
    }
}

/// Stores `events` in `session_id`; answers them with their seqs.
async fn store(
    state: &Durable,
    session_id: String,
    events: &[EventIn<'_>],
) -> Result<Vec<u64>, Refused> {
    let timestamp = now_ms();
    let rows = events
        .iter()
        .map(|e| Row {
            event_id: e.event_id.clone(),
            kind: e.kind.clone(),
            payload: e.payload.get().to_owned(),
            timestamp,
        })
        .collect();
    let n = events.len() as u64;
    match write(state, |reply| Command::Append(session_id, rows, reply)).await? {
        Some(first) => Ok((first..first + n).collect()),
        None => Err(refused(StatusCode::NOT_FOUND, "no such session")),
    }
}

fn answered<'a>(session_id: &'a str, events: &'a [EventIn<'a>], seqs: &[u64]) -> Vec<EventOut<'a>> {
    let timestamp = format_ms(now_ms());
    events
        .iter()
        .zip(seqs)
        .map(|(e, &seq)| EventOut {
            session_id,
            event_id: &e.event_id,
            seq,
            kind: &e.kind,
            payload: e.payload,
            timestamp: timestamp.clone(),
        })
        .collect()
}

async fn add_event(
    State(state): State<Durable>,
    Path(session_id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(event) = serde_json::from_slice::<EventIn>(&body) else {
        return problem(StatusCode::BAD_REQUEST, "not an event");
    };
    let events = [event];
    match store(&state, session_id.clone(), &events).await {
        Ok(seqs) => json_response(
            StatusCode::CREATED,
            &answered(&session_id, &events, &seqs)[0],
        ),
        Err(refused) => refused.into_response(),
    }
}

async fn add_events(
    State(state): State<Durable>,
    Path(session_id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(batch) = serde_json::from_slice::<BatchIn>(&body) else {
        return problem(StatusCode::BAD_REQUEST, "not a batch");
    };
    match store(&state, session_id.clone(), &batch.events).await {
        Ok(seqs) => {
            let events = answered(&session_id, &batch.events, &seqs);
            json_response(
                StatusCode::CREATED,
                &serde_json::json!({ "events": events }),
            )
        }
        Err(refused) => refused.into_response(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StoredEvent {
    session_id: String,
    event_id: String,
    seq: u64,
    #[serde(rename = "type")]
    kind: String,
    payload: Box<RawValue>,
    timestamp: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageOut {
    session_id: String,
    status: String,
    language: String,
    metadata: Box<RawValue>,
    started_at: String,
    event_count: u64,
    events: Vec<StoredEvent>,
    pagination: serde_json::Value,
}

/// The session and its first `limit` events, from one read transaction.
fn first_page(conn: &Connection, id: &str, limit: u64) -> rusqlite::Result<Option<PageOut>> {
    conn.prepare_cached("BEGIN")?.raw_execute()?;
    let page = (|| {
        let session = conn
            .prepare_cached(
                "SELECT status, language, metadata, started_at, event_count
                 FROM sessions WHERE session_id = ?1",
            )?
            .query_row([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .optional()?;
        let Some((status, language, metadata, started_at, count)) = session else {
            return Ok(None);
        };
        let raw = |text: String| {
            RawValue::from_string(text)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))
        };
        let mut stmt = conn.prepare_cached(
            "SELECT event_id, seq, type, payload, timestamp FROM events
             WHERE session_id = ?1 AND seq > 0 AND seq <= ?2 ORDER BY seq LIMIT ?3",
        )?;
        let mut rows = stmt.query(params![id, count, limit as i64])?;
        let mut events = Vec::new();
        while let Some(r) = rows.next()? {
            events.push(StoredEvent {
                session_id: id.to_owned(),
                event_id: r.get(0)?,
                seq: r.get::<_, i64>(1)? as u64,
                kind: r.get(2)?,
                payload: raw(r.get(3)?)?,
                timestamp: format_ms(r.get(4)?),
            });
        }
        let total = count as u64;
        Ok(Some(PageOut {
            session_id: id.to_owned(),
            status,
            language,
            metadata: raw(metadata)?,
            started_at: format_ms(started_at),
            event_count: total,
            pagination: serde_json::json!({
                "total": total,
                "limit": limit,
                "page": 1,
                "totalPages": total.div_ceil(limit.max(1)),
                "hasMore": total > limit,
                "nextCursor": serde_json::Value::Null,
            }),
            events,
        }))
    })();
    conn.prepare_cached("COMMIT")?.raw_execute()?;
    page
}

async fn get_session(
    State(state): State<Durable>,
    Path(session_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let limit = query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("limit="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let (tx, rx) = oneshot::channel();
    let job: ReadJob = Box::new(move |conn: &Connection| {
        let _ = tx.send(first_page(conn, &session_id, limit).map_err(|e| e.to_string()));
    });
    if state.readers.send(job).is_err() {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "the readers have stopped");
    }
    match rx.await {
        Ok(Ok(Some(page))) => json_response(StatusCode::OK, &page),
        Ok(Ok(None)) => problem(StatusCode::NOT_FOUND, "no such session"),
        Ok(Err(e)) => problem(StatusCode::INTERNAL_SERVER_ERROR, &e),
        Err(_) => problem(StatusCode::SERVICE_UNAVAILABLE, "no answer"),
    }
}

async fn health() -> &'static str {
    r#"{"status":"ok"}"#
}

/// The same allocator as the service's binary, so that the ratios compare the work, not the
/// allocators.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), String> {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PORT").unwrap_or_else(|_| "3002".into());
    let path = std::env::var("DATABASE_PATH").unwrap_or_else(|_| "durable.db".into());
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .map_err(|e| format!("HOST:PORT: {e}"))?;
    let conn = open(&path).map_err(|e| format!("{path}: {e}"))?;
    let (writer, rx) = mpsc::channel(4096);
    let writer_thread = std::thread::spawn(move || run_writer(conn, rx));
    let (readers, jobs) = std_mpsc::sync_channel::<ReadJob>(4096);
    let jobs = Arc::new(Mutex::new(jobs));
    for _ in 0..READERS {
        let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("{path}: {e}"))?;
        let jobs = jobs.clone();
        std::thread::spawn(move || {
            loop {
                let job = match jobs.lock() {
                    Ok(jobs) => jobs.recv(),
                    Err(_) => return,
                };
                match job {
                    Ok(job) => job(&conn),
                    Err(_) => return,
                }
            }
        });
    }
    let app = Router::new()
        .route("/sessions", post(create_session))
        .route("/sessions/{session_id}", get(get_session))
        .route("/sessions/{session_id}/events", post(add_event))
        .route("/sessions/{session_id}/events:batch", post(add_events))
        .route("/health", get(health))
        .with_state(Durable { writer, readers });
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("bind {addr}: {e}"))?;
    let shutdown = async {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| e.to_string())?;
    drop(writer_thread);
    Ok(())
}
