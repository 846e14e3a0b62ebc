//! Measures live transcripts (driven by `bench/stream.sh`):
//!
//!   idle    --addr A --streams N --sessions K [--pid PID] [--http2 C]
//!           opens N streams spread over K new sessions, waits until every one is caught up, and
//!           prints the service's RSS before and with them open (VmRSS of PID). Each stream is a
//!           connection of its own (HTTP/1.1), or with `--http2 C` the streams share C HTTP/2
//!           connections (prior knowledge), taken in turn.
//!   fanout  --addr A --streams N --events E [--gap-ms G] [--http2 C]
//!           N streams follow one new session (HTTP/1.1 connections, or C HTTP/2 connections);
//!           E events are posted one at a time; for each, the delay from its 201 to the moment
//!           the last of the N streams has it (0 if all had it before the 201). Prints p50,
//!           p99 and max in milliseconds.
//!   latency --write A --read B --events N [--gap-ms G]
//!           one subscriber on B; N events posted one at a time to A; for each, the delay from
//!           the 201 reaching the writer to the event reaching the subscriber (negative: the
//!           event arrived first). Prints p50, p90, p99 and max in milliseconds.
//!
//! Streams are read with reqwest (HTTP/1.1) or hyper's HTTP/2 client; frames are parsed just
//! enough to find `id:` and `event:` lines.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use http_body_util::{BodyDataStream, Empty};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::sync::mpsc;

type Res<T> = Result<T, String>;

fn args() -> (String, HashMap<String, String>) {
    let mut raw = std::env::args().skip(1);
    let command = raw.next().unwrap_or_default();
    let mut map = HashMap::new();
    while let Some(key) = raw.next() {
        let value = raw.next().unwrap_or_default();
        map.insert(key.trim_start_matches("--").to_owned(), value);
    }
    (command, map)
}

fn get<T: std::str::FromStr>(
    map: &HashMap<String, String>,
    key: &str,
    default: Option<T>,
) -> Res<T> {
    match map.get(key) {
        Some(v) => v
            .parse()
            .map_err(|_| format!("--{key}: cannot parse {v:?}")),
        None => default.ok_or_else(|| format!("--{key} is required")),
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

async fn create_session(client: &reqwest::Client, addr: &str, id: &str) -> Res<()> {
    let r = client
        .post(format!("http://{addr}/sessions"))
        .json(&json!({"sessionId": id, "language": "en"}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(format!("create {id}: {}", r.status()))
    }
}

/// A frame's `id` (if any) and `event` name, as they arrive.
type Frames = mpsc::UnboundedReceiver<(Option<u64>, String)>;

/// Opens a stream and forwards its frames until it ends.
async fn open_stream(client: &reqwest::Client, addr: &str, session: &str) -> Res<Frames> {
    let response = client
        .get(format!("http://{addr}/sessions/{session}/events"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("stream {session}: {}", response.status()));
    }
    Ok(forward(response.bytes_stream()))
}

/// An HTTP/2 connection with prior knowledge: its sender (the connection runs in a task).
async fn connect_h2(addr: &str) -> Res<SendRequest<Empty<Bytes>>> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(send)
}

/// Opens a stream on an HTTP/2 connection and forwards its frames until it ends.
async fn open_stream_h2(
    send: &mut SendRequest<Empty<Bytes>>,
    addr: &str,
    session: &str,
) -> Res<Frames> {
    send.ready().await.map_err(|e| e.to_string())?;
    let request = hyper::Request::get(format!("http://{addr}/sessions/{session}/events"))
        .header("accept", "text/event-stream")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let response = send
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("stream {session}: {}", response.status()));
    }
    Ok(forward(BodyDataStream::new(response.into_body())))
}

/// Parses a stream's body into frames, sent on as they arrive.
fn forward<E>(body: impl Stream<Item = Result<Bytes, E>> + Send + 'static) -> Frames {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut body = std::pin::pin!(body);
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let mut id = None;
                let mut event = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.parse().ok();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_owned();
                    }
                }
                if !event.is_empty() && tx.send((id, event)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

async fn wait_for(frames: &mut Frames, event: &str, limit: Duration) -> Res<Option<u64>> {
    let started = Instant::now();
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, frames.recv()).await {
            Ok(Some((id, name))) if name == event => return Ok(id),
            Ok(Some(_)) => {}
            Ok(None) => return Err(format!("the stream ended before {event}")),
            Err(_) => return Err(format!("no {event} within {limit:?}")),
        }
    }
}

async fn idle(map: &HashMap<String, String>) -> Res<()> {
    let addr: String = get(map, "addr", None)?;
    let streams: usize = get(map, "streams", Some(1000))?;
    let sessions: usize = get(map, "sessions", Some(100))?;
    let pid: Option<u32> = map.get("pid").and_then(|p| p.parse().ok());
    let http2: usize = get(map, "http2", Some(0))?;
    let client = reqwest::Client::new();
    let tag = std::process::id();
    let names: Vec<String> = (0..sessions).map(|s| format!("idle-{tag}-{s}")).collect();
    for name in &names {
        create_session(&client, &addr, name).await?;
    }
    let before = pid.and_then(rss_kib);
    let open = open_many(&addr, &names, streams, http2).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let with = pid.and_then(rss_kib);
    let kib = |v: Option<u64>| v.map_or("?".to_owned(), |v| v.to_string());
    println!(
        "{{\"streams\": {streams}, \"sessions\": {sessions}, \"http2_connections\": {http2}, \"rss_before_kib\": {}, \"rss_with_streams_kib\": {}}}",
        kib(before),
        kib(with)
    );
    drop(open);
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// Posts event `e-{seq}` to `session`: when its 201 arrived.
async fn post_event(client: &reqwest::Client, addr: &str, session: &str, seq: u64) -> Res<Instant> {
    let r = client
        .post(format!("http://{addr}/sessions/{session}/events"))
        .json(&json!({"eventId": format!("e-{seq}"), "type": "user_speech", "payload": {"text": "hello"}}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let acknowledged = Instant::now();
    if r.status().as_u16() != 201 {
        return Err(format!("event {seq}: {}", r.status()));
    }
    Ok(acknowledged)
}

async fn latency(map: &HashMap<String, String>) -> Res<()> {
    let write: String = get(map, "write", None)?;
    let read: String = get(map, "read", None)?;
    let events: u64 = get(map, "events", Some(200))?;
    let gap = Duration::from_millis(get(map, "gap-ms", Some(10))?);
    let client = reqwest::Client::new();
    let session = format!("latency-{}", std::process::id());
    create_session(&client, &write, &session).await?;
    let mut frames = open_stream(&client, &read, &session).await?;
    wait_for(&mut frames, "caught-up", Duration::from_secs(30)).await?;
    let mut delays = Vec::with_capacity(events as usize);
    for seq in 1..=events {
        let acknowledged = post_event(&client, &write, &session, seq).await?;
        // The frame may already be waiting: it was received before the 201 was.
        let (id, received) = loop {
            let (id, name) = tokio::time::timeout(Duration::from_secs(30), frames.recv())
                .await
                .map_err(|_| format!("event {seq} did not arrive within 30 s"))?
                .ok_or("the stream ended")?;
            if name == "event" {
                break (id, Instant::now());
            }
        };
        if id != Some(seq) {
            return Err(format!("expected event {seq}, got {id:?}"));
        }
        let ms = if received >= acknowledged {
            received.duration_since(acknowledged).as_secs_f64() * 1000.0
        } else {
            -(acknowledged.duration_since(received).as_secs_f64() * 1000.0)
        };
        delays.push(ms);
        tokio::time::sleep(gap).await;
    }
    delays.sort_by(f64::total_cmp);
    println!(
        "{{\"events\": {events}, \"p50_ms\": {:.2}, \"p90_ms\": {:.2}, \"p99_ms\": {:.2}, \"max_ms\": {:.2}}}",
        percentile(&delays, 0.5),
        percentile(&delays, 0.9),
        percentile(&delays, 0.99),
        percentile(&delays, 1.0)
    );
    Ok(())
}

/// Opens `streams` streams on `sessions` in turn, each a connection of its own (HTTP/1.1) or
/// over `http2` HTTP/2 connections in turn; returns once every one is caught up.
async fn open_many(
    addr: &str,
    sessions: &[String],
    streams: usize,
    http2: usize,
) -> Res<Vec<Frames>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| e.to_string())?;
    let mut connections = Vec::with_capacity(http2);
    for _ in 0..http2 {
        connections.push(connect_h2(addr).await?);
    }
    let mut open = Vec::with_capacity(streams);
    for n in 0..streams {
        let session = &sessions[n % sessions.len()];
        let mut frames = match connections.len() {
            0 => open_stream(&client, addr, session).await?,
            c => open_stream_h2(&mut connections[n % c], addr, session).await?,
        };
        wait_for(&mut frames, "caught-up", Duration::from_secs(30)).await?;
        open.push(frames);
    }
    Ok(open)
}

async fn fanout(map: &HashMap<String, String>) -> Res<()> {
    let addr: String = get(map, "addr", None)?;
    let streams: usize = get(map, "streams", Some(1000))?;
    let events: u64 = get(map, "events", Some(100))?;
    let gap = Duration::from_millis(get(map, "gap-ms", Some(50))?);
    let http2: usize = get(map, "http2", Some(0))?;
    let client = reqwest::Client::new();
    let session = format!("fanout-{}", std::process::id());
    create_session(&client, &addr, &session).await?;
    // Every stream's event frames, with when they arrived, on one channel.
    let (tx, mut arrivals) = mpsc::unbounded_channel::<(u64, Instant)>();
    for mut frames in open_many(&addr, std::slice::from_ref(&session), streams, http2).await? {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some((id, name)) = frames.recv().await {
                if name == "event"
                    && let Some(seq) = id
                    && tx.send((seq, Instant::now())).is_err()
                {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut delays = Vec::with_capacity(events as usize);
    for seq in 1..=events {
        let acknowledged = post_event(&client, &addr, &session, seq).await?;
        let (mut got, mut last) = (0, acknowledged);
        while got < streams {
            let (id, at) = tokio::time::timeout(Duration::from_secs(30), arrivals.recv())
                .await
                .map_err(|_| format!("event {seq}: {got} of {streams} streams within 30 s"))?
                .ok_or("the streams ended")?;
            if id != seq {
                return Err(format!("expected event {seq}, a stream sent {id}"));
            }
            got += 1;
            last = last.max(at);
        }
        delays.push(last.duration_since(acknowledged).as_secs_f64() * 1000.0);
        tokio::time::sleep(gap).await;
    }
    delays.sort_by(f64::total_cmp);
    println!(
        "{{\"streams\": {streams}, \"http2_connections\": {http2}, \"events\": {events}, \"p50_ms\": {:.2}, \"p99_ms\": {:.2}, \"max_ms\": {:.2}}}",
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        percentile(&delays, 1.0)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let (command, map) = args();
    let result = match command.as_str() {
        "idle" => idle(&map).await,
        "latency" => latency(&map).await,
        "fanout" => fanout(&map).await,
        _ => {
            Err("usage: bench_stream idle|fanout|latency --options (see the file's header)".into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_stream: {e}");
            ExitCode::FAILURE
        }
    }
}
