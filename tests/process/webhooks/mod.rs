//! Webhooks in the real binary across `kill -9`: a message queued (and refused by a receiver that
//! is down) before the kill is delivered by the restarted process under its original
//! `webhook-id`, once; a change acknowledged just before the kill (perhaps before the fan-out
//! queued it) is still sent after the restart; and two processes on one SQLite file deliver each
//! message once. The receiver is a small axum server in the test process, on loopback; every
//! message is verified with the `standardwebhooks` crate, independent of the service's signing.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::support::process::{ServiceCommand, ServiceProcess};
use crate::support::{Backend, ServiceStore, wait};
use crate::{client, post_json};

/// How long one wait in these tests may take: a hang detector, never a timing assertion. A
/// delivery claimed by the killed process is leased for `WEBHOOK_TIMEOUT_MS` + 30 s, and only
/// tried again once the lease lapses, so this is well above 32 s.
const LIMIT: Duration = Duration::from_secs(90);
/// How long to keep listening once everything arrived, for a copy that should not come.
const SETTLE: Duration = Duration::from_secs(3);
/// Twenty attempts (the most a schedule may list), a second or two apart: room for the kill and
/// the restart before the receiver comes up, without a message running out of attempts.
const SCHEDULE: &str = "0,1,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2";

// ---------------------------------------------------------------------------------------------
// the receiver

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("a webhook body that is not JSON ({e}): {}", self.body))
    }

    fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }

    fn session(&self) -> String {
        self.json()["data"]["sessionId"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Whether the `standardwebhooks` crate accepts the request with `secret`.
    fn verifies_with(&self, secret: &str) -> bool {
        let webhook = standardwebhooks::Webhook::new(secret).expect("a whsec_ secret");
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("webhook-id", &self.id),
            ("webhook-timestamp", &self.timestamp),
            ("webhook-signature", &self.signature),
        ] {
            match value.parse() {
                Ok(value) => {
                    headers.insert(name, value);
                }
                Err(_) => return false,
            }
        }
        webhook.verify(self.body.as_bytes(), &headers).is_ok()
    }
}

type Log = Arc<Mutex<Vec<Received>>>;

/// Records the request and answers 204.
async fn receive(State(log): State<Log>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let received = Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    log.lock().unwrap_or_else(|e| e.into_inner()).push(received);
    StatusCode::NO_CONTENT
}

/// A webhook receiver on loopback: `POST /hook` recorded and answered 204. Stops when dropped.
struct Receiver {
    addr: SocketAddr,
    log: Log,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Listens on `addr` (`127.0.0.1:0` for a free port).
    async fn bind(addr: SocketAddr) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind the webhook receiver to {addr}: {e}"));
        let addr = listener.local_addr().expect("the receiver's address");
        let log = Log::default();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(log.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the webhook receiver");
        });
        Receiver { addr, log, task }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits (at most [`LIMIT`]) until `done` holds for what was received; what was received.
    async fn until(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let read = || std::future::ready(self.received());
        wait::until(
            what,
            LIMIT,
            Duration::from_millis(50),
            read,
            |r| done(r),
            |r| {
                let seen: Vec<_> = r
                    .iter()
                    .map(|r| (r.id.clone(), r.kind(), r.session()))
                    .collect();
                format!("received {} requests: {seen:?}", r.len())
            },
        )
        .await
    }
}

/// A loopback address nothing listens on (until a receiver binds it).
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address")
}

/// How many copies of each `webhook-id` arrived.
fn copies(received: &[Received]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in received {
        *counts.entry(r.id.clone()).or_default() += 1;
    }
    counts
}

// ---------------------------------------------------------------------------------------------
// the service

/// The service on `store`: receivers on loopback allowed, retries a second or two apart, and
/// attempts (hence leases) short.
fn command(store: &ServiceStore) -> ServiceCommand {
    ServiceCommand::new()
        .store(store)
        .env("RUST_LOG", "session_service=info")
        .env("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true")
        .env("WEBHOOK_RETRY_SCHEDULE", SCHEDULE)
        .env("WEBHOOK_TIMEOUT_MS", "2000")
}

/// Starts the service and waits for `/ready`.
async fn start(command: &ServiceCommand) -> ServiceProcess {
    let service = command.start().await;
    service.wait_ready().await;
    service
}

/// Registers an endpoint for `url` with `types`; its id and secret.
async fn register(
    http: &reqwest::Client,
    service: &ServiceProcess,
    url: &str,
    types: &[&str],
) -> (String, String) {
    let (status, reply) = post_json(
        http,
        &service.url("/webhooks"),
        &json!({"url": url, "types": types}),
    )
    .await
    .expect("register the endpoint");
    assert_eq!(status, 201, "register {url}: {reply}");
    let field = |name: &str| {
        reply[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {reply}"))
            .to_owned()
    };
    (field("id"), field("secret"))
}

async fn create(http: &reqwest::Client, service: &ServiceProcess, session: &str) {
    let body = json!({"sessionId": session, "language": "en-US"});
    let (status, reply) = post_json(http, &service.url("/sessions"), &body)
        .await
        .unwrap_or_else(|e| panic!("create {session}: {e}"));
    assert_eq!(status, 201, "create {session}: {reply}");
}

async fn append(http: &reqwest::Client, service: &ServiceProcess, session: &str, event: &str) {
    let url = service.url(&format!("/sessions/{session}/events"));
    let body = json!({"eventId": event, "type": "user_speech", "payload": {"text": event}});
    let (status, reply) = post_json(http, &url, &body)
        .await
        .unwrap_or_else(|e| panic!("append {event} to {session}: {e}"));
    assert_eq!(status, 201, "append {event} to {session}: {reply}");
}

/// The endpoint's delivery log, newest first.
async fn deliveries(
    http: &reqwest::Client,
    service: &ServiceProcess,
    endpoint: &str,
) -> Vec<Value> {
    let url = service.url(&format!("/webhooks/{endpoint}/deliveries?limit=100"));
    let response = http
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.expect("the delivery log");
    assert_eq!(status, 200, "GET {url}: {text}");
    let body: Value = serde_json::from_str(&text).expect("a JSON delivery log");
    body["deliveries"]
        .as_array()
        .unwrap_or_else(|| panic!("no deliveries in {text}"))
        .clone()
}

/// Waits (at most [`LIMIT`]) until the endpoint's log satisfies `done`; the log.
async fn deliveries_until(
    http: &reqwest::Client,
    service: &ServiceProcess,
    endpoint: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let read = || deliveries(http, service, endpoint);
    let show = |log: &Vec<Value>| {
        format!(
            "the log: {log:#?}\nthe service's output:\n{}",
            service.output()
        )
    };
    wait::until(
        what,
        LIMIT,
        Duration::from_millis(100),
        read,
        |l| done(l),
        show,
    )
    .await
}

fn attempts(delivery: &Value) -> &[Value] {
    delivery["attempts"].as_array().map_or(&[], Vec::as_slice)
}

/// The log's entry for `session`'s message of type `kind`.
fn entry<'a>(log: &'a [Value], session: &str, kind: &str) -> Option<&'a Value> {
    log.iter()
        .find(|d| d["sessionId"] == session && d["type"] == kind)
}

/// The SQLite file behind `store`.
fn database_file(store: &ServiceStore) -> PathBuf {
    let path = store
        .database_url
        .strip_prefix("sqlite://")
        .unwrap_or_else(|| panic!("not a SQLite store: {}", store.database_url));
    PathBuf::from(path)
}

/// What the killed process left in the store for `session`'s messages: read from a copy of the
/// file (and its WAL), so the restarted process recovers the original untouched. For the test's
/// output only: it names which case a kill hit, and asserts nothing.
fn left_behind(file: &Path, session: &str) -> String {
    let inspect = || -> Result<String, Box<dyn std::error::Error>> {
        let scratch = tempfile::tempdir()?;
        let copy = scratch.path().join("copy.db");
        std::fs::copy(file, &copy)?;
        let wal = PathBuf::from(format!("{}-wal", file.display()));
        if wal.exists() {
            std::fs::copy(&wal, scratch.path().join("copy.db-wal"))?;
        }
        let conn = rusqlite::Connection::open(&copy)?;
        let mut stmt = conn.prepare(
            "SELECT d.status, d.attempted, d.lease_until IS NOT NULL
             FROM webhook_messages m JOIN webhook_deliveries d ON d.ord = m.ord
             WHERE m.session_id = ?1",
        )?;
        let rows = stmt
            .query_map([session], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, bool>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match rows.as_slice() {
            [] => "not queued yet (the fan-out had not run)".to_owned(),
            [(status, _, true)] => format!("queued, an attempt in flight ({status}, leased)"),
            [(status, false, false)] => format!("queued, not attempted yet ({status})"),
            [(status, true, false)] => format!("queued and attempted ({status})"),
            more => format!("{} deliveries: {more:?}", more.len()),
        })
    };
    inspect().unwrap_or_else(|e| format!("could not inspect the store: {e}"))
}

// ---------------------------------------------------------------------------------------------
// the tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_queued_before_kill_9_is_delivered_after_the_restart_with_the_same_id() {
    let store = ServiceStore::new(Backend::Sqlite, "webhooks-kill-queued");
    let command = command(&store);
    let http = client();
    let service = start(&command).await;
    // Nothing listens there yet: every attempt before the kill is refused.
    let addr = closed_port();
    let (endpoint, secret) = register(
        &http,
        &service,
        &format!("http://{addr}/hook"),
        &["session.created"],
    )
    .await;
    let sessions: Vec<String> = (0..5).map(|n| format!("queued-{n}")).collect();
    for session in &sessions {
        create(&http, &service, session).await;
    }
    let before = deliveries_until(
        &http,
        &service,
        &endpoint,
        "a refused attempt for every message",
        |log| log.len() == sessions.len() && log.iter().all(|d| !attempts(d).is_empty()),
    )
    .await;
    // Which message is which session's, as the killed process queued them.
    let mut expected: HashMap<String, String> = HashMap::new();
    for delivery in &before {
        assert_eq!(delivery["status"], "pending", "{delivery:#}");
        assert_eq!(delivery["type"], "session.created", "{delivery:#}");
        for attempt in attempts(delivery) {
            assert!(
                attempt["responseStatus"].is_null() && attempt["error"].is_string(),
                "an attempt on a closed port gets no answer: {delivery:#}"
            );
        }
        let id = delivery["messageId"]
            .as_str()
            .expect("messageId")
            .to_owned();
        let session = delivery["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned();
        assert!(sessions.contains(&session), "{delivery:#}");
        assert!(
            expected.insert(id, session).is_none(),
            "one id per message: {before:#?}"
        );
    }
    assert_eq!(expected.len(), sessions.len(), "{before:#?}");

    service.kill();
    let service = start(&command).await;
    // Only now does anything listen on the endpoint's port.
    let receiver = Receiver::bind(addr).await;
    receiver
        .until("every message queued before the kill", |received| {
            let ids: HashSet<&str> = received.iter().map(|r| r.id.as_str()).collect();
            expected.keys().all(|id| ids.contains(id.as_str()))
        })
        .await;
    let after = deliveries_until(
        &http,
        &service,
        &endpoint,
        "every message delivered",
        |log| log.len() == sessions.len() && log.iter().all(|d| d["status"] == "succeeded"),
    )
    .await;
    tokio::time::sleep(SETTLE).await;

    let received = receiver.received();
    let counts = copies(&received);
    assert_eq!(
        counts.keys().collect::<HashSet<_>>(),
        expected.keys().collect::<HashSet<_>>(),
        "exactly the messages queued before the kill, under their ids: {received:#?}"
    );
    assert!(
        counts.values().all(|n| *n == 1),
        "each message once: {counts:?}\nthe service's output:\n{}",
        service.output()
    );
    for r in &received {
        assert!(r.verifies_with(&secret), "the signature verifies: {r:#?}");
        assert_eq!(r.kind(), "session.created", "{r:#?}");
        assert_eq!(
            r.session(),
            expected[&r.id],
            "the id is that session's: {r:#?}"
        );
    }
    // The log is the one the killed process kept: its refused attempts, then the delivery.
    for delivery in &after {
        let id = delivery["messageId"].as_str().expect("messageId");
        let old = before
            .iter()
            .find(|d| d["messageId"] == id)
            .unwrap_or_else(|| panic!("{id} was not in the log before the kill: {after:#?}"));
        let (old, new) = (attempts(old), attempts(delivery));
        assert!(
            new.len() > old.len() && new[..old.len()] == *old,
            "the attempts before the kill are still logged, before the delivery: {old:#?} then \
             {new:#?}"
        );
        assert_eq!(new.last().unwrap()["responseStatus"], 204, "{delivery:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_just_before_kill_9_is_still_sent() {
    /// Kills, each right after a session's 201.
    const ROUNDS: usize = 3;
    let store = ServiceStore::new(Backend::Sqlite, "webhooks-kill-change");
    let file = database_file(&store);
    let command = command(&store);
    let http = client();
    let receiver = Receiver::bind(([127, 0, 0, 1], 0).into()).await;
    let mut service = start(&command).await;
    let (endpoint, secret) = register(&http, &service, &receiver.url(), &["session.created"]).await;
    // One message through and logged first: the fan-out has started from the store's first
    // change (it starts from the newest change it finds on its first run) and nothing is in
    // flight when the round's session is created.
    create(&http, &service, "warm-up").await;
    receiver
        .until("the warm-up message", |r| {
            r.iter().any(|r| r.session() == "warm-up")
        })
        .await;
    deliveries_until(&http, &service, &endpoint, "the warm-up logged", |log| {
        entry(log, "warm-up", "session.created").is_some_and(|d| d["status"] == "succeeded")
    })
    .await;

    // Ids whose first copy reached the receiver before a kill: the killed process may not have
    // logged that delivery, and then the restarted one sends it again (at least once).
    let mut sent_before_a_kill: HashSet<String> = HashSet::new();
    for round in 0..ROUNDS {
        let session = format!("last-words-{round}");
        create(&http, &service, &session).await;
        service.kill();
        // Anything the killed process had on the wire is in by now; what comes later is the
        // restarted process's.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let early: Vec<Received> = receiver
            .received()
            .into_iter()
            .filter(|r| r.session() == session)
            .collect();
        println!(
            "round {round}: at the kill, {session}'s message was {}; {} copies had arrived",
            left_behind(&file, &session),
            early.len()
        );
        service = start(&command).await;
        receiver
            .until(&format!("{session}'s message after the restart"), |r| {
                r.iter().any(|r| r.session() == session)
            })
            .await;
        deliveries_until(
            &http,
            &service,
            &endpoint,
            &format!("{session}'s delivery logged"),
            |log| {
                entry(log, &session, "session.created").is_some_and(|d| d["status"] == "succeeded")
            },
        )
        .await;
        tokio::time::sleep(SETTLE).await;

        let got: Vec<Received> = receiver
            .received()
            .into_iter()
            .filter(|r| r.session() == session)
            .collect();
        let log = deliveries(&http, &service, &endpoint).await;
        let logged = entry(&log, &session, "session.created").expect("logged");
        for r in &got {
            assert_eq!(r.kind(), "session.created", "{r:#?}");
            assert_eq!(r.id, logged["messageId"].as_str().unwrap(), "{r:#?}");
            assert!(r.verifies_with(&secret), "the signature verifies: {r:#?}");
        }
        let late = got.len() - early.len();
        assert!(
            late <= 1,
            "the restarted process sent {session}'s message {late} times: {got:#?}\nits output:\n{}",
            service.output()
        );
        if early.is_empty() {
            assert_eq!(
                got.len(),
                1,
                "{session}'s message, not sent before the kill, arrives once: {got:#?}"
            );
        } else {
            sent_before_a_kill.insert(got[0].id.clone());
            if late == 1 {
                println!(
                    "round {round}: {session}'s message reached the receiver before the kill and \
                     was sent again after the restart (the killed process had not logged it)"
                );
            }
        }
    }

    // Over the whole run: every session's message, each once (or, if it reached the receiver
    // before a kill, at most once more).
    let received = receiver.received();
    let sessions: HashSet<String> = received.iter().map(Received::session).collect();
    assert_eq!(sessions.len(), ROUNDS + 1, "{received:#?}");
    for (id, n) in copies(&received) {
        let allowed = if sent_before_a_kill.contains(&id) {
            2
        } else {
            1
        };
        assert!(n <= allowed, "{id} arrived {n} times: {received:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_sqlite_file_deliver_each_message_once() {
    let store = ServiceStore::new(Backend::Sqlite, "webhooks-two");
    let command = command(&store);
    let http = client();
    let receiver = Receiver::bind(([127, 0, 0, 1], 0).into()).await;
    let a = start(&command).await;
    let b = start(&command).await;
    let (endpoint, secret) = register(
        &http,
        &a,
        &receiver.url(),
        &["session.created", "event.appended"],
    )
    .await;
    // The fan-out has started from the store's first change (see the kill test).
    create(&http, &a, "warm-up").await;
    deliveries_until(&http, &b, &endpoint, "the warm-up logged", |log| {
        entry(log, "warm-up", "session.created").is_some_and(|d| d["status"] == "succeeded")
    })
    .await;

    let mut writes = Vec::new();
    for n in 0..10 {
        let (http, service) = (http.clone(), if n % 2 == 0 { a.base() } else { b.base() });
        writes.push(tokio::spawn(async move {
            let session = format!("two-{n}");
            let body = json!({"sessionId": session, "language": "en-US"});
            let (status, reply) = post_json(&http, &format!("{service}/sessions"), &body)
                .await
                .expect("create");
            assert_eq!(status, 201, "{reply}");
            for e in 0..2 {
                let body =
                    json!({"eventId": format!("e{e}"), "type": "user_speech", "payload": {}});
                let url = format!("{service}/sessions/{session}/events");
                let (status, reply) = post_json(&http, &url, &body).await.expect("append");
                assert_eq!(status, 201, "{reply}");
            }
        }));
    }
    for write in writes {
        write.await.expect("a writer");
    }
    // Through each process too, in turn, after the concurrent ones.
    create(&http, &b, "two-b").await;
    append(&http, &a, "two-b", "e0").await;
    let want = 1 + 10 * 3 + 2;
    receiver
        .until(&format!("{want} messages"), |r| copies(r).len() >= want)
        .await;
    deliveries_until(
        &http,
        &a,
        &endpoint,
        "every message logged delivered",
        |log| log.len() == want && log.iter().all(|d| d["status"] == "succeeded"),
    )
    .await;
    tokio::time::sleep(SETTLE).await;

    let received = receiver.received();
    let counts = copies(&received);
    assert_eq!(counts.len(), want, "{received:#?}");
    assert!(
        counts.values().all(|n| *n == 1),
        "each message once: {counts:?}\nA:\n{}\nB:\n{}",
        a.output(),
        b.output()
    );
    assert!(received.iter().all(|r| r.verifies_with(&secret)));
    // Each session's messages in change order.
    let mut per_session: HashMap<String, Vec<String>> = HashMap::new();
    for r in &received {
        per_session.entry(r.session()).or_default().push(r.kind());
    }
    for (session, kinds) in per_session {
        if session != "warm-up" {
            assert_eq!(kinds[0], "session.created", "{session}: {kinds:?}");
        }
    }
}

mod shutdown;
