//! Webhook benchmark helper (bench/webhooks.sh): a fast receiver on loopback, and two
//! measurements against a running service (started with WEBHOOK_ALLOW_PRIVATE_NETWORKS=true):
//!
//! - `receive --port P`: answers every POST with 204 until killed (for the ingest pairs).
//! - `throughput --addr A --events N --sessions K`: an endpoint subscribed to `event.appended`,
//!   N events appended in batches of 100 to K calls in turn; messages per second from the first
//!   to the last one received, and that each event's message came, once. (One call's messages
//!   go one after another: each waits for the one before to have had its first attempt.)
//! - `latency --addr A --rate R --secs S`: one event at a time, R per second; for each, the time
//!   from its 201 to the receiver's request (p50, p99, max).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// When each message arrived, by event id, and how many times.
#[derive(Default)]
struct Arrivals {
    at: HashMap<String, Instant>,
    times: HashMap<String, u32>,
}

async fn receive(State(arrivals): State<Arc<Mutex<Arrivals>>>, body: Bytes) -> StatusCode {
    let now = Instant::now();
    if let Ok(body) = serde_json::from_slice::<Value>(&body)
        && let Some(id) = body["data"]["eventId"].as_str()
        && let Ok(mut a) = arrivals.lock()
    {
        a.at.entry(id.to_owned()).or_insert(now);
        *a.times.entry(id.to_owned()).or_default() += 1;
    }
    StatusCode::NO_CONTENT
}

async fn receiver(port: u16) -> Res<(SocketAddr, Arc<Mutex<Arrivals>>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let arrivals = Arc::new(Mutex::new(Arrivals::default()));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(arrivals.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, arrivals))
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == &format!("--{name}"))
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> Res<Value> {
    let r = client.post(url).json(&body).send().await?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("{status}: {body}").into());
    }
    Ok(body)
}

/// A receiver, an endpoint for it (`event.appended`) and a session; the session's events URL.
async fn setup(
    client: &reqwest::Client,
    addr: &str,
    session: &str,
) -> Res<(String, Arc<Mutex<Arrivals>>)> {
    let (mut urls, arrivals) = setup_many(client, addr, session, 1).await?;
    Ok((urls.remove(0), arrivals))
}

/// A receiver, an endpoint for it (`event.appended`) and `sessions` calls; their events URLs.
async fn setup_many(
    client: &reqwest::Client,
    addr: &str,
    prefix: &str,
    sessions: usize,
) -> Res<(Vec<String>, Arc<Mutex<Arrivals>>)> {
    let (at, arrivals) = receiver(0).await?;
    post(
        client,
        format!("http://{addr}/webhooks"),
        json!({"url": format!("http://{at}/hook"), "types": ["event.appended"]}),
    )
    .await?;
    let mut urls = Vec::with_capacity(sessions);
    for n in 0..sessions {
        let session = if sessions == 1 {
            prefix.to_owned()
        } else {
            format!("{prefix}-{n}")
        };
        post(
            client,
            format!("http://{addr}/sessions"),
            json!({"sessionId": session, "language": "en"}),
        )
        .await?;
        urls.push(format!("http://{addr}/sessions/{session}/events"));
    }
    Ok((urls, arrivals))
}

async fn wait_for(arrivals: &Mutex<Arrivals>, n: usize, timeout: Duration) -> Res<()> {
    let deadline = Instant::now() + timeout;
    while arrivals.lock().map_or(0, |a| a.at.len()) < n {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {n} messages arrived",
                arrivals.lock().map_or(0, |a| a.at.len())
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Duplicates would come right after.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

async fn throughput(args: &[String]) -> Res<()> {
    let addr: String = arg(args, "addr", "127.0.0.1:3000".to_owned());
    let events: usize = arg(args, "events", 20_000);
    let sessions: usize = arg(args, "sessions", 100);
    let client = reqwest::Client::new();
    let (urls, arrivals) = setup_many(&client, &addr, "bench-throughput", sessions).await?;
    let started = Instant::now();
    for chunk in 0..events.div_ceil(100) {
        let batch: Vec<Value> = (chunk * 100..((chunk + 1) * 100).min(events))
            .map(|i| json!({"eventId": format!("t{i}"), "type": "user_speech", "payload": {"text": "hello there"}}))
            .collect();
        let url = &urls[chunk % urls.len()];
        post(&client, format!("{url}:batch"), json!({"events": batch})).await?;
    }
    let ingested = started.elapsed();
    wait_for(&arrivals, events, Duration::from_secs(600)).await?;
    let a = arrivals.lock().map_err(|_| "poisoned")?;
    let first = a.at.values().min().copied().ok_or("nothing arrived")?;
    let last = a.at.values().max().copied().ok_or("nothing arrived")?;
    let twice = a.times.values().filter(|n| **n > 1).count();
    let spread = (last - first).as_secs_f64();
    println!(
        "{{\"events\": {events}, \"sessions\": {sessions}, \"ingest_s\": {:.2}, \"delivery_s\": {spread:.2}, \"messages_per_s\": {:.0}, \"first_to_last_from_start_s\": {:.2}, \"duplicates\": {twice}}}",
        ingested.as_secs_f64(),
        events as f64 / spread.max(1e-9),
        (last - started).as_secs_f64(),
    );
    Ok(())
}

async fn latency(args: &[String]) -> Res<()> {
    let addr: String = arg(args, "addr", "127.0.0.1:3000".to_owned());
    let rate: f64 = arg(args, "rate", 50.0);
    let secs: f64 = arg(args, "secs", 20.0);
    let client = reqwest::Client::new();
    let (url, arrivals) = setup(&client, &addr, "bench-latency").await?;
    let n = (rate * secs) as usize;
    let mut acknowledged = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    for i in 0..n {
        tick.tick().await;
        let id = format!("l{i}");
        post(
            &client,
            url.clone(),
            json!({"eventId": id, "type": "user_speech", "payload": {"text": "hi"}}),
        )
        .await?;
        acknowledged.insert(id, Instant::now());
    }
    wait_for(&arrivals, n, Duration::from_secs(60)).await?;
    let a = arrivals.lock().map_err(|_| "poisoned")?;
    let mut delays: Vec<f64> = acknowledged
        .iter()
        .map(|(id, at)| {
            a.at.get(id).map_or(f64::INFINITY, |got| {
                got.saturating_duration_since(*at).as_secs_f64() * 1000.0
            })
        })
        .collect();
    delays.sort_by(f64::total_cmp);
    let pick =
        |q: f64| delays[((delays.len() as f64 * q).ceil() as usize).clamp(1, delays.len()) - 1];
    println!(
        "{{\"messages\": {n}, \"rate\": {rate}, \"p50_ms\": {:.1}, \"p99_ms\": {:.1}, \"max_ms\": {:.1}}}",
        pick(0.5),
        pick(0.99),
        pick(1.0)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("receive") => {
            let (addr, _) = receiver(arg(&args, "port", 0)).await?;
            eprintln!("receiving on {addr}");
            std::future::pending::<()>().await;
            Ok(())
        }
        Some("throughput") => throughput(&args).await,
        Some("latency") => latency(&args).await,
        _ => Err("usage: bench_webhooks receive|throughput|latency [--addr A] ...".into()),
    }
}
