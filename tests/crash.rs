//! Crash safety: the real binary is killed with SIGKILL in the middle of concurrent event ingest,
//! then started again on the same store. Everything it acknowledged must still be there, exactly
//! once and with the seq it was acknowledged with; counts, seqs and statuses must agree; and a
//! request that was in flight at the kill must be safe to retry (201 or 200, never a duplicate).
//!
//! Both backends: a SQLite file in a temp directory, and a MongoDB database of its own on the
//! server `MONGODB_URI` names (dropped at the end, also when the test fails).

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use support::Backend;

/// How long a started service may take to log its address.
const STARTUP_LIMIT: Duration = Duration::from_secs(20);
/// How long one request may take; a request cut by the kill fails long before.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long ingest may take to reach a kill point before the test gives up.
const KILL_POINT_LIMIT: Duration = Duration::from_secs(150);
/// How long a client keeps retrying one request the service answers with 503 ("retry with the
/// same request"). After a kill -9, MongoDB keeps the dead process's open transactions (and their
/// hold on the session documents they wrote) until it reaps them, 60 s by default
/// (`transactionLifetimeLimitSeconds`); appends to those sessions get 503 until then.
const UNAVAILABLE_LIMIT: Duration = Duration::from_secs(120);
/// How long dropping the test's MongoDB database may take.
const CLEANUP_LIMIT: Duration = Duration::from_secs(60);
/// Concurrent writers during ingest.
const WRITERS: usize = 16;
/// Shared sessions the writers spread their events over.
const SESSIONS: usize = 4;
/// The most operations one writer makes per run (a bound; the kill normally comes first).
const MAX_OPS_PER_WRITER: usize = 2_000;
/// Log lines of a child kept for failure messages (its per-request lines are left out).
const KEPT_LOG_LINES: usize = 40;

/// When to kill the service during ingest.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// Once this many events have been acknowledged in this run.
    Acks(usize),
    /// At a random-ish moment after the first acknowledgement of this run.
    RandomMoment,
}

// ---------------------------------------------------------------------------------------------
// the store

/// The store a test's service processes share, and how to remove it.
struct Store {
    target: Target,
    mongo: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

/// What a service process is started with.
#[derive(Debug, Clone)]
struct Target {
    database_url: String,
    synchronous: &'static str,
}

fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        jitter(1_000_000)
    )
}

/// A number below `below` that differs from run to run.
fn jitter(below: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or_default();
    nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15) % below.max(1)
}

/// `uri` with its database path replaced by `db`, keeping the options.
fn with_database(uri: &str, db: &str) -> String {
    let (scheme, rest) = uri
        .split_once("://")
        .unwrap_or_else(|| panic!("MONGODB_URI {uri:?} has no scheme"));
    let (hosts, options) = match rest.split_once('/') {
        Some((hosts, path)) => (hosts, path.split_once('?').map(|(_, o)| o)),
        None => match rest.split_once('?') {
            Some((hosts, o)) => (hosts, Some(o)),
            None => (rest, None),
        },
    };
    match options {
        Some(o) if !o.is_empty() => format!("{scheme}://{hosts}/{db}?{o}"),
        _ => format!("{scheme}://{hosts}/{db}"),
    }
}

impl Store {
    fn new(backend: Backend, synchronous: &'static str) -> Store {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("sessions.db");
                Store {
                    target: Target {
                        database_url: format!("sqlite://{}", path.display()),
                        synchronous,
                    },
                    mongo: None,
                    _dir: Some(dir),
                }
            }
            Backend::Mongo => {
                let uri = support::mongodb_uri();
                let db = unique_name("crash");
                Store {
                    target: Target {
                        database_url: with_database(&uri, &db),
                        synchronous,
                    },
                    mongo: Some((uri, db)),
                    _dir: None,
                }
            }
        }
    }

    async fn cleanup(self) {
        if let Some((uri, db)) = &self.mongo {
            let drop = async {
                let client = mongodb::Client::with_uri_str(uri)
                    .await
                    .expect("mongo client for cleanup");
                client
                    .database(db)
                    .drop()
                    .await
                    .expect("drop the test database");
            };
            tokio::time::timeout(CLEANUP_LIMIT, drop)
                .await
                .unwrap_or_else(|_| {
                    panic!("dropping the test database {db} took over {CLEANUP_LIMIT:?}")
                });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the service process

/// A running `session-service` child; dropping it kills the child, so a failing test leaves no
/// process behind.
struct Service {
    child: Child,
    base: String,
    logs: Arc<Mutex<Vec<String>>>,
}

fn keep_line(logs: &Mutex<Vec<String>>, line: String) {
    if line.contains(r#""message":"request served""#) && !line.contains(r#""status":5"#) {
        return;
    }
    let mut logs = logs.lock().unwrap_or_else(|e| e.into_inner());
    if logs.len() >= KEPT_LOG_LINES {
        logs.remove(0);
    }
    logs.push(line);
}

impl Service {
    /// Starts the binary on `store` with PORT=0 and waits (at most [`STARTUP_LIMIT`]) for the
    /// address it logs, then for `/ready`.
    async fn start(store: &Target) -> Service {
        // Nothing from the test's own environment (API keys, timeouts) reaches the service.
        let mut child = Command::new(env!("CARGO_BIN_EXE_session-service"))
            .env_clear()
            .env("PORT", "0")
            .env("HOST", "127.0.0.1")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "session_service=info")
            .env("DATABASE_URL", &store.database_url)
            .env("SQLITE_SYNCHRONOUS", store.synchronous)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the session-service binary");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = tokio::sync::oneshot::channel::<String>();
        let stdout = child.stdout.take().expect("piped stdout");
        let stdout_logs = logs.clone();
        std::thread::spawn(move || {
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
                keep_line(&stdout_logs, line);
            }
        });
        let stderr = child.stderr.take().expect("piped stderr");
        let stderr_logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                keep_line(&stderr_logs, format!("stderr: {line}"));
            }
        });
        let mut service = Service {
            child,
            base: String::new(),
            logs,
        };
        let started = Instant::now();
        match tokio::time::timeout(STARTUP_LIMIT, address_rx).await {
            Ok(Ok(address)) => service.base = format!("http://{address}"),
            Ok(Err(_)) => {
                // Give the stderr reader a moment to collect the reason.
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
        let client = client();
        loop {
            let ready = client.get(service.url("/ready")).send().await;
            if matches!(&ready, Ok(r) if r.status() == 200) {
                return service;
            }
            assert!(
                started.elapsed() < STARTUP_LIMIT,
                "session-service listened at {} but /ready did not answer 200 within \
                 {STARTUP_LIMIT:?} (last: {ready:?}); its output:\n{}",
                service.base,
                service.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn output(&self) -> String {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// `kill -9`, and checks that the signal is what ended the process.
    fn kill(mut self) {
        self.child.kill().expect("send SIGKILL to session-service");
        let status = self.child.wait().expect("reap session-service");
        assert_eq!(
            status.signal(),
            Some(9),
            "session-service ended by itself before the kill ({status}); its output:\n{}",
            self.output()
        );
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("http client")
}

/// POSTs `body`; `Err` when no complete response came back (the request may or may not have
/// been applied).
async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Result<(u16, Value), String> {
    let response = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Like [`post`], but sends the same request again while the service answers 503 (at most
/// [`UNAVAILABLE_LIMIT`]); counts the 503s in `unavailable`.
async fn post_retrying(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    unavailable: &AtomicUsize,
) -> Result<(u16, Value), String> {
    let started = Instant::now();
    loop {
        match post(client, url, body).await? {
            (503, reply) if started.elapsed() < UNAVAILABLE_LIMIT => {
                assert!(
                    reply["code"] == "storage_unavailable" || reply["code"] == "request_timeout",
                    "a 503 must say why: {reply}"
                );
                unavailable.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            answer => return Ok(answer),
        }
    }
}

/// GETs `path` from a service that must answer.
async fn get(client: &reqwest::Client, service: &Service, path: &str) -> (u16, Value) {
    let response = client
        .get(service.url(path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path} after the restart got no answer: {e}"));
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: body not read: {e}"));
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

// ---------------------------------------------------------------------------------------------
// what the clients saw

/// An event request: where it went and what it said.
#[derive(Debug, Clone)]
struct Sent {
    session: String,
    body: Value,
}

/// What the clients know across runs.
#[derive(Default)]
struct Ledger {
    /// eventId → the request and the seq the service acknowledged (2xx) for it.
    acked: HashMap<String, (Sent, u64)>,
    /// eventId → a request that got no response (in flight at the kill, or refused after it).
    unanswered: HashMap<String, Sent>,
    /// Sessions whose creation was acknowledged.
    sessions_acked: HashSet<String>,
    /// Sessions whose create request got no response.
    sessions_unanswered: HashSet<String>,
    /// Identical retries answered 200 with the first answer's seq.
    retries_confirmed: usize,
    /// Answers no correct service gives while it is up.
    unexpected: Vec<String>,
    /// 503 answers seen (each followed by the same request again).
    unavailable: Arc<AtomicUsize>,
}

impl Ledger {
    fn record_ack(&mut self, event_id: &str, sent: &Sent, status: u16, body: &Value) {
        let Some(seq) = body["seq"].as_u64() else {
            self.unexpected
                .push(format!("{status} for {event_id} without a seq: {body}"));
            return;
        };
        if body["eventId"] != event_id || body["sessionId"] != sent.session.as_str() {
            self.unexpected.push(format!(
                "{status} for {event_id} names another event: {body}"
            ));
        }
        if body["payload"] != sent.body["payload"] {
            self.unexpected.push(format!(
                "{status} for {event_id} with another payload: {body}"
            ));
        }
        self.unanswered.remove(event_id);
        match self.acked.get(event_id) {
            Some((_, first)) if *first != seq => self.unexpected.push(format!(
                "{event_id} acknowledged with seq {first} and again with seq {seq}"
            )),
            Some(_) => {}
            None => {
                self.acked.insert(event_id.to_owned(), (sent.clone(), seq));
            }
        }
    }
}

fn lock(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}

fn shared_sessions() -> Vec<String> {
    (0..SESSIONS).map(|i| format!("call-{i}")).collect()
}

fn event_body(event_id: &str, i: usize, origin: &str) -> Value {
    let kind = ["user_speech", "bot_speech", "system"][i % 3];
    let mut body = json!({
        "eventId": event_id,
        "type": kind,
        "payload": {"origin": origin, "i": i, "text": format!("utterance {i} from {origin}")},
    });
    if i.is_multiple_of(5) {
        body["timestamp"] = json!("2025-01-02T03:04:05.678Z");
    }
    body
}

// ---------------------------------------------------------------------------------------------
// ingest

/// One writer: distinct events, events a partner writer sends identically too, identical
/// retries of acknowledged events, and now and then a new session. Stops at the first request
/// that gets no response (the service is gone) or after [`MAX_OPS_PER_WRITER`].
async fn writer(
    client: reqwest::Client,
    base: String,
    run: usize,
    w: usize,
    ledger: Arc<Mutex<Ledger>>,
    acked_in_run: Arc<AtomicUsize>,
) {
    let unavailable = lock(&ledger).unavailable.clone();
    let unavailable = unavailable.as_ref();
    let sessions = shared_sessions();
    for i in 0..MAX_OPS_PER_WRITER {
        if i % 25 == 24 {
            let session = format!("r{run}-new-{w}-{i}");
            let body = json!({"sessionId": session, "language": "en-US", "metadata": {"w": w}});
            match post_retrying(&client, &format!("{base}/sessions"), &body, unavailable).await {
                Ok((201, _)) => {
                    lock(&ledger).sessions_acked.insert(session);
                }
                Ok((status, body)) => lock(&ledger)
                    .unexpected
                    .push(format!("create {session}: {status} {body}")),
                Err(_) => {
                    lock(&ledger).sessions_unanswered.insert(session);
                    return;
                }
            }
            continue;
        }
        // Every sixth event is one the partner writer (w ^ 1) sends identically.
        let (event_id, session, body) = if i % 6 == 5 {
            let pair = w / 2;
            let event_id = format!("r{run}-pair{pair}-{i}");
            let body = event_body(&event_id, i, &format!("pair{pair}"));
            (event_id, sessions[(pair + i) % SESSIONS].clone(), body)
        } else {
            let event_id = format!("r{run}-w{w}-{i}");
            let body = event_body(&event_id, i, &format!("w{w}"));
            (event_id, sessions[(w + i) % SESSIONS].clone(), body)
        };
        let sent = Sent {
            session: session.clone(),
            body: body.clone(),
        };
        let url = format!("{base}/sessions/{session}/events");
        match post_retrying(&client, &url, &body, unavailable).await {
            Ok((status @ (200 | 201), reply)) => {
                let newly = {
                    let mut l = lock(&ledger);
                    let newly = !l.acked.contains_key(&event_id);
                    l.record_ack(&event_id, &sent, status, &reply);
                    newly
                };
                if newly {
                    acked_in_run.fetch_add(1, Ordering::SeqCst);
                }
                // Now and then the client "did not hear" the answer and sends it again.
                if i.is_multiple_of(4) {
                    match post_retrying(&client, &url, &body, unavailable).await {
                        Ok((200, again)) if again["seq"] == reply["seq"] => {
                            lock(&ledger).retries_confirmed += 1;
                        }
                        Ok((status, again)) => lock(&ledger).unexpected.push(format!(
                            "identical retry of {event_id} (first {reply}) got {status} {again}"
                        )),
                        Err(_) => return,
                    }
                }
            }
            Ok((status, reply)) => lock(&ledger)
                .unexpected
                .push(format!("event {event_id}: {status} {reply}")),
            Err(_) => {
                let mut l = lock(&ledger);
                if !l.acked.contains_key(&event_id) {
                    l.unanswered.insert(event_id, sent);
                }
                return;
            }
        }
    }
}

/// Runs [`WRITERS`] writers against `service`, kills it at `kill_at`, waits for the writers to
/// stop, and returns how many events were acknowledged in this run.
async fn ingest_and_kill(
    service: Service,
    label: &str,
    run: usize,
    kill_at: KillAt,
    ledger: &Arc<Mutex<Ledger>>,
) -> usize {
    let client = client();
    let acked_in_run = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            tokio::spawn(writer(
                client.clone(),
                service.base.clone(),
                run,
                w,
                ledger.clone(),
                acked_in_run.clone(),
            ))
        })
        .collect();
    let started = Instant::now();
    let target = match kill_at {
        KillAt::Acks(n) => n,
        KillAt::RandomMoment => 1,
    };
    while acked_in_run.load(Ordering::SeqCst) < target {
        assert!(
            started.elapsed() < KILL_POINT_LIMIT,
            "ingest acknowledged only {} events within {KILL_POINT_LIMIT:?} (waiting for \
             {target}); unexpected answers: {:?}; service output:\n{}",
            acked_in_run.load(Ordering::SeqCst),
            lock(ledger).unexpected,
            service.output()
        );
        assert!(
            !writers.iter().all(|w| w.is_finished()),
            "every writer stopped before the kill point ({} acknowledged); unexpected answers: \
             {:?}; service output:\n{}",
            acked_in_run.load(Ordering::SeqCst),
            lock(ledger).unexpected,
            service.output()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    if let KillAt::RandomMoment = kill_at {
        let delay = Duration::from_millis(50 + jitter(700));
        println!("{label} run {run}: killing {delay:?} after the first acknowledgement");
        tokio::time::sleep(delay).await;
    }
    let at_kill = acked_in_run.load(Ordering::SeqCst);
    service.kill();
    for w in writers {
        w.await.expect("writer task panicked");
    }
    let acked = acked_in_run.load(Ordering::SeqCst);
    println!(
        "{label} run {run}: killed at {at_kill} acknowledged events ({acked} once every reply \
         was in)"
    );
    acked
}

// ---------------------------------------------------------------------------------------------
// verification

/// One event as a cursor walk returned it.
#[derive(Debug, Clone)]
struct Walked {
    event_id: String,
    seq: u64,
    payload: Value,
    event_type: Value,
}

/// Follows `nextCursor` through the whole session in `order`; checks each page's pagination.
async fn walk(
    client: &reqwest::Client,
    service: &Service,
    session: &str,
    order: &str,
    limit: u32,
) -> (Value, Vec<Walked>) {
    let mut query = format!("?order={order}&limit={limit}");
    let mut first = None;
    let mut events = Vec::new();
    for _ in 0..10_000 {
        let (status, body) = get(client, service, &format!("/sessions/{session}{query}")).await;
        assert_eq!(status, 200, "GET /sessions/{session}{query}: {body}");
        let p = &body["pagination"];
        assert_eq!(p["total"], body["eventCount"], "{body}");
        let page = body["events"].as_array().expect("events array");
        assert!(page.len() <= limit as usize, "{body}");
        for e in page {
            events.push(Walked {
                event_id: e["eventId"].as_str().expect("eventId").to_owned(),
                seq: e["seq"].as_u64().expect("seq"),
                payload: e["payload"].clone(),
                event_type: e["type"].clone(),
            });
        }
        let has_more = p["hasMore"].as_bool().expect("hasMore");
        if first.is_none() {
            first = Some(body.clone());
        }
        match p["nextCursor"].as_str() {
            Some(cursor) => {
                assert!(has_more, "nextCursor without hasMore: {body}");
                query = format!("?order={order}&limit={limit}&after={cursor}");
            }
            None => {
                assert!(!has_more, "hasMore without nextCursor: {body}");
                return (first.expect("a first page"), events);
            }
        }
    }
    panic!("the cursor walk of {session} did not end after 10000 pages");
}

/// Walks `session` ascending (and descending) and checks that it is whole: seqs exactly
/// 1..=eventCount in order, no eventId twice, status matching the count. Returns the events by
/// eventId.
async fn check_session(
    client: &reqwest::Client,
    service: &Service,
    session: &str,
) -> HashMap<String, Walked> {
    let (first, asc) = walk(client, service, session, "asc", 100).await;
    let count = first["eventCount"].as_u64().expect("eventCount");
    let seqs: Vec<u64> = asc.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=count).collect();
    assert_eq!(
        seqs, expected,
        "{session}: the cursor walk must give seqs 1..=eventCount ({count}) in order"
    );
    let status = first["status"].as_str().expect("status");
    let expected_status = if count > 0 { "active" } else { "initiated" };
    assert_eq!(
        status, expected_status,
        "{session} has {count} events, so its status must be {expected_status}: {first}"
    );
    assert!(first["endedAt"].is_null(), "{session} never ended: {first}");
    let (_, desc) = walk(client, service, session, "desc", 37).await;
    let desc_ids: Vec<&str> = desc.iter().rev().map(|e| e.event_id.as_str()).collect();
    let asc_ids: Vec<&str> = asc.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(
        desc_ids, asc_ids,
        "{session}: the descending walk must be the ascending one reversed"
    );
    let mut by_id = HashMap::new();
    for e in asc {
        if let Some(twice) = by_id.insert(e.event_id.clone(), e) {
            panic!(
                "{session}: event {} is stored twice (seq {} and another)",
                twice.event_id, twice.seq
            );
        }
    }
    by_id
}

/// Everything the brief promises after a restart, for everything the ledger knows. Retries
/// every unanswered request, after which the ledger has none left.
async fn verify_after_restart(service: &Service, label: &str, l: &mut Ledger) -> usize {
    let client = client();
    let unavailable = l.unavailable.clone();
    let unavailable = unavailable.as_ref();
    assert!(
        l.unexpected.is_empty(),
        "answers no running service should give: {:#?}",
        l.unexpected
    );

    // Sessions: acknowledged ones exist untouched; an unanswered create is safe to repeat.
    let created: Vec<String> = l.sessions_acked.iter().cloned().collect();
    for session in &created {
        let (status, body) = get(&client, service, &format!("/sessions/{session}")).await;
        assert_eq!(
            status, 200,
            "the acknowledged session {session} is gone: {body}"
        );
        assert_eq!(body["status"], "initiated", "{body}");
        assert_eq!(body["eventCount"], 0, "{body}");
    }
    let unanswered_sessions: Vec<String> = l.sessions_unanswered.drain().collect();
    for session in unanswered_sessions {
        let (before, _) = get(&client, service, &format!("/sessions/{session}")).await;
        let body = json!({"sessionId": session, "language": "en-US", "metadata": {}});
        let (status, reply) = post_retrying(&client, &service.url("/sessions"), &body, unavailable)
            .await
            .unwrap_or_else(|e| panic!("create {session} after the restart: {e}"));
        let expected = if before == 200 { 200 } else { 201 };
        assert_eq!(
            status, expected,
            "retrying the create of {session} (GET said {before}): {reply}"
        );
        l.sessions_acked.insert(session);
    }

    // Every shared session is whole, and holds exactly what the clients can account for.
    let mut stored: BTreeMap<String, HashMap<String, Walked>> = BTreeMap::new();
    for session in shared_sessions() {
        let events = check_session(&client, service, &session).await;
        for (id, e) in &events {
            let sent = match (l.acked.get(id), l.unanswered.get(id)) {
                (Some((sent, seq)), _) => {
                    assert_eq!(
                        e.seq, *seq,
                        "{id} was acknowledged with seq {seq}, but is stored with seq {}",
                        e.seq
                    );
                    sent
                }
                (None, Some(sent)) => sent,
                (None, None) => panic!("{session} holds {id}, which no client sent"),
            };
            assert_eq!(sent.session, session, "{id} is stored in the wrong session");
            assert_eq!(e.payload, sent.body["payload"], "{id}: stored payload");
            assert_eq!(e.event_type, sent.body["type"], "{id}: stored type");
        }
        stored.insert(session, events);
    }
    for (id, (sent, seq)) in &l.acked {
        assert!(
            stored[&sent.session].contains_key(id),
            "the acknowledged event {id} (seq {seq}) is missing from {}'s cursor walk",
            sent.session
        );
    }

    // Every acknowledged event also reads back by id, with its seq.
    let lookups: Vec<(String, String, u64)> = l
        .acked
        .iter()
        .map(|(id, (sent, seq))| (id.clone(), sent.session.clone(), *seq))
        .collect();
    let verified = lookups.len();
    let client_ref = &client;
    futures_util::stream::iter(lookups)
        .for_each_concurrent(8, |(id, session, seq)| async move {
            let (status, body) = get(
                client_ref,
                service,
                &format!("/sessions/{session}/events/{id}"),
            )
            .await;
            assert_eq!(status, 200, "GET the acknowledged event {id}: {body}");
            assert_eq!(body["seq"], seq, "GET {id}: {body}");
        })
        .await;

    // Requests in flight at the kill: stored or not, a retry is 200 (stored) or 201 (not yet),
    // one at a time so that a new seq is always the next one.
    let mut retried: Vec<(String, Sent)> = l.unanswered.drain().collect();
    retried.sort_by(|a, b| a.0.cmp(&b.0));
    let (mut stored_before, mut stored_now) = (0, 0);
    for (id, sent) in &retried {
        let url = service.url(&format!("/sessions/{}/events", sent.session));
        let (status, reply) = post_retrying(&client, &url, &sent.body, unavailable)
            .await
            .unwrap_or_else(|e| panic!("retry of {id} after the restart: {e}"));
        let events = stored.get_mut(&sent.session).expect("a shared session");
        match events.get(id) {
            Some(e) => {
                assert_eq!(
                    (status, reply["seq"].as_u64()),
                    (200, Some(e.seq)),
                    "{id} was stored before the kill, so its retry must be 200 with its seq: {reply}"
                );
                stored_before += 1;
            }
            None => {
                let next = events.len() as u64 + 1;
                assert_eq!(
                    (status, reply["seq"].as_u64()),
                    (201, Some(next)),
                    "{id} was not stored, so its retry must be 201 with the next seq: {reply}"
                );
                events.insert(
                    id.clone(),
                    Walked {
                        event_id: id.clone(),
                        seq: next,
                        payload: sent.body["payload"].clone(),
                        event_type: sent.body["type"].clone(),
                    },
                );
                stored_now += 1;
            }
        }
        let seq = reply["seq"].as_u64().expect("seq");
        l.acked.insert(id.clone(), (sent.clone(), seq));
    }

    // After the retries every session is whole again and holds each event once.
    for (session, expected) in &stored {
        let events = check_session(&client, service, session).await;
        let mut got: Vec<(&String, u64)> = events.iter().map(|(id, e)| (id, e.seq)).collect();
        let mut want: Vec<(&String, u64)> = expected.iter().map(|(id, e)| (id, e.seq)).collect();
        got.sort();
        want.sort();
        assert_eq!(
            got, want,
            "{session} after retrying the unanswered requests"
        );
    }
    println!(
        "{label} verified {verified} acknowledged events by id and by cursor walk, {} sessions \
         created during ingest, {} identical retries confirmed so far; {} unanswered requests \
         retried: {stored_before} had been stored, {stored_now} had not; 503 answers so far: {} \
         (each retried)",
        l.sessions_acked.len(),
        l.retries_confirmed,
        retried.len(),
        l.unavailable.load(Ordering::Relaxed)
    );
    verified
}

// ---------------------------------------------------------------------------------------------
// the scenario

async fn crash_scenario(target: Target, label: String, kills: &'static [KillAt]) {
    let store = &target;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let service = Service::start(store).await;
    let client = client();
    for session in shared_sessions() {
        let body = json!({"sessionId": session, "language": "en-US", "metadata": {"shared": true}});
        let (status, reply) = post(&client, &service.url("/sessions"), &body)
            .await
            .expect("create a shared session");
        assert_eq!(status, 201, "create {session}: {reply}");
    }
    let mut service = service;
    for (run, kill_at) in kills.iter().enumerate() {
        ingest_and_kill(service, &label, run, *kill_at, &ledger).await;
        service = Service::start(store).await;
        // Every writer has stopped: the ledger is the test's alone until the next run.
        let mut l = std::mem::take(&mut *lock(&ledger));
        let verified = verify_after_restart(&service, &label, &mut l).await;
        *lock(&ledger) = l;
        println!("{label} run {run} ({kill_at:?}): {verified} acknowledged events verified");
    }
}

/// Runs the scenario on a fresh store of `backend`, removes the store, then passes on a panic.
async fn run_crash_test(backend: Backend, synchronous: &'static str, kills: &'static [KillAt]) {
    let store = Store::new(backend, synchronous);
    let label = format!("[{backend:?} synchronous={synchronous} {kills:?}]");
    let outcome = tokio::spawn(crash_scenario(store.target.clone(), label, kills)).await;
    store.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

mod sqlite {
    use super::{Backend, KillAt, run_crash_test};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_acknowledged_event_survives_a_kill_after_50_acknowledgements() {
        run_crash_test(Backend::Sqlite, "full", &[KillAt::Acks(50)]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_acknowledged_event_survives_a_kill_after_200_acknowledgements() {
        run_crash_test(Backend::Sqlite, "full", &[KillAt::Acks(200)]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_acknowledged_event_survives_a_kill_after_500_acknowledgements() {
        run_crash_test(Backend::Sqlite, "full", &[KillAt::Acks(500)]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn acknowledged_events_survive_two_kills_in_a_row_at_random_moments() {
        run_crash_test(
            Backend::Sqlite,
            "full",
            &[KillAt::RandomMoment, KillAt::RandomMoment],
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_synchronous_normal_a_process_kill_loses_no_acknowledged_event() {
        run_crash_test(Backend::Sqlite, "normal", &[KillAt::Acks(200)]).await;
    }
}

mod mongo {
    use super::{Backend, KillAt, run_crash_test};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_acknowledged_event_survives_a_kill_after_50_acknowledgements() {
        run_crash_test(Backend::Mongo, "full", &[KillAt::Acks(50)]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_acknowledged_event_survives_a_kill_after_200_acknowledgements() {
        run_crash_test(Backend::Mongo, "full", &[KillAt::Acks(200)]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_acknowledged_event_survives_a_kill_after_500_acknowledgements() {
        run_crash_test(Backend::Mongo, "full", &[KillAt::Acks(500)]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn acknowledged_events_survive_two_kills_in_a_row_at_random_moments() {
        run_crash_test(
            Backend::Mongo,
            "full",
            &[KillAt::RandomMoment, KillAt::RandomMoment],
        )
        .await;
    }
}
