//! The real binary's life cycle: graceful shutdown under load (SIGTERM drains in-flight requests,
//! keeps every acknowledged write and exits 0), the access log (one line per request with the
//! route template, status, latency and request id, never the body) and the command line.
//!
//! SQLite only: the store's own durability is covered by the storage and crash tests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a started service may take to log its address.
const STARTUP_LIMIT: Duration = Duration::from_secs(20);
/// The service's drain limit after SIGTERM (`SHUTDOWN_TIMEOUT_MS`).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the process may take to exit after SIGTERM: the drain limit plus closing storage.
const EXIT_LIMIT: Duration = Duration::from_secs(20);
/// How long one client request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A request started at least this long before SIGTERM must get an HTTP response.
const IN_FLIGHT_MARGIN: Duration = Duration::from_millis(200);
/// How long the slow request holds back the second half of its body after SIGTERM.
const SLOW_BODY_DELAY: Duration = Duration::from_millis(300);
/// Concurrent keep-alive clients posting events.
const CLIENTS: usize = 8;
/// Acknowledged events before SIGTERM is sent (together with [`MIN_LOAD_TIME`]).
const MIN_ACKS_BEFORE_SIGTERM: usize = 150;
const MIN_LOAD_TIME: Duration = Duration::from_millis(500);
/// How long the load may take to reach [`MIN_ACKS_BEFORE_SIGTERM`].
const LOAD_LIMIT: Duration = Duration::from_secs(30);
/// A bound on one client's requests (SIGTERM normally ends them far earlier).
const MAX_OPS_PER_CLIENT: usize = 20_000;

// ---------------------------------------------------------------------------------------------
// the service process

/// A running `session-service`; dropping it kills the child, so a failing test leaves no process
/// behind.
struct Service {
    child: Child,
    /// `host:port` it listens on.
    addr: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
    exited: Option<ExitStatus>,
}

fn lines_of(lines: &Mutex<Vec<String>>) -> Vec<String> {
    lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The binary with none of the service's variables inherited from the test's environment.
fn service_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_session-service"));
    for variable in session_service::config::VARIABLES {
        command.env_remove(variable.name);
    }
    command
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .stdin(Stdio::null());
    command
}

impl Service {
    /// Starts the binary on `database_url` with JSON logs on a free port, and waits (at most
    /// [`STARTUP_LIMIT`]) for the address it logs.
    async fn start(database_url: &str, rust_log: Option<&str>) -> Service {
        Self::start_with(database_url, rust_log, SHUTDOWN_TIMEOUT).await
    }

    async fn start_with(
        database_url: &str,
        rust_log: Option<&str>,
        shutdown_timeout: Duration,
    ) -> Service {
        let mut command = service_command();
        command
            .env("LOG_FORMAT", "json")
            .env("DATABASE_URL", database_url)
            .env(
                "SHUTDOWN_TIMEOUT_MS",
                shutdown_timeout.as_millis().to_string(),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let mut child = command.spawn().expect("start the session-service binary");

        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = tokio::sync::oneshot::channel::<String>();
        let stdout = child.stdout.take().expect("piped stdout");
        let kept = stdout_lines.clone();
        let stdout_reader = std::thread::spawn(move || {
            let mut address_tx = Some(address_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(entry) = serde_json::from_str::<Value>(&line)
                    && entry["message"] == "listening"
                    && let Some(address) = entry["address"].as_str()
                    && let Some(tx) = address_tx.take()
                {
                    let _ = tx.send(address.to_owned());
                }
                kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let stderr = child.stderr.take().expect("piped stderr");
        let kept = stderr_lines.clone();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let mut service = Service {
            child,
            addr: String::new(),
            stdout: stdout_lines,
            stderr: stderr_lines,
            readers: vec![stdout_reader, stderr_reader],
            exited: None,
        };
        match tokio::time::timeout(STARTUP_LIMIT, address_rx).await {
            Ok(Ok(address)) => service.addr = address,
            Ok(Err(_)) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!(
                    "session-service ended its output before logging a listening address \
                     (exit: {:?}); its output:\n{}",
                    service.child.try_wait(),
                    service.output()
                )
            }
            Err(_) => panic!(
                "session-service did not log a listening address within {STARTUP_LIMIT:?}; \
                 its output:\n{}",
                service.output()
            ),
        }
        service
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote so far, for failure messages.
    fn output(&self) -> String {
        let mut all = lines_of(&self.stdout);
        all.extend(
            lines_of(&self.stderr)
                .into_iter()
                .map(|l| format!("stderr: {l}")),
        );
        all.join("\n")
    }

    fn stdout_lines(&self) -> Vec<String> {
        lines_of(&self.stdout)
    }

    fn stderr_lines(&self) -> Vec<String> {
        lines_of(&self.stderr)
    }

    /// Sends SIGTERM the way an orchestrator would.
    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(
            status.success(),
            "kill -TERM {} failed: {status}",
            self.pid()
        );
    }

    /// Waits (at most `limit`) for the process to exit by itself, then for its output to end.
    async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll session-service") {
                break status;
            }
            if started.elapsed() > limit {
                panic!(
                    "session-service did not exit within {limit:?} of being asked to stop; its \
                     output:\n{}",
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.exited = Some(status);
        // The pipes close with the process; give the readers a bounded moment to drain them.
        let drained = Instant::now();
        while self.readers.iter().any(|r| !r.is_finished()) {
            assert!(
                drained.elapsed() < Duration::from_secs(5),
                "the output of session-service did not end within 5 s of its exit"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        status
    }

    /// SIGTERM, then asserts a clean exit (status 0, storage closed) within [`EXIT_LIMIT`].
    async fn stop(&mut self) {
        self.sigterm();
        let status = self.wait_exit(EXIT_LIMIT).await;
        assert_eq!(
            status.code(),
            Some(0),
            "session-service exited with {status} after SIGTERM; its output:\n{}",
            self.output()
        );
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The parsed JSON log lines; a line that is not JSON fails the test.
fn json_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))
        })
        .collect()
}

fn has_message(logs: &[Value], message: &str) -> bool {
    logs.iter().any(|l| l["message"] == message)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("http client")
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("s.db").display())
}

// ---------------------------------------------------------------------------------------------
// what a client saw

/// How a request without a response failed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Failure {
    /// No connection could be made (the listener is gone).
    Refused,
    /// The connection was closed or reset before a complete response.
    Closed,
    /// Anything else (a timeout, a protocol error): never acceptable.
    Other(String),
}

fn classify(e: &reqwest::Error) -> Failure {
    if e.is_timeout() {
        return Failure::Other(format!("timeout: {e:?}"));
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionRefused => return Failure::Refused,
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
                    return Failure::Closed;
                }
                _ => {}
            }
        }
        if let Some(h) = cause.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled() || h.is_closed())
        {
            return Failure::Closed;
        }
        source = cause.source();
    }
    Failure::Other(format!("{e:?}"))
}

/// One event request: when it was started and what came of it.
#[derive(Debug)]
struct Attempt {
    event_id: String,
    started: Instant,
    outcome: Result<(u16, Value), Failure>,
}

#[derive(Default)]
struct Shared {
    /// Set just before SIGTERM is sent.
    sigterm_at: OnceLock<Instant>,
    /// Tells the clients to stop (a bound; the service going away normally stops them).
    stop: AtomicBool,
    acks: AtomicUsize,
    attempts: Mutex<Vec<Attempt>>,
}

/// Why a client loop ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// A request failed after SIGTERM: the service is gone.
    ServiceGone,
    Stopped,
    MaxOps,
}

async fn post_event(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
) -> Result<(u16, Value), Failure> {
    let response = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| classify(&e))?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| classify(&e))?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Posts unique events one after another over one keep-alive connection until a request fails
/// after SIGTERM.
async fn client_loop(c: usize, url: String, shared: Arc<Shared>) -> Ended {
    let client = client();
    for i in 0..MAX_OPS_PER_CLIENT {
        if shared.stop.load(Ordering::Relaxed) {
            return Ended::Stopped;
        }
        let event_id = format!("c{c}-e{i}");
        let kind = ["user_speech", "bot_speech", "system"][i % 3];
        let body = json!({
            "eventId": event_id,
            "type": kind,
            "payload": {"client": c, "i": i, "text": format!("utterance {i} of client {c}")},
        });
        let started = Instant::now();
        let outcome = post_event(&client, &url, &body).await;
        let failed = outcome.is_err();
        if matches!(outcome, Ok((200 | 201, _))) {
            shared.acks.fetch_add(1, Ordering::Relaxed);
        }
        shared
            .attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Attempt {
                event_id,
                started,
                outcome,
            });
        if failed {
            if shared.sigterm_at.get().is_some() {
                return Ended::ServiceGone;
            }
            // A failure before SIGTERM fails the test later; do not spin on it meanwhile.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ended::MaxOps
}

// ---------------------------------------------------------------------------------------------
// the slow request, written by hand

/// Reads from `stream` into `buf` until `done(buf)` or the end of the stream, within `limit`.
async fn read_until(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    limit: Duration,
    what: &str,
    done: impl Fn(&[u8]) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !done(buf) {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Err(_) => panic!(
                "no complete {what} within {limit:?}; got so far: {:?}",
                String::from_utf8_lossy(buf)
            ),
            Ok(Err(e)) => panic!(
                "reading the {what} failed: {e}; got so far: {:?}",
                String::from_utf8_lossy(buf)
            ),
            Ok(Ok(0)) => return,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Whether `buf` holds a complete response head and the `Content-Length` bytes after it.
fn complete_response(buf: &[u8]) -> bool {
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

/// A request whose headers and first half of the body are sent (and seen by the handler)
/// before SIGTERM.
struct SlowRequest {
    stream: TcpStream,
    rest: Vec<u8>,
    event_id: String,
}

impl SlowRequest {
    /// Sends the head with `Expect: 100-continue` and waits for `100 Continue`, which hyper only
    /// sends once the handler starts reading the body: from then on the request is in flight.
    /// Then sends half of the body.
    async fn begin(addr: &str, session: &str) -> SlowRequest {
        let event_id = "slow-in-flight".to_owned();
        let body = json!({
            "eventId": event_id,
            "type": "system",
            "payload": {"note": "sent in two halves around SIGTERM", "padding": "p".repeat(200)},
        })
        .to_string();
        let (first, rest) = body.as_bytes().split_at(body.len() / 2);
        let head = format!(
            "POST /sessions/{session}/events HTTP/1.1\r\nHost: {addr}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\
             Expect: 100-continue\r\n\r\n",
            body.len()
        );
        let mut stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .expect("connect for the slow request in time")
            .expect("connect for the slow request");
        stream.set_nodelay(true).expect("nodelay");
        stream.write_all(head.as_bytes()).await.expect("send head");
        let mut buf = Vec::new();
        read_until(
            &mut stream,
            &mut buf,
            Duration::from_secs(10),
            "100 Continue",
            |b| header_end(b).is_some(),
        )
        .await;
        let interim = String::from_utf8_lossy(&buf).into_owned();
        assert!(
            interim.starts_with("HTTP/1.1 100") && header_end(&buf) == Some(buf.len()),
            "expected exactly `100 Continue` before the body, got {interim:?}"
        );
        stream.write_all(first).await.expect("send half the body");
        stream.flush().await.expect("flush half the body");
        SlowRequest {
            stream,
            rest: rest.to_vec(),
            event_id,
        }
    }

    /// Sends the rest of the body and returns the status line and body of the response.
    async fn finish(mut self) -> (String, Value, String) {
        self.stream
            .write_all(&self.rest)
            .await
            .expect("send the rest of the body after SIGTERM: the connection was not kept open");
        let mut buf = Vec::new();
        read_until(
            &mut self.stream,
            &mut buf,
            Duration::from_secs(15),
            "response to the slow request",
            complete_response,
        )
        .await;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status_line = text.lines().next().unwrap_or_default().to_owned();
        let body = header_end(&buf)
            .and_then(|end| serde_json::from_slice(&buf[end..]).ok())
            .unwrap_or(Value::Null);
        (status_line, body, text)
    }
}

// ---------------------------------------------------------------------------------------------
// reading a session back

/// Every event of `session` in page order, as (eventId, seq), following `after` cursors.
async fn walk_session(
    client: &reqwest::Client,
    service: &Service,
    session: &str,
) -> (u64, Vec<(String, u64)>) {
    let mut events = Vec::new();
    let mut event_count = None;
    let mut query = "?limit=100".to_owned();
    for _ in 0..10_000 {
        let url = service.url(&format!("/sessions/{session}{query}"));
        let response = client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url} got no answer: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.expect("read the page");
        assert_eq!(status, 200, "GET {url}: {text}");
        let page: Value = serde_json::from_str(&text).expect("page is JSON");
        let count = page["eventCount"].as_u64().expect("eventCount");
        assert_eq!(
            *event_count.get_or_insert(count),
            count,
            "eventCount changed between pages of a store nobody writes to"
        );
        for e in page["events"].as_array().expect("events") {
            events.push((
                e["eventId"].as_str().expect("eventId").to_owned(),
                e["seq"].as_u64().expect("seq"),
            ));
        }
        let p = &page["pagination"];
        match p["nextCursor"].as_str() {
            Some(cursor) => {
                assert_eq!(p["hasMore"], true, "a nextCursor means hasMore: {p}");
                query = format!("?limit=100&after={cursor}");
            }
            None => {
                assert_eq!(p["hasMore"], false, "hasMore needs a nextCursor: {p}");
                return (count, events);
            }
        }
    }
    panic!("the walk over {session} did not end after 10000 pages");
}

// ---------------------------------------------------------------------------------------------
// 1. graceful shutdown under load

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_in_flight_requests_keeps_every_acknowledged_write_and_exits_0()
{
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = sqlite_url(&dir);
    let mut service = Service::start(&database_url, Some("session_service=info")).await;
    let http = client();
    let session = "shutdown-call";
    let created = http
        .post(service.url("/sessions"))
        .json(&json!({"sessionId": session, "language": "en-US"}))
        .send()
        .await
        .expect("create the session");
    assert_eq!(created.status().as_u16(), 201);

    // Load: keep-alive clients posting unique events.
    let shared = Arc::new(Shared::default());
    let events_url = service.url(&format!("/sessions/{session}/events"));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(client_loop(c, events_url.clone(), shared.clone())))
        .collect();
    let load_started = Instant::now();
    while shared.acks.load(Ordering::Relaxed) < MIN_ACKS_BEFORE_SIGTERM
        || load_started.elapsed() < MIN_LOAD_TIME
    {
        assert!(
            load_started.elapsed() < LOAD_LIMIT,
            "only {} events acknowledged within {LOAD_LIMIT:?}; its output:\n{}",
            shared.acks.load(Ordering::Relaxed),
            service.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A request in flight at the signal: head and half the body before, the rest after.
    let slow = SlowRequest::begin(&service.addr, session).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let sigterm_at = Instant::now();
    shared.sigterm_at.set(sigterm_at).expect("set once");
    service.sigterm();
    tokio::time::sleep(SLOW_BODY_DELAY).await;
    let slow_event_id = slow.event_id.clone();
    let (slow_status, slow_body, slow_text) = slow.finish().await;
    assert!(
        slow_status.starts_with("HTTP/1.1 201"),
        "the request in flight at SIGTERM was not answered 201 (drained), got {slow_text:?}"
    );
    assert_eq!(slow_body["eventId"], slow_event_id, "{slow_text}");
    let slow_seq = slow_body["seq"].as_u64().expect("seq of the slow event");

    // The clients run until the service is gone (bounded).
    let mut ended = Vec::new();
    let clients_deadline = Instant::now() + Duration::from_secs(20);
    for handle in clients {
        let left = clients_deadline.saturating_duration_since(Instant::now());
        let ending = match tokio::time::timeout(left, handle).await {
            Ok(result) => result.expect("client task"),
            Err(_) => {
                shared.stop.store(true, Ordering::Relaxed);
                panic!("a client still got answers 20 s after SIGTERM: the service kept serving")
            }
        };
        ended.push(ending);
    }

    let status = service.wait_exit(EXIT_LIMIT).await;
    let stdout = service.stdout_lines();
    let logs = json_lines(&stdout);
    assert_eq!(
        status.code(),
        Some(0),
        "session-service exited with {status} after SIGTERM; its output:\n{}",
        service.output()
    );
    for message in [
        "shutdown signal received; draining in-flight requests",
        "storage flushed and closed",
        "stopped",
    ] {
        assert!(
            has_message(&logs, message),
            "the log lacks {message:?}; its output:\n{}",
            service.output()
        );
    }
    assert!(
        !has_message(
            &logs,
            "in-flight requests did not finish in time; closing their connections"
        ),
        "the drain hit its time limit; its output:\n{}",
        service.output()
    );
    assert!(
        ended.iter().all(|e| *e == Ended::ServiceGone),
        "every client should have ended by the service going away: {ended:?}"
    );

    // What the clients saw.
    let attempts = std::mem::take(&mut *shared.attempts.lock().unwrap_or_else(|e| e.into_inner()));
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut answered_after_sigterm = 0;
    let mut problems = Vec::new();
    let mut attempted: HashSet<String> = HashSet::new();
    for a in &attempts {
        attempted.insert(a.event_id.clone());
        let long_before = a.started + IN_FLIGHT_MARGIN <= sigterm_at;
        match &a.outcome {
            Ok((status, body)) => {
                if a.started >= sigterm_at {
                    answered_after_sigterm += 1;
                }
                if *status >= 500 {
                    problems.push(format!("{} got {status}: {body}", a.event_id));
                } else if *status == 200 || *status == 201 {
                    match body["seq"].as_u64() {
                        Some(seq) if body["eventId"] == a.event_id.as_str() => {
                            acked.insert(a.event_id.clone(), seq);
                        }
                        _ => problems.push(format!("{} got {status}: {body}", a.event_id)),
                    }
                } else {
                    problems.push(format!("{} got {status}: {body}", a.event_id));
                }
            }
            Err(failure) => {
                if long_before {
                    problems.push(format!(
                        "{} started {:?} before SIGTERM got no response: {failure:?}",
                        a.event_id,
                        sigterm_at - a.started
                    ));
                }
                if let Failure::Other(what) = failure {
                    problems.push(format!("{} failed oddly: {what}", a.event_id));
                }
                let when = if a.started >= sigterm_at {
                    "after"
                } else {
                    "before"
                };
                *failures
                    .entry(format!("{failure:?} (started {when} SIGTERM)"))
                    .or_default() += 1;
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} bad outcomes:\n{}",
        problems.len(),
        problems.join("\n")
    );
    acked.insert(slow_event_id.clone(), slow_seq);
    attempted.insert(slow_event_id.clone());

    // Restarted on the same file: every acknowledged write is there, once, with its seq.
    let mut restarted = Service::start(&database_url, Some("session_service=info")).await;
    let (event_count, stored) = walk_session(&http, &restarted, session).await;
    assert_eq!(
        event_count,
        stored.len() as u64,
        "eventCount disagrees with the events the pages walked"
    );
    let seqs: Vec<u64> = stored.iter().map(|(_, seq)| *seq).collect();
    assert!(
        seqs.iter().copied().eq(1..=event_count),
        "seqs are not exactly 1..={event_count} in order"
    );
    let mut seen: HashMap<&str, u64> = HashMap::new();
    for (event_id, seq) in &stored {
        assert!(
            seen.insert(event_id, *seq).is_none(),
            "{event_id} is stored more than once"
        );
        assert!(
            attempted.contains(event_id),
            "{event_id} is stored but was never sent"
        );
    }
    let mut missing = Vec::new();
    for (event_id, seq) in &acked {
        match seen.get(event_id.as_str()) {
            None => missing.push(event_id.clone()),
            Some(stored_seq) => assert_eq!(
                stored_seq, seq,
                "{event_id} was acknowledged with seq {seq} but is stored with {stored_seq}"
            ),
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "{} acknowledged events are missing after the restart: {missing:?}",
        missing.len()
    );
    let stored_unacked = stored.len() - acked.len();
    restarted.stop().await;

    eprintln!(
        "shutdown under load: {} requests, {} acknowledged writes verified after restart \
         (incl. the slow in-flight one, seq {slow_seq}), {stored_unacked} stored without an \
         acknowledgement, {answered_after_sigterm} requests started after SIGTERM still answered, \
         failures: {failures:?}",
        attempts.len() + 1,
        acked.len(),
    );
}

// ---------------------------------------------------------------------------------------------
// 2. the access log

/// A request the test sent, and what the access log line for it must say.
struct Expected {
    request_id: String,
    method: &'static str,
    route: &'static str,
    status: u16,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_writes_one_access_line_with_method_route_status_latency_and_request_id() {
    const MARKER: &str = "SECRET-MARKER-123";
    let dir = tempfile::tempdir().expect("temp dir");
    // The default filter, as in production.
    let mut service = Service::start(&sqlite_url(&dir), None).await;
    let http = client();
    let mut expected = Vec::new();

    async fn send(
        request: reqwest::RequestBuilder,
        expected: &mut Vec<Expected>,
        method: &'static str,
        route: &'static str,
        status: u16,
    ) -> reqwest::Response {
        let response = request.send().await.expect("request answered");
        assert_eq!(response.status().as_u16(), status, "{method} {route}");
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{method} {route}: no x-request-id in the response"))
            .to_owned();
        assert!(!request_id.is_empty());
        expected.push(Expected {
            request_id,
            method,
            route,
            status,
        });
        response
    }

    let created = send(
        http.post(service.url("/sessions"))
            .header("x-request-id", "test-req-42")
            .json(&json!({"sessionId": "log-call", "language": "en-US"})),
        &mut expected,
        "POST",
        "/sessions",
        201,
    )
    .await;
    assert_eq!(
        created.headers()["x-request-id"],
        "test-req-42",
        "the client's request id is echoed"
    );
    send(
        http.post(service.url("/sessions/log-call/events"))
            .json(&json!({
                "eventId": "e-1",
                "type": "user_speech",
                "payload": {"text": format!("my card number is {MARKER}")},
            })),
        &mut expected,
        "POST",
        "/sessions/{session_id}/events",
        201,
    )
    .await;
    // Invalid ones: the marker in a field a validation error names, and in malformed JSON.
    send(
        http.post(service.url("/sessions/log-call/events"))
            .json(&json!({"eventId": "e-2", "type": MARKER, "payload": {"text": MARKER}})),
        &mut expected,
        "POST",
        "/sessions/{session_id}/events",
        400,
    )
    .await;
    send(
        http.post(service.url("/sessions/log-call/events"))
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"eventId": "e-3", "payload": {{"text": "{MARKER}"#
            )),
        &mut expected,
        "POST",
        "/sessions/{session_id}/events",
        400,
    )
    .await;
    send(
        http.get(service.url("/sessions/no-such-call")),
        &mut expected,
        "GET",
        "/sessions/{session_id}",
        404,
    )
    .await;
    send(
        http.get(service.url("/sessions/log-call?limit=5")),
        &mut expected,
        "GET",
        "/sessions/{session_id}",
        200,
    )
    .await;
    send(
        http.get(service.url("/sessions/log-call/events/e-1")),
        &mut expected,
        "GET",
        "/sessions/{session_id}/events/{event_id}",
        200,
    )
    .await;
    // Unknown routes are logged as one label, never by their concrete path.
    send(
        http.get(service.url("/no/such/route")),
        &mut expected,
        "GET",
        "unmatched",
        404,
    )
    .await;
    send(
        http.delete(service.url("/sessions")),
        &mut expected,
        "DELETE",
        "/sessions",
        405,
    )
    .await;
    let ids: HashSet<&str> = expected.iter().map(|e| e.request_id.as_str()).collect();
    assert_eq!(ids.len(), expected.len(), "request ids are unique");

    service.stop().await;
    let stdout = service.stdout_lines();
    let logs = json_lines(&stdout);
    let served: Vec<&Value> = logs
        .iter()
        .filter(|l| l["message"] == "request served")
        .collect();
    assert_eq!(
        served.len(),
        expected.len(),
        "one access line per request; the log:\n{}",
        stdout.join("\n")
    );
    for e in &expected {
        let lines: Vec<&&Value> = served
            .iter()
            .filter(|l| l["span"]["request_id"] == e.request_id.as_str())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "one access line for request {} ({} {}); the log:\n{}",
            e.request_id,
            e.method,
            e.route,
            stdout.join("\n")
        );
        let line = lines[0];
        assert_eq!(line["span"]["name"], "request", "{line}");
        assert_eq!(line["span"]["method"], e.method, "{line}");
        assert_eq!(line["span"]["route"], e.route, "the route template: {line}");
        assert_eq!(line["status"], e.status, "{line}");
        let latency = line["latency_ms"]
            .as_f64()
            .unwrap_or_else(|| panic!("latency_ms is a number: {line}"));
        assert!(latency >= 0.0, "{line}");
        assert_eq!(line["level"], "INFO", "{line}");
    }
    assert!(
        served
            .iter()
            .any(|l| l["span"]["request_id"] == "test-req-42"),
        "the client's request id is logged"
    );
    for line in stdout.iter().chain(service.stderr_lines().iter()) {
        assert!(
            !line.contains(MARKER),
            "a log line contains request body text: {line}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. the command line

/// Runs the binary with `args` and extra `env` to completion (at most 20 s): (exit code, stdout,
/// stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = service_command();
    // Should it start after all, it must not touch the working directory.
    command
        .env("DATABASE_URL", sqlite_url(&dir))
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("start session-service");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("session-service {args:?} with {env:?} did not exit within 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        status.code(),
        out.join().expect("stdout reader"),
        err.join().expect("stderr reader"),
    )
}

#[test]
fn help_and_version_print_something_useful() {
    let (code, out, err) = run(&["--help"], &[]);
    assert_eq!(code, Some(0), "--help: {out}{err}");
    for variable in ["DATABASE_URL", "PORT"] {
        assert!(
            out.contains(variable),
            "--help does not mention {variable}:\n{out}"
        );
    }

    let (code, out, err) = run(&["--version"], &[]);
    assert_eq!(code, Some(0), "--version: {out}{err}");
    assert!(
        out.contains(env!("CARGO_PKG_VERSION")),
        "--version does not print {}: {out:?}",
        env!("CARGO_PKG_VERSION")
    );

    let (code, out, err) = run(&["--no-such-flag"], &[]);
    assert!(
        code.is_some_and(|c| c != 0),
        "an unknown flag must fail, got {code:?}: {out}{err}"
    );
    assert!(err.contains("--no-such-flag"), "stderr: {err}");

    let (code, out, err) = run(&[], &[("PORT", "notaport")]);
    assert!(
        code.is_some_and(|c| c != 0),
        "PORT=notaport must fail, got {code:?}: {out}{err}"
    );
    assert!(err.contains("PORT"), "stderr does not name PORT: {err:?}");
}

/// A client that asks for a large page and never reads it would hold its connection forever;
/// the shutdown timeout bounds how long it can delay the exit.
#[tokio::test]
async fn a_client_that_never_reads_its_response_cannot_hold_shutdown_past_the_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut service =
        Service::start_with(&sqlite_url(&dir), None, Duration::from_millis(500)).await;
    let client = client();
    let created = client
        .post(service.url("/sessions"))
        .json(&serde_json::json!({"sessionId": "big", "language": "en"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let text = "x".repeat(900_000);
    for i in 0..16 {
        let r = client
            .post(service.url("/sessions/big/events"))
            .json(&serde_json::json!({"eventId": format!("e{i}"), "type": "system", "payload": {"text": text}}))
            .send()
            .await
            .expect("add a large event");
        assert_eq!(r.status(), 201);
    }
    // ~14 MB of response that nobody reads: the socket buffers fill and the server's write stalls.
    let mut stalled = tokio::net::TcpStream::connect(service.url("").trim_start_matches("http://"))
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(
        &mut stalled,
        b"GET /sessions/big?limit=100 HTTP/1.1\r\nhost: x\r\n\r\n",
    )
    .await
    .expect("send the request");
    tokio::time::sleep(Duration::from_millis(500)).await;

    service.sigterm();
    let status = service.wait_exit(EXIT_LIMIT).await;
    assert_eq!(status.code(), Some(0), "{}", service.output());
    assert!(
        has_message(
            &json_lines(&service.stdout_lines()),
            "in-flight requests did not finish in time; they end with the process"
        ),
        "{}",
        service.output()
    );
    drop(stalled);

    // Everything acknowledged is there after a restart.
    let mut again = Service::start(&sqlite_url(&dir), None).await;
    let r = client
        .get(again.url("/sessions/big?limit=1"))
        .send()
        .await
        .expect("read");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["eventCount"], 16);
    again.stop().await;
}
