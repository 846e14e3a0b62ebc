//! The benchmark's load generator, seeder and reporter (driven by `./bench.sh`; see bench/README.md).
//!
//! Subcommands:
//!   free-port                                   print a free loopback port
//!   wait        --addr A [--timeout S]          wait until GET /health answers 200
//!   ingest      --addr A --scenario NAME ...    POST distinct events into --sessions K new sessions
//!                                               (or into the existing --session ID), then check
//!                                               each session's stored eventCount; --batch N (1)
//!                                               sends N events per request to events:batch;
//!                                               --pii true puts a card number, an address and a
//!                                               phone number in every other event's text
//!   read        --addr A --session ID --at first|page-near-end|cursor-near-end ...
//!   mix         --addr A ...                    call-like: create, --events-per-call events, read,
//!                                               complete, over and over
//!   seed-prepare --addr A --session ID          create the seed session and its event 1 over HTTP
//!   seed        --db PATH --session ID --events N   insert events 2..=N straight into SQLite
//!   report      --runs FILE --out FILE ...      print the table and write the JSON summary
//!
//! Load options: --conns N (32), --duration S (10), --warmup S (1), --requests N (a fixed count
//! instead of a duration), --threads N (client runtime workers, 2), --pid PID (the server, for its
//! peak RSS and CPU time), --out FILE (append the run's JSON line), --target
//! service|baseline|durable, --kind POST|GET|MIX.
//!
//! Every connection is one task with its own keep-alive HTTP/1.1 connection (hyper), sending one
//! request at a time; latencies go to per-task hdrhistograms merged at the end. Every eventId is
//! unique: a per-run random prefix and a bijective mix of a global counter.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

type Res<T> = Result<T, String>;

// ---------------------------------------------------------------------------------------------
// Arguments

struct Args(HashMap<String, String>);

impl Args {
    fn parse(raw: impl Iterator<Item = String>) -> Res<Self> {
        let mut map = HashMap::new();
        let mut raw = raw.peekable();
        while let Some(key) = raw.next() {
            let Some(name) = key.strip_prefix("--") else {
                return Err(format!("unexpected argument {key:?}"));
            };
            let value = match raw.peek() {
                Some(v) if !v.starts_with("--") => raw.next().unwrap_or_default(),
                _ => "true".to_owned(),
            };
            map.insert(name.to_owned(), value);
        }
        Ok(Args(map))
    }

    fn str(&self, name: &str) -> Res<String> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| format!("--{name} is required"))
    }

    fn str_or(&self, name: &str, default: &str) -> String {
        self.0
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Res<T> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name} {v:?} is not a number")),
        }
    }

    fn opt_num<T: std::str::FromStr>(&self, name: &str) -> Res<Option<T>> {
        match self.0.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("--{name} {v:?} is not a number")),
        }
    }

    fn addr(&self) -> Res<SocketAddr> {
        let raw = self.str("addr")?;
        raw.parse()
            .map_err(|_| format!("--addr {raw:?} is not HOST:PORT"))
    }
}

// ---------------------------------------------------------------------------------------------
// What the load sends. The seeder writes exactly the same events, so keep these in one place.

const TEXTS: [&str; 8] = [
    "Hi, I'm calling about my appointment next week.",
    "Sure, I can help with that. May I have your name, please?",
    "It's Alex Morgan, M-O-R-G-A-N.",
    "Thank you, Alex. I see an appointment on Tuesday at 3 PM.",
    "Could we move it to Thursday morning instead?",
    "Thursday at 9:30 AM is available. Shall I book it?",
    "Yes, please. And can you send me a text confirmation?",
    "Done. You'll receive a confirmation text shortly.",
];

const METADATA: &str = r#"{"caller":"+15550100","callee":"+15550199","campaign":"bench"}"#;

/// splitmix64's finalizer: a bijection on u64, so distinct inputs give distinct outputs.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn event_type(i: u64) -> &'static str {
    if i.is_multiple_of(10) {
        "system"
    } else if i % 2 == 1 {
        "user_speech"
    } else {
        "bot_speech"
    }
}

/// The payload of event number `i`, as the client sends it (~130 bytes).
fn payload_text(i: u64) -> String {
    format!(
        r#"{{"text":"{}","confidence":0.{:02},"turn":{}}}"#,
        TEXTS[(i % 8) as usize],
        80 + i % 20,
        i
    )
}

fn event_body(event_id: &str, i: u64) -> String {
    format!(
        r#"{{"eventId":"{event_id}","type":"{}","payload":{}}}"#,
        event_type(i),
        payload_text(i)
    )
}

/// What a caller says when paying, for `ingest --pii true`: a card number, an address and a phone
/// number that the service's `REDACT` finds (and that a run without it stores as sent).
const PII: &str =
    " My card is 4111 1111 1111 1111, mail alex.morgan@example.com or call +1 415 555 0132.";

/// Like [`event_body`], with [`PII`] in the text of every other event when `pii`.
fn ingest_event_body(event_id: &str, i: u64, pii: bool) -> String {
    if !pii || i % 2 == 1 {
        return event_body(event_id, i);
    }
    format!(
        r#"{{"eventId":"{event_id}","type":"{}","payload":{{"text":"{}{PII}","confidence":0.{:02},"turn":{i}}}}}"#,
        event_type(i),
        TEXTS[(i % 8) as usize],
        80 + i % 20,
    )
}

fn seed_event_id(seq: u64) -> String {
    format!("seed-{:016x}", mix64(seq))
}

/// A random 8-hex-digit prefix for this process's ids.
fn run_prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    format!(
        "{:08x}",
        mix64(nanos ^ u64::from(std::process::id())) as u32
    )
}

fn load_event_id(prefix: &str, i: u64) -> String {
    format!("{prefix}-{:016x}", mix64(i))
}

fn session_body(session_id: &str) -> String {
    format!(r#"{{"sessionId":"{session_id}","language":"en-US","metadata":{METADATA}}}"#)
}

// ---------------------------------------------------------------------------------------------
// HTTP client: one keep-alive HTTP/1.1 connection, reconnected after a failure.

struct Client {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        Client { addr, sender: None }
    }

    async fn connect(addr: SocketAddr) -> Res<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Res<(StatusCode, Bytes)> {
        if self.sender.is_none() {
            self.sender = Some(Self::connect(self.addr).await?);
        }
        let sender = self.sender.as_mut().expect("connected above");
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "127.0.0.1");
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let result = async {
            sender
                .ready()
                .await
                .map_err(|e| format!("not ready: {e}"))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("request: {e}"))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            Ok((status, bytes))
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn json(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
        want: StatusCode,
    ) -> Res<Value> {
        let (status, bytes) = self.call(method.clone(), path, body).await?;
        if status != want {
            return Err(format!(
                "{method} {path}: expected {want}, got {status}: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("{method} {path}: not JSON: {e}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Measurement

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

/// What one connection task saw. Requests started before `warm_end` are warmup: sent (and, for
/// writes, checked) but not in the latency histogram or the rate.
struct Recorder {
    warm_end: Instant,
    hist: Histogram<u64>,
    requests: u64,
    errors: u64,
    warm_requests: u64,
    warm_errors: u64,
    first_error: Option<String>,
}

impl Recorder {
    fn new(warm_end: Instant) -> Self {
        Recorder {
            warm_end,
            hist: histogram(),
            requests: 0,
            errors: 0,
            warm_requests: 0,
            warm_errors: 0,
            first_error: None,
        }
    }

    /// Records a request that started at `t0`; `error` is why it failed, if it did.
    fn record(&mut self, t0: Instant, error: Option<String>) {
        let failed = error.is_some();
        if failed && self.first_error.is_none() {
            self.first_error = error;
        }
        if t0 >= self.warm_end {
            self.hist.saturating_record(t0.elapsed().as_micros() as u64);
            self.requests += 1;
            self.errors += u64::from(failed);
        } else {
            self.warm_requests += 1;
            self.warm_errors += u64::from(failed);
        }
    }

    fn merge(&mut self, other: Recorder) {
        self.hist.add(&other.hist).expect("same histogram bounds");
        self.requests += other.requests;
        self.errors += other.errors;
        self.warm_requests += other.warm_requests;
        self.warm_errors += other.warm_errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Sends one request and records it; returns the response when it had the wanted status.
async fn timed(
    client: &mut Client,
    rec: &mut Recorder,
    method: Method,
    path: &str,
    body: Option<String>,
    want: StatusCode,
) -> Option<Bytes> {
    let t0 = Instant::now();
    match client.call(method.clone(), path, body).await {
        Ok((status, bytes)) if status == want => {
            rec.record(t0, None);
            Some(bytes)
        }
        Ok((status, bytes)) => {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
            rec.record(t0, Some(format!("{method} {path}: {status}: {text}")));
            None
        }
        Err(e) => {
            rec.record(t0, Some(e));
            // Do not spin on a dead server.
            tokio::time::sleep(Duration::from_millis(10)).await;
            None
        }
    }
}

struct LoadSpec {
    addr: SocketAddr,
    conns: usize,
    warmup: Duration,
    duration: Duration,
    /// A fixed number of units of work instead of a duration (no warmup then).
    requests: Option<u64>,
    /// The server's process, for its CPU time and peak RSS.
    pid: Option<u32>,
}

impl LoadSpec {
    fn from(args: &Args) -> Res<Self> {
        let requests = args.opt_num::<u64>("requests")?;
        Ok(LoadSpec {
            addr: args.addr()?,
            conns: args.num("conns", 32)?,
            warmup: if requests.is_some() {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(args.num("warmup", 1.0)?)
            },
            duration: Duration::from_secs_f64(args.num("duration", 10.0)?),
            requests,
            pid: args.opt_num("pid")?,
        })
    }
}

/// The work one connection does, one unit per `step`.
#[derive(Clone)]
enum Work {
    Ingest(Arc<IngestShared>),
    Read(Arc<String>),
    Mix(Arc<MixShared>),
}

struct IngestShared {
    prefix: String,
    /// Events per request: 1 posts to `/events`, more to `/events:batch`.
    batch: u64,
    /// Whether every other event's text holds [`PII`].
    pii: bool,
    sessions: Vec<String>,
    paths: Vec<String>,
    /// 201s per session.
    created: Vec<AtomicU64>,
    next: AtomicU64,
    limit: Option<u64>,
}

struct MixShared {
    prefix: String,
    events_per_call: u64,
    next_call: AtomicU64,
    calls: AtomicU64,
    /// Calls whose read-back eventCount differed from their 201s.
    mismatches: AtomicU64,
    events_created: AtomicU64,
    limit: Option<u64>,
}

impl Work {
    /// Does one unit of work; false when a fixed count is used up.
    async fn step(&self, client: &mut Client, rec: &mut Recorder) -> bool {
        match self {
            Work::Ingest(s) => {
                let i = s.next.fetch_add(1, Ordering::Relaxed);
                if s.limit.is_some_and(|n| i >= n) {
                    return false;
                }
                let k = (i % s.sessions.len() as u64) as usize;
                let body = if s.batch > 1 {
                    let events: Vec<String> = (i * s.batch..(i + 1) * s.batch)
                        .map(|n| ingest_event_body(&load_event_id(&s.prefix, n), n, s.pii))
                        .collect();
                    format!(r#"{{"events":[{}]}}"#, events.join(","))
                } else {
                    ingest_event_body(&load_event_id(&s.prefix, i), i, s.pii)
                };
                if timed(
                    client,
                    rec,
                    Method::POST,
                    &s.paths[k],
                    Some(body),
                    StatusCode::CREATED,
                )
                .await
                .is_some()
                {
                    s.created[k].fetch_add(s.batch, Ordering::Relaxed);
                }
                true
            }
            Work::Read(path) => {
                timed(client, rec, Method::GET, path, None, StatusCode::OK).await;
                true
            }
            Work::Mix(s) => {
                let call = s.next_call.fetch_add(1, Ordering::Relaxed);
                if s.limit.is_some_and(|n| call >= n) {
                    return false;
                }
                let sid = format!("call-{}-{call}", s.prefix);
                if timed(
                    client,
                    rec,
                    Method::POST,
                    "/sessions",
                    Some(session_body(&sid)),
                    StatusCode::CREATED,
                )
                .await
                .is_none()
                {
                    return true;
                }
                let events_path = format!("/sessions/{sid}/events");
                let mut ok = 0u64;
                for e in 0..s.events_per_call {
                    let i = call * s.events_per_call + e;
                    let body = event_body(&load_event_id(&s.prefix, i), i);
                    if timed(
                        client,
                        rec,
                        Method::POST,
                        &events_path,
                        Some(body),
                        StatusCode::CREATED,
                    )
                    .await
                    .is_some()
                    {
                        ok += 1;
                    }
                }
                s.events_created.fetch_add(ok, Ordering::Relaxed);
                let read = timed(
                    client,
                    rec,
                    Method::GET,
                    &format!("/sessions/{sid}?limit=20"),
                    None,
                    StatusCode::OK,
                )
                .await;
                let stored = read
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                    .and_then(|v| v["eventCount"].as_u64());
                if stored != Some(ok) {
                    s.mismatches.fetch_add(1, Ordering::Relaxed);
                }
                timed(
                    client,
                    rec,
                    Method::POST,
                    &format!("/sessions/{sid}/complete"),
                    None,
                    StatusCode::OK,
                )
                .await;
                s.calls.fetch_add(1, Ordering::Relaxed);
                true
            }
        }
    }
}

struct Measured {
    rec: Recorder,
    elapsed: Duration,
    /// CPU seconds the server and this load generator used in the measured window.
    server_cpu_s: Option<f64>,
    client_cpu_s: Option<f64>,
    /// CPU seconds the whole machine was busy in the window (all processes).
    machine_cpu_s: Option<f64>,
}

/// Busy CPU seconds of the whole machine since boot (`/proc/stat`: all but idle and iowait).
fn machine_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|t| t.parse().ok())
        .collect();
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some((ticks.iter().sum::<f64>() - idle) / 100.0)
}

/// User plus system CPU seconds a process has used (`/proc/PID/stat`, in USER_HZ = 100 ticks/s).
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = rest.get(11)?.parse().ok()?;
    let stime: f64 = rest.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Runs `work` on `spec.conns` connections for the warmup plus the duration (or the fixed count).
async fn drive(spec: &LoadSpec, work: Work) -> Measured {
    let start = Instant::now();
    let warm_end = start + spec.warmup;
    let end = warm_end + spec.duration;
    let fixed = spec.requests.is_some();
    let mut tasks = Vec::with_capacity(spec.conns);
    for _ in 0..spec.conns {
        let work = work.clone();
        let addr = spec.addr;
        tasks.push(tokio::spawn(async move {
            let mut client = Client::new(addr);
            let mut rec = Recorder::new(warm_end);
            loop {
                if !fixed && Instant::now() >= end {
                    break;
                }
                if !work.step(&mut client, &mut rec).await {
                    break;
                }
            }
            rec
        }));
    }
    let server_pid = spec.pid;
    let cpu_at_warm_end = tokio::spawn(async move {
        tokio::time::sleep_until(warm_end.into()).await;
        (
            cpu_seconds(server_pid),
            cpu_seconds(None),
            machine_cpu_seconds(),
        )
    });
    let mut total = Recorder::new(warm_end);
    for task in tasks {
        match task.await {
            Ok(rec) => total.merge(rec),
            Err(e) => {
                total.errors += 1;
                total.first_error.get_or_insert(format!("task failed: {e}"));
            }
        }
    }
    let elapsed = Instant::now().saturating_duration_since(warm_end);
    let (server_after, client_after, machine_after) = (
        cpu_seconds(spec.pid),
        cpu_seconds(None),
        machine_cpu_seconds(),
    );
    let (server_before, client_before, machine_before) =
        cpu_at_warm_end.await.unwrap_or((None, None, None));
    let used = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a - b);
    Measured {
        rec: total,
        elapsed,
        server_cpu_s: spec.pid.and(used(server_after, server_before)),
        client_cpu_s: used(client_after, client_before),
        machine_cpu_s: used(machine_after, machine_before),
    }
}

// ---------------------------------------------------------------------------------------------
// Results

fn peak_rss_mb(pid: Option<u32>) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn result_json(
    args: &Args,
    spec: &LoadSpec,
    m: &Measured,
    check: Value,
    extra: Value,
) -> Res<Value> {
    let pid = args.opt_num::<u32>("pid")?;
    let h = &m.rec.hist;
    let secs = m.elapsed.as_secs_f64().max(1e-9);
    let batch = extra["batch"].as_u64().unwrap_or(1) as f64;
    Ok(json!({
        "id": args.str_or("id", ""),
        "scenario": args.str("scenario")?,
        "target": args.str_or("target", "service"),
        "kind": args.str_or("kind", "POST"),
        "backend": args.str_or("backend", "sqlite"),
        "note": args.str_or("note", ""),
        "conns": spec.conns,
        "warmup_s": spec.warmup.as_secs_f64(),
        "elapsed_s": secs,
        "requests": m.rec.requests,
        "errors": m.rec.errors,
        "warmup_requests": m.rec.warm_requests,
        "warmup_errors": m.rec.warm_errors,
        "first_error": m.rec.first_error,
        "rps": m.rec.requests as f64 / secs,
        // Events per request: the ingest's --batch, else 1 (reads and the mix count requests).
        "events_per_s": m.rec.requests as f64 / secs * batch,
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p90_ms": ms(h.value_at_quantile(0.90)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "p999_ms": ms(h.value_at_quantile(0.999)),
        "max_ms": ms(h.max()),
        "mean_ms": h.mean() / 1000.0,
        "peak_rss_mb": peak_rss_mb(pid),
        // CPU per measured request: on this shared machine the clearest view of what a request costs.
        "server_cpu_us_per_req": m.server_cpu_s.map(|c| c * 1e6 / m.rec.requests.max(1) as f64),
        "client_cpu_us_per_req": m.client_cpu_s.map(|c| c * 1e6 / m.rec.requests.max(1) as f64),
        "server_cpu_cores": m.server_cpu_s.map(|c| c / secs),
        "client_cpu_cores": m.client_cpu_s.map(|c| c / secs),
        // What other processes (builds, tests) used meanwhile: a noise indicator.
        "other_cpu_cores": m
            .machine_cpu_s
            .zip(m.server_cpu_s.zip(m.client_cpu_s))
            .map(|(all, (srv, cli))| ((all - srv - cli) / secs).max(0.0)),
        "check": check,
        "extra": extra,
    }))
}

fn emit(args: &Args, result: &Value) -> Res<()> {
    let line = result.to_string();
    if let Some(path) = args.0.get("out") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("{path}: {e}"))?;
        writeln!(f, "{line}").map_err(|e| format!("{path}: {e}"))?;
    }
    let f = |k: &str| result[k].as_f64().unwrap_or(f64::NAN);
    eprintln!(
        "  {:<52} {:>8} req  {:>3} err  {:>9.0} req/s {:>9.0} ev/s  p50 {:.2}  p99 {:.2}  max {:.2} ms  rss {} MB  cpu {} us/req  {}",
        result["scenario"].as_str().unwrap_or_default(),
        result["requests"].as_u64().unwrap_or(0),
        result["errors"].as_u64().unwrap_or(0),
        f("rps"),
        f("events_per_s"),
        f("p50_ms"),
        f("p99_ms"),
        f("max_ms"),
        result["peak_rss_mb"]
            .as_f64()
            .map(|v| format!("{v:.1}"))
            .unwrap_or("-".into()),
        result["server_cpu_us_per_req"]
            .as_f64()
            .map(|v| format!("{v:.0}"))
            .unwrap_or("-".into()),
        match &result["check"] {
            Value::Null => String::new(),
            c => format!("check: {}", c["summary"].as_str().unwrap_or_default()),
        }
    );
    if let Some(e) = result["first_error"].as_str() {
        eprintln!("    first error: {e}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Subcommands

/// Runs `f` over `items` on up to `conns` connections at once (setup and checks, not measured).
async fn fan_out<T, R, F, Fut>(addr: SocketAddr, conns: usize, items: Vec<T>, f: F) -> Res<Vec<R>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(Client, T) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = (Client, Res<R>)> + Send,
{
    let n = items.len();
    let queue = Arc::new(std::sync::Mutex::new(
        items.into_iter().enumerate().collect::<Vec<_>>(),
    ));
    let mut tasks = Vec::new();
    for _ in 0..conns.clamp(1, n.max(1)) {
        let queue = queue.clone();
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::new(addr);
            let mut out = Vec::new();
            loop {
                let next = queue.lock().expect("queue lock").pop();
                let Some((idx, item)) = next else { break };
                let (c, r) = f(client, item).await;
                client = c;
                out.push((idx, r?));
            }
            Ok::<_, String>(out)
        }));
    }
    let mut all: Vec<Option<R>> = (0..n).map(|_| None).collect();
    for t in tasks {
        for (idx, r) in t.await.map_err(|e| e.to_string())?? {
            all[idx] = Some(r);
        }
    }
    Ok(all
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect())
}

async fn event_counts(addr: SocketAddr, conns: usize, sessions: Vec<String>) -> Res<Vec<u64>> {
    fan_out(addr, conns, sessions, |mut client, sid| async move {
        let r = client
            .json(
                Method::GET,
                &format!("/sessions/{sid}?limit=1"),
                None,
                StatusCode::OK,
            )
            .await
            .and_then(|v| {
                v["eventCount"]
                    .as_u64()
                    .ok_or_else(|| format!("no eventCount for {sid}"))
            });
        (client, r)
    })
    .await
}

async fn cmd_ingest(args: &Args) -> Res<()> {
    let spec = LoadSpec::from(args)?;
    let prefix = run_prefix();
    let verify = args.str_or("verify", "true") == "true";
    let (sessions, before) = match args.0.get("session") {
        Some(existing) => {
            let sessions = vec![existing.clone()];
            let before = event_counts(spec.addr, 1, sessions.clone()).await?;
            (sessions, before)
        }
        None => {
            let k: usize = args.num("sessions", 1)?;
            let sessions: Vec<String> = (0..k).map(|j| format!("bench-{prefix}-{j}")).collect();
            fan_out(
                spec.addr,
                spec.conns,
                sessions.clone(),
                |mut client, sid| async move {
                    let r = client
                        .json(
                            Method::POST,
                            "/sessions",
                            Some(session_body(&sid)),
                            StatusCode::CREATED,
                        )
                        .await
                        .map(|_| ());
                    (client, r)
                },
            )
            .await?;
            (sessions, vec![0; k])
        }
    };
    let batch: u64 = args.num("batch", 1)?;
    let route = if batch > 1 { "events:batch" } else { "events" };
    let shared = Arc::new(IngestShared {
        batch: batch.max(1),
        pii: args.str_or("pii", "false") == "true",
        paths: sessions
            .iter()
            .map(|s| format!("/sessions/{s}/{route}"))
            .collect(),
        created: sessions.iter().map(|_| AtomicU64::new(0)).collect(),
        sessions,
        prefix,
        next: AtomicU64::new(0),
        limit: spec.requests,
    });
    let m = drive(&spec, Work::Ingest(shared.clone())).await;
    let created: Vec<u64> = shared
        .created
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    let total_201: u64 = created.iter().sum();
    let check = if verify {
        let after = event_counts(spec.addr, spec.conns, shared.sessions.clone()).await?;
        let stored: u64 = after
            .iter()
            .zip(&before)
            .map(|(a, b)| a.saturating_sub(*b))
            .sum();
        let bad = after
            .iter()
            .zip(&before)
            .zip(&created)
            .filter(|((a, b), c)| a.checked_sub(**b) != Some(**c))
            .count();
        let ok = bad == 0 && stored == total_201;
        json!({
            "what": "sum over sessions of (eventCount after - before) == events in 201s",
            "sessions": shared.sessions.len(),
            "created_201": total_201,
            "stored": stored,
            "stored_total_after": after.iter().sum::<u64>(),
            "sessions_mismatched": bad,
            "ok": ok,
            "summary": format!("{} {stored} stored / {total_201} 201s", if ok { "ok" } else { "MISMATCH" }),
        })
    } else {
        Value::Null
    };
    let result = result_json(
        args,
        &spec,
        &m,
        check,
        json!({ "sessions": shared.sessions.len(), "batch": shared.batch }),
    )?;
    // A failed check is reported in the table (and fails `report`), not here, so the run goes on.
    emit(args, &result)
}

async fn cmd_read(args: &Args) -> Res<()> {
    let spec = LoadSpec::from(args)?;
    let sid = args.str("session")?;
    let at = args.str_or("at", "first");
    let mut client = Client::new(spec.addr);
    let first = client
        .json(
            Method::GET,
            &format!("/sessions/{sid}?limit=20"),
            None,
            StatusCode::OK,
        )
        .await?;
    let total = first["pagination"]["total"]
        .as_u64()
        .ok_or("no pagination.total")?;
    let last_page = total.div_ceil(20);
    // The page before the last, so it is full; the cursor variant reads the very same events.
    let near_end = last_page.saturating_sub(1).max(1);
    let (path, want_first_seq) = match at.as_str() {
        "first" => (format!("/sessions/{sid}?limit=20&page=1"), 1),
        "page-near-end" => (
            format!("/sessions/{sid}?limit=20&page={near_end}"),
            (near_end - 1) * 20 + 1,
        ),
        "cursor-near-end" => {
            // The cursor a client holds after reading the page before: it leads to the same page.
            let page_before = near_end.saturating_sub(1).max(1);
            let before = client
                .json(
                    Method::GET,
                    &format!("/sessions/{sid}?limit=20&page={page_before}"),
                    None,
                    StatusCode::OK,
                )
                .await?;
            let cursor = before["pagination"]["nextCursor"]
                .as_str()
                .ok_or("the page before has no nextCursor")?;
            (
                format!("/sessions/{sid}?limit=20&after={cursor}"),
                page_before * 20 + 1,
            )
        }
        other => {
            return Err(format!(
                "--at {other:?}: expected first, page-near-end or cursor-near-end"
            ));
        }
    };
    // Check once that the page is what it should be; the load then checks only the status.
    let page = client
        .json(Method::GET, &path, None, StatusCode::OK)
        .await?;
    let events = page["events"].as_array().ok_or("no events array")?;
    let target = args.str_or("target", "service");
    let first_seq = events.first().and_then(|e| e["seq"].as_u64());
    let shape_ok =
        events.len() == 20 && (target == "baseline" || first_seq == Some(want_first_seq));
    if !shape_ok {
        return Err(format!(
            "{path}: expected 20 events from seq {want_first_seq}, got {} from {first_seq:?}",
            events.len()
        ));
    }
    let m = drive(&spec, Work::Read(Arc::new(path.clone()))).await;
    let check = json!({
        "what": "the page read has 20 events starting at the expected seq",
        "path": path,
        "session_events": total,
        "first_seq": first_seq,
        "ok": true,
        "summary": format!("ok 20 events from seq {} of {total}", first_seq.unwrap_or(0)),
    });
    let result = result_json(args, &spec, &m, check, json!({ "session_events": total }))?;
    emit(args, &result)
}

async fn cmd_mix(args: &Args) -> Res<()> {
    let spec = LoadSpec::from(args)?;
    let shared = Arc::new(MixShared {
        prefix: run_prefix(),
        events_per_call: args.num("events-per-call", 20)?,
        next_call: AtomicU64::new(0),
        calls: AtomicU64::new(0),
        mismatches: AtomicU64::new(0),
        events_created: AtomicU64::new(0),
        limit: spec.requests,
    });
    let m = drive(&spec, Work::Mix(shared.clone())).await;
    let calls = shared.calls.load(Ordering::Relaxed);
    let bad = shared.mismatches.load(Ordering::Relaxed);
    let verify = args.str_or("target", "service") == "service";
    let check = if verify {
        json!({
            "what": "each call's read-back eventCount == its 201s",
            "calls": calls,
            "created_201": shared.events_created.load(Ordering::Relaxed),
            "calls_mismatched": bad,
            "ok": bad == 0,
            "summary": format!("{} {calls} calls, {bad} mismatched", if bad == 0 { "ok" } else { "MISMATCH" }),
        })
    } else {
        Value::Null
    };
    let per_call = shared.events_per_call + 3;
    let extra = json!({
        "calls": calls,
        "calls_per_s": m.rec.requests as f64 / m.elapsed.as_secs_f64().max(1e-9) / per_call as f64,
        "events_per_call": shared.events_per_call,
        "requests_per_call": per_call,
    });
    let result = result_json(args, &spec, &m, check, extra)?;
    emit(args, &result)
}

async fn cmd_wait(args: &Args) -> Res<()> {
    let addr = args.addr()?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.num("timeout", 30.0)?);
    loop {
        let mut client = Client::new(addr);
        if let Ok((StatusCode::OK, _)) = client.call(Method::GET, "/health", None).await {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("no answer from http://{addr}/health"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates the session that will be seeded and stores its event 1 through the service, so the
/// seeder can check that what it writes is byte for byte what the service writes.
async fn cmd_seed_prepare(args: &Args) -> Res<()> {
    let addr = args.addr()?;
    let sid = args.str("session")?;
    let mut client = Client::new(addr);
    client
        .json(
            Method::POST,
            "/sessions",
            Some(session_body(&sid)),
            StatusCode::CREATED,
        )
        .await?;
    client
        .json(
            Method::POST,
            &format!("/sessions/{sid}/events"),
            Some(event_body(&seed_event_id(1), 1)),
            StatusCode::CREATED,
        )
        .await?;
    Ok(())
}

/// Inserts events 2..=N into the session `seed-prepare` made, as the service would have: dense
/// seqs, the payload stored as compact JSON text (serde_json, as the service re-serializes it),
/// times in ms, and the session's event_count set to N.
fn cmd_seed(args: &Args) -> Res<()> {
    use rusqlite::{Connection, params};
    let db = args.str("db")?;
    let sid = args.str("session")?;
    let n: u64 = args.num("events", 1_000_000)?;
    let start = Instant::now();
    let mut conn = Connection::open(&db).map_err(|e| format!("{db}: {e}"))?;
    let sql_err = |e: rusqlite::Error| e.to_string();
    let (count, status): (i64, String) = conn
        .query_row(
            "SELECT event_count, status FROM sessions WHERE session_id = ?1",
            [&sid],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(|e| format!("session {sid}: {e} (run seed-prepare first)"))?;
    if count != 1 || status != "active" {
        return Err(format!(
            "session {sid}: expected 1 event and status active, found {count} and {status}"
        ));
    }
    let canonical = |i: u64| -> Res<String> {
        let v: Value = serde_json::from_str(&payload_text(i)).map_err(|e| e.to_string())?;
        Ok(v.to_string())
    };
    let (event_id, ty, payload, ts0): (String, String, String, i64) = conn
        .query_row(
            "SELECT event_id, type, payload, timestamp FROM events WHERE session_id = ?1 AND seq = 1",
            [&sid],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .map_err(sql_err)?;
    let mine = (seed_event_id(1), event_type(1).to_owned(), canonical(1)?);
    if (event_id.clone(), ty.clone(), payload.clone()) != mine {
        return Err(format!(
            "the service stored event 1 as ({event_id}, {ty}, {payload}) but the seeder would write {mine:?}"
        ));
    }
    conn.pragma_update(None, "synchronous", "OFF")
        .map_err(sql_err)?;
    let tx = conn.transaction().map_err(sql_err)?;
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO events (session_id, seq, event_id, type, payload, timestamp)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(sql_err)?;
        // Payload text depends only on i % 8, i % 20 and i; build it the same way as event 1.
        for seq in 2..=n {
            let ts = ts0 + (seq as i64 - 1) * 50; // one event every 50 ms
            insert
                .execute(params![
                    sid,
                    seq as i64,
                    seed_event_id(seq),
                    event_type(seq),
                    canonical(seq)?,
                    ts
                ])
                .map_err(sql_err)?;
        }
    }
    tx.execute(
        "UPDATE sessions SET event_count = ?2 WHERE session_id = ?1",
        params![sid, n as i64],
    )
    .map_err(sql_err)?;
    tx.commit().map_err(sql_err)?;
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .map_err(sql_err)?;
    let (events, max_seq): (i64, i64) = conn
        .query_row(
            "SELECT count(*), max(seq) FROM events WHERE session_id = ?1",
            [&sid],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(sql_err)?;
    if events as u64 != n || max_seq as u64 != n {
        return Err(format!(
            "after seeding: {events} events, max seq {max_seq}, wanted {n}"
        ));
    }
    eprintln!(
        "  seeded {n} events into {sid} in {:.1} s ({} MB on disk)",
        start.elapsed().as_secs_f64(),
        std::fs::metadata(&db)
            .map(|m| m.len() / 1_000_000)
            .unwrap_or(0)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Report

fn cmd_report(args: &Args) -> Res<()> {
    let runs_path = args.str("runs")?;
    let text = std::fs::read_to_string(&runs_path).map_err(|e| format!("{runs_path}: {e}"))?;
    let mut runs: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{runs_path}: {e}")))
        .collect::<Res<_>>()?;
    // A run is compared with the baselines' run of the same kind of load and batch size: the
    // bare-Axum baseline (no storage) and the durable baseline (only the durable SQLite work).
    let load_of = |r: &Value| {
        (
            r["kind"].as_str().unwrap_or_default().to_owned(),
            r["extra"]["batch"].as_u64().unwrap_or(1),
        )
    };
    let rates: HashMap<(String, (String, u64)), f64> = runs
        .iter()
        .filter(|r| r["target"] == "baseline" || r["target"] == "durable")
        .filter_map(|r| {
            let target = r["target"].as_str().unwrap_or_default().to_owned();
            Some(((target, load_of(r)), r["rps"].as_f64()?))
        })
        .collect();
    for r in &mut runs {
        let load = load_of(r);
        for (target, key) in [
            ("baseline", "ratio_to_baseline"),
            ("durable", "ratio_to_durable"),
        ] {
            let ratio = match (
                r["rps"].as_f64(),
                rates.get(&(target.to_owned(), load.clone())),
            ) {
                (Some(rps), Some(b)) if *b > 0.0 => Some(rps / b),
                _ => None,
            };
            r[key] = json!(ratio);
        }
    }

    let meta = |k: &str| args.str_or(&format!("meta-{k}"), "?");
    let mut out = format!(
        "{} | commit {}{} | {} x {} | backend {} | long session: {} events, {} | {} conns, {} s per scenario after {} s warmup\n\n",
        meta("date"),
        meta("commit").chars().take(12).collect::<String>(),
        if meta("dirty") == "true" {
            " (dirty tree)"
        } else {
            ""
        },
        meta("nproc"),
        meta("cpu"),
        meta("backend"),
        meta("seed-events"),
        meta("seed"),
        meta("conns"),
        meta("seconds"),
        meta("warmup"),
    );
    let header = format!(
        "{:<52} {:>5} {:>9} {:>6} {:>9} {:>9} {:>6} {:>7} {:>7} {:>7} {:>8} {:>8} {:>10} {:>10}  {}",
        "scenario",
        "kind",
        "requests",
        "errors",
        "req/s",
        "events/s",
        "ratio",
        "durable",
        "p50",
        "p99",
        "max(ms)",
        "RSS(MB)",
        "srv us/req",
        "cli us/req",
        "check"
    );
    out.push_str(&header);
    out.push('\n');
    out.push_str(&"-".repeat(header.len() + 28));
    out.push('\n');
    for r in &runs {
        let f = |k: &str| r[k].as_f64();
        out.push_str(&format!(
            "{:<52} {:>5} {:>9} {:>6} {:>9.0} {:>9.0} {:>6} {:>7} {:>7.2} {:>7.2} {:>8.2} {:>8} {:>10} {:>10}  {}\n",
            r["scenario"].as_str().unwrap_or_default(),
            r["kind"].as_str().unwrap_or_default(),
            r["requests"].as_u64().unwrap_or(0),
            r["errors"].as_u64().unwrap_or(0),
            f("rps").unwrap_or(0.0),
            f("events_per_s").unwrap_or(0.0),
            f("ratio_to_baseline")
                .map(|v| format!("{v:.2}"))
                .unwrap_or("-".into()),
            f("ratio_to_durable")
                .map(|v| format!("{v:.2}"))
                .unwrap_or("-".into()),
            f("p50_ms").unwrap_or(0.0),
            f("p99_ms").unwrap_or(0.0),
            f("max_ms").unwrap_or(0.0),
            f("peak_rss_mb")
                .map(|v| format!("{v:.1}"))
                .unwrap_or("-".into()),
            f("server_cpu_us_per_req")
                .map(|v| format!("{v:.0}"))
                .unwrap_or("-".into()),
            f("client_cpu_us_per_req")
                .map(|v| format!("{v:.0}"))
                .unwrap_or("-".into()),
            r["check"]["summary"].as_str().unwrap_or("-"),
        ));
    }
    let noisy: Vec<String> = runs
        .iter()
        .filter(|r| r["other_cpu_cores"].as_f64().is_some_and(|c| c > 0.2))
        .map(|r| {
            format!(
                "{} ({:.2})",
                r["id"].as_str().unwrap_or_default(),
                r["other_cpu_cores"].as_f64().unwrap_or(0.0)
            )
        })
        .collect();
    if !noisy.is_empty() {
        out.push_str(&format!(
            "noise: other processes{} used > 0.2 of a core during: {}\n",
            if meta("backend") == "mongo" {
                " (the database server among them)"
            } else {
                ""
            },
            noisy.join(", ")
        ));
    }
    for r in &runs {
        let warm_errors = r["warmup_errors"].as_u64().unwrap_or(0);
        if warm_errors > 0 {
            out.push_str(&format!(
                "note: {}: {warm_errors} errors during warmup\n",
                r["scenario"].as_str().unwrap_or_default()
            ));
        }
        if let Some(e) = r["first_error"].as_str() {
            out.push_str(&format!(
                "first error in {}: {e}\n",
                r["scenario"].as_str().unwrap_or_default()
            ));
        }
    }

    // The issue's goals, evaluated on this run (informational: the bench does not fail on them).
    let find = |id: &str| runs.iter().find(|r| r["id"] == id);
    let mut goals = Vec::new();
    let mut goal = |name: &str, verdict: Option<(bool, String)>| {
        let (status, detail) = match verdict {
            Some((true, d)) => ("PASS", d),
            Some((false, d)) => ("FAIL", d),
            None => ("n/a", "not measured in this run".to_owned()),
        };
        goals.push(json!({ "goal": name, "status": status, "detail": detail }));
    };
    let num = |r: &Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    goal(
        "ingest (1 session) >= 0.5 x baseline POST, 0 errors, p99 <= 10 ms",
        find("ingest-1").map(|r| {
            let ratio = num(r, "ratio_to_baseline");
            let errors = r["errors"].as_u64().unwrap_or(u64::MAX);
            let p99 = num(r, "p99_ms");
            (
                ratio >= 0.5 && errors == 0 && p99 <= 10.0,
                format!("ratio {ratio:.2}, errors {errors}, p99 {p99:.2} ms"),
            )
        }),
    );
    goal(
        "first-page read >= 0.5 x baseline GET",
        find("read-first").map(|r| {
            let ratio = num(r, "ratio_to_baseline");
            (ratio >= 0.5, format!("ratio {ratio:.2}"))
        }),
    );
    // The throughput issue's: the service against the durable baseline.
    goal(
        "ingest (1 session, full) >= 1.0 x durable, 0 errors, p99 <= 10 ms",
        find("ingest-1").map(|r| {
            let ratio = num(r, "ratio_to_durable");
            let errors = r["errors"].as_u64().unwrap_or(u64::MAX);
            let p99 = num(r, "p99_ms");
            (
                ratio >= 1.0 && errors == 0 && p99 <= 10.0,
                format!("ratio {ratio:.2}, errors {errors}, p99 {p99:.2} ms"),
            )
        }),
    );
    goal(
        "ingest (1 session, normal): 0 errors, p99 <= 10 ms",
        find("ingest-1-normal").map(|r| {
            let errors = r["errors"].as_u64().unwrap_or(u64::MAX);
            let p99 = num(r, "p99_ms");
            (
                errors == 0 && p99 <= 10.0,
                format!("errors {errors}, p99 {p99:.2} ms"),
            )
        }),
    );
    goal(
        "first-page read >= 1.0 x durable",
        find("read-first").map(|r| {
            let ratio = num(r, "ratio_to_durable");
            (ratio >= 1.0, format!("ratio {ratio:.2}"))
        }),
    );
    goal(
        "deep cursor page within 20% of first page's throughput",
        find("read-first")
            .zip(find("read-deep-cursor"))
            .map(|(a, b)| {
                let rel = num(b, "rps") / num(a, "rps");
                (rel >= 0.8, format!("{rel:.2} x first page"))
            }),
    );
    goal(
        "ingest with the big session stored within 20% of empty",
        find("ingest-1").zip(find("ingest-deep")).map(|(a, b)| {
            let rel = num(b, "rps") / num(a, "rps");
            (rel >= 0.8, format!("{rel:.2} x empty store"))
        }),
    );
    goal("peak RSS < 100 MB (service)", {
        let service: Vec<&Value> = runs.iter().filter(|r| r["target"] == "service").collect();
        let max = service
            .iter()
            .filter_map(|r| r["peak_rss_mb"].as_f64())
            .fold(f64::NAN, f64::max);
        (!service.is_empty() && !max.is_nan()).then(|| (max < 100.0, format!("max {max:.1} MB")))
    });
    let checks_failed = runs.iter().filter(|r| r["check"]["ok"] == false).count();
    out.push_str("\ngoals (informational):\n");
    for g in &goals {
        out.push_str(&format!(
            "  {:<5} {} ({})\n",
            g["status"].as_str().unwrap_or_default(),
            g["goal"].as_str().unwrap_or_default(),
            g["detail"].as_str().unwrap_or_default()
        ));
    }
    print!("{out}");

    let machine: serde_json::Map<String, Value> = args
        .0
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("meta-").map(|k| (k.to_owned(), json!(v))))
        .collect();
    let summary = json!({
        "machine": machine,
        "runs": runs,
        "goals": goals,
        "checks_failed": checks_failed,
        "table": out,
    });
    let out_path = args.str("out")?;
    std::fs::write(
        &out_path,
        serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("{out_path}: {e}"))?;
    if checks_failed > 0 {
        return Err(format!("{checks_failed} scenario checks failed"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let command = argv.next().unwrap_or_default();
    let args = match Args::parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench_load: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match command.as_str() {
        "free-port" => std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| println!("{}", a.port()))
            .map_err(|e| e.to_string()),
        "seed" => cmd_seed(&args),
        "report" => cmd_report(&args),
        "wait" | "ingest" | "read" | "mix" | "seed-prepare" => {
            let threads = args.num("threads", 2usize).unwrap_or(2).max(1);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async {
                match command.as_str() {
                    "wait" => cmd_wait(&args).await,
                    "ingest" => cmd_ingest(&args).await,
                    "read" => cmd_read(&args).await,
                    "mix" => cmd_mix(&args).await,
                    _ => cmd_seed_prepare(&args).await,
                }
            })
        }
        other => Err(format!(
            "unknown command {other:?}: free-port, wait, ingest, read, mix, seed-prepare, seed or report"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_load {command}: {e}");
            ExitCode::FAILURE
        }
    }
}
