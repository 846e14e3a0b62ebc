//! Concurrency at scale: hundreds of clients at once against the application on a real port,
//! racing to create the same sessions, sending distinct, duplicate and contested events to them,
//! walking them by cursor while they grow, and completing some of them half way. Every request
//! and its answer is recorded with when it was sent and when the answer came; at the end the
//! record and the store must agree on every invariant of the API:
//!
//! - exactly-once storage: an eventId answered 2xx is stored once, with the seq and payload every
//!   2xx answer for it gave, and exactly one request for it was answered 201;
//! - exact counts: `eventCount` equals the events a cursor walk returns, seqs 1..=eventCount;
//! - one `endedAt` per ended session, the same in every 200 `complete` answer;
//! - `409 session_ended` only for events the client sent after someone asked to end the session,
//!   never for an event that is stored, and no event accepted (201) after a `complete` answered;
//! - cursor walks made during the writes are whole and strictly ordered.
//!
//! The work is a fixed number of operations per client (no loops that wait for a condition).

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use session_service::app::Application;
use session_service::config::Config;

use support::{Backend, StoreCtx, run_with_store};

/// How long one request may take before the test calls it hung.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a write answered 503 is sent again before the test gives up on it.
const WRITE_ATTEMPTS: usize = 30;

/// The size of one stress run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    clients: usize,
    sessions: usize,
    ops_per_client: usize,
}

/// Starts the same `Application` as `main` on a free port over the test's store.
async fn spawn_app(store: &StoreCtx) -> String {
    let config =
        Config::from_lookup(|name| (name == "PORT").then(|| "0".to_owned())).expect("test config");
    let app = Application::with_repositories(&config, store.repos.clone())
        .await
        .expect("build application");
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));
    base
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Create,
    Event,
    Complete,
    Walk,
    GetEvent,
}

/// One request and its answer.
#[derive(Debug, Clone)]
struct Record {
    kind: Kind,
    client: usize,
    session: String,
    event_id: Option<String>,
    request: Value,
    sent: Instant,
    answered: Instant,
    status: u16,
    reply: Value,
}

impl Record {
    fn code(&self) -> &str {
        self.reply["code"].as_str().unwrap_or("")
    }
}

/// A small deterministic generator, one per client.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

fn session_name(j: usize) -> String {
    format!("shared-{j}")
}

/// Odd sessions get ended half way; of those, every other one sees both terminal statuses.
fn is_ending(j: usize) -> bool {
    j % 2 == 1
}

fn is_contested_end(j: usize) -> bool {
    j % 4 == 3
}

struct Client {
    id: usize,
    http: reqwest::Client,
    base: String,
    records: Vec<Record>,
}

impl Client {
    async fn send(
        &mut self,
        kind: Kind,
        session: &str,
        event_id: Option<String>,
        path: &str,
        request: Option<Value>,
    ) -> Record {
        // A write answered 503 ("retry with the same request") is sent again, as a client
        // would; every attempt is recorded.
        for _ in 0..WRITE_ATTEMPTS {
            let record = self
                .send_once(kind, session, event_id.clone(), path, request.clone())
                .await;
            let retry =
                record.status == 503 && matches!(kind, Kind::Create | Kind::Event | Kind::Complete);
            if !retry {
                return record;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "client {}: {kind:?} {path} was answered 503 {WRITE_ATTEMPTS} times",
            self.id
        );
    }

    async fn send_once(
        &mut self,
        kind: Kind,
        session: &str,
        event_id: Option<String>,
        path: &str,
        request: Option<Value>,
    ) -> Record {
        let url = format!("{}{path}", self.base);
        let builder = match (&kind, &request) {
            (Kind::Walk | Kind::GetEvent, _) => self.http.get(&url),
            (_, Some(body)) => self.http.post(&url).json(body),
            (_, None) => self.http.post(&url),
        };
        let sent = Instant::now();
        let response = builder
            .send()
            .await
            .unwrap_or_else(|e| panic!("client {}: {kind:?} {path}: no answer: {e}", self.id));
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("client {}: {kind:?} {path}: body: {e}", self.id));
        let record = Record {
            kind,
            client: self.id,
            session: session.to_owned(),
            event_id,
            request: request.unwrap_or(Value::Null),
            sent,
            answered: Instant::now(),
            status,
            reply: serde_json::from_str(&text).unwrap_or(Value::Null),
        };
        self.records.push(record.clone());
        record
    }

    async fn post_event(&mut self, session: &str, body: Value) {
        let event_id = body["eventId"].as_str().expect("eventId").to_owned();
        self.send(
            Kind::Event,
            session,
            Some(event_id),
            &format!("/sessions/{session}/events"),
            Some(body),
        )
        .await;
    }

    /// Follows the cursor through `session` while others write to it. The pages are read at
    /// different moments, yet the walk must be whole: ascending it is 1..=m for some m at least
    /// the first page's total; descending it is exactly the first page's total down to 1.
    async fn walk(&mut self, session: &str, order: &str, limit: u32) {
        let mut query = format!("?order={order}&limit={limit}");
        let mut seqs: Vec<u64> = Vec::new();
        let mut first_total = None;
        for _ in 0..10_000 {
            let r = self
                .send(
                    Kind::Walk,
                    session,
                    None,
                    &format!("/sessions/{session}{query}"),
                    None,
                )
                .await;
            assert_eq!(r.status, 200, "walk of {session}: {}", r.reply);
            let total = r.reply["pagination"]["total"].as_u64().expect("total");
            assert_eq!(r.reply["eventCount"], total, "{}", r.reply);
            first_total.get_or_insert(total);
            for e in r.reply["events"].as_array().expect("events") {
                seqs.push(e["seq"].as_u64().expect("seq"));
            }
            match r.reply["pagination"]["nextCursor"].as_str() {
                Some(cursor) => query = format!("?order={order}&limit={limit}&after={cursor}"),
                None => {
                    let first_total = first_total.unwrap_or_default();
                    let expected: Vec<u64> = if order == "asc" {
                        let m = seqs.len() as u64;
                        assert!(
                            m >= first_total,
                            "an ascending walk of {session} returned {m} events, fewer than the \
                             {first_total} its first page counted"
                        );
                        (1..=m).collect()
                    } else {
                        (1..=first_total).rev().collect()
                    };
                    assert_eq!(
                        seqs, expected,
                        "a {order} cursor walk of {session} (limit {limit}) during writes must be \
                         whole and strictly ordered"
                    );
                    return;
                }
            }
        }
        panic!("a walk of {session} did not end after 10000 pages");
    }
}

/// One client's fixed list of operations.
async fn run_client(id: usize, http: reqwest::Client, base: String, plan: Plan) -> Vec<Record> {
    let mut client = Client {
        id,
        http,
        base,
        records: Vec::new(),
    };
    let mut rng = Lcg(0x5EED ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let home_index = id % plan.sessions;
    let home = session_name(home_index);
    // Everyone races to create their home session, each with its own metadata.
    client
        .send(
            Kind::Create,
            &home,
            None,
            "/sessions",
            Some(json!({"sessionId": home, "language": "en-US", "metadata": {"creator": id}})),
        )
        .await;
    for k in 1..plan.ops_per_client {
        let target_index = if rng.next(4) == 0 {
            rng.next(plan.sessions as u64) as usize
        } else {
            home_index
        };
        let target = session_name(target_index);
        let second_half = k * 2 >= plan.ops_per_client;
        match rng.next(100) {
            // A distinct event: only this client ever sends this id.
            0..=39 => {
                let event_id = format!("c{id}-k{k}");
                let body = json!({"eventId": event_id, "type": "user_speech",
                                  "payload": {"text": format!("client {id} op {k}")}});
                client.post_event(&target, body).await;
            }
            // A duplicate: a small space of ids per session, the content a function of the id,
            // so that many clients send the very same event.
            40..=59 => {
                let n = rng.next(6);
                let event_id = format!("dup-{target_index}-{k}-{n}");
                let body = json!({"eventId": event_id, "type": "bot_speech",
                                  "payload": {"text": format!("dup {n} at {k}"), "n": n}});
                client.post_event(&target, body).await;
            }
            // A contested id: the same eventId from several clients with different content.
            60..=69 => {
                let event_id = format!("con-{target_index}-{}", k / 3);
                let body = json!({"eventId": event_id, "type": "system",
                                  "payload": {"by": id}});
                client.post_event(&target, body).await;
            }
            // Reads while the session grows.
            70..=79 => {
                let order = if rng.next(2) == 0 { "asc" } else { "desc" };
                let limit = [5, 20, 100][rng.next(3) as usize];
                client.walk(&home, order, limit).await;
            }
            80..=84 => {
                let event_id = format!("dup-{home_index}-{}-{}", k.saturating_sub(1), rng.next(6));
                client
                    .send(
                        Kind::GetEvent,
                        &home,
                        Some(event_id.clone()),
                        &format!("/sessions/{home}/events/{event_id}"),
                        None,
                    )
                    .await;
            }
            // Half way, ending sessions get completed, by several clients at about once.
            _ if second_half && is_ending(home_index) => {
                let request = if is_contested_end(home_index) {
                    let status = if (id / plan.sessions).is_multiple_of(2) {
                        "completed"
                    } else {
                        "failed"
                    };
                    Some(json!({ "status": status }))
                } else if k.is_multiple_of(2) {
                    Some(json!({"status": "completed"}))
                } else {
                    None
                };
                client
                    .send(
                        Kind::Complete,
                        &home,
                        None,
                        &format!("/sessions/{home}/complete"),
                        request,
                    )
                    .await;
            }
            _ => {
                let event_id = format!("c{id}-k{k}");
                let body = json!({"eventId": event_id, "type": "user_speech",
                                  "payload": {"text": format!("client {id} op {k}")}});
                client.post_event(&target, body).await;
            }
        }
    }
    client.records
}

/// A whole ascending walk of `session` once the writes are over, checked against the count.
async fn final_walk(http: &reqwest::Client, base: &str, session: &str) -> (Value, Vec<Value>) {
    let mut query = "?order=asc&limit=100".to_owned();
    let mut first = None;
    let mut events = Vec::new();
    for _ in 0..10_000 {
        let url = format!("{base}/sessions/{session}{query}");
        let r = http.get(&url).send().await.expect("final walk");
        assert_eq!(r.status(), 200, "{url}");
        let body: Value = r.json().await.expect("final walk body");
        events.extend(body["events"].as_array().expect("events").iter().cloned());
        let cursor = body["pagination"]["nextCursor"].as_str().map(str::to_owned);
        first.get_or_insert(body);
        match cursor {
            Some(c) => query = format!("?order=asc&limit=100&after={c}"),
            None => return (first.expect("first page"), events),
        }
    }
    panic!("the final walk of {session} did not end after 10000 pages");
}

async fn stress(store: StoreCtx, plan: Plan) {
    let base = spawn_app(&store).await;
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(plan.clients)
        .build()
        .expect("http client");
    let started = Instant::now();
    let clients: Vec<_> = (0..plan.clients)
        .map(|id| tokio::spawn(run_client(id, http.clone(), base.clone(), plan)))
        .collect();
    let mut records: Vec<Record> = Vec::new();
    for c in clients {
        match c.await {
            Ok(client_records) => records.extend(client_records),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    let elapsed = started.elapsed();

    // ---- what was sent, and nothing the API does not promise ----
    let mut tally: BTreeMap<(Kind, u16, String), usize> = BTreeMap::new();
    for r in &records {
        *tally
            .entry((r.kind, r.status, r.code().to_owned()))
            .or_default() += 1;
        let allowed: &[(u16, &str)] = match r.kind {
            Kind::Create => &[
                (201, ""),
                (200, ""),
                (503, "storage_unavailable"),
                (503, "request_timeout"),
            ],
            Kind::Event => &[
                (201, ""),
                (200, ""),
                (404, "session_not_found"),
                (409, "event_id_conflict"),
                (409, "session_ended"),
                (503, "storage_unavailable"),
                (503, "request_timeout"),
            ],
            Kind::Complete => &[
                (200, ""),
                (409, "session_already_ended"),
                (503, "storage_unavailable"),
                (503, "request_timeout"),
            ],
            Kind::Walk => &[(200, "")],
            Kind::GetEvent => &[(200, ""), (404, "event_not_found")],
        };
        assert!(
            allowed.contains(&(r.status, r.code())),
            "client {} {:?} on {} {:?} got {} {}",
            r.client,
            r.kind,
            r.session,
            r.event_id,
            r.status,
            r.reply
        );
    }
    println!(
        "{:?} plan {plan:?}: {} requests in {elapsed:.1?}",
        store.backend,
        records.len()
    );
    for ((kind, status, code), n) in &tally {
        println!("  {kind:?} {status} {code}: {n}");
    }

    let per_session = |kind: Kind| {
        let mut map: HashMap<&str, Vec<&Record>> = HashMap::new();
        for r in records.iter().filter(|r| r.kind == kind) {
            map.entry(r.session.as_str()).or_default().push(r);
        }
        map
    };
    let creates = per_session(Kind::Create);
    let completes = per_session(Kind::Complete);

    // ---- creates: one winner per session, everyone else got the winner's session ----
    let mut first_create_answer: HashMap<&str, Instant> = HashMap::new();
    for (session, rs) in &creates {
        let winners: Vec<&&Record> = rs.iter().filter(|r| r.status == 201).collect();
        let first = rs
            .iter()
            .filter(|r| r.status / 100 == 2)
            .map(|r| r.answered)
            .min()
            .expect("a create answered 2xx");
        first_create_answer.insert(*session, first);
        if winners.is_empty() && rs.iter().any(|r| r.status == 503) {
            // The create that stored it was answered 503, and its retry found it (200).
            continue;
        }
        assert_eq!(
            winners.len(),
            1,
            "{session}: {} concurrent creates, exactly one must be 201, got {}",
            rs.len(),
            winners.len()
        );
        let winner = &winners[0].reply;
        for r in rs.iter().filter(|r| r.status / 100 == 2) {
            assert_eq!(
                r.reply["metadata"], winner["metadata"],
                "{session}: every create answer shows the winner's metadata"
            );
            assert_eq!(r.reply["startedAt"], winner["startedAt"], "{session}");
        }
    }

    // ---- completes: one endedAt per session, all 200 answers agree ----
    let mut ended: HashMap<&str, (Value, Instant, Instant)> = HashMap::new();
    for (session, rs) in &completes {
        let ok: Vec<&&Record> = rs.iter().filter(|r| r.status == 200).collect();
        assert!(
            !ok.is_empty(),
            "{session}: some complete must have succeeded"
        );
        let winner = &ok[0].reply;
        assert!(winner["endedAt"].is_string(), "{winner}");
        for r in &ok {
            for field in ["status", "endedAt", "eventCount"] {
                assert_eq!(
                    r.reply[field], winner[field],
                    "{session}: every 200 complete answer must give the same {field}"
                );
            }
        }
        for r in rs.iter().filter(|r| r.status == 409) {
            let asked = r.request["status"].as_str().unwrap_or("completed");
            assert_ne!(
                asked,
                winner["status"].as_str().unwrap_or_default(),
                "{session}: a complete asking for the stored status must be 200, not {}",
                r.reply
            );
        }
        let first_sent = rs.iter().map(|r| r.sent).min().expect("a complete");
        let first_ok = ok.iter().map(|r| r.answered).min().expect("a 200");
        ended.insert(*session, (winner.clone(), first_sent, first_ok));
    }

    // ---- the store at the end: whole sessions with exact counts ----
    let mut stored: HashMap<String, HashMap<String, Value>> = HashMap::new();
    for j in 0..plan.sessions {
        let session = session_name(j);
        let (first, events) = final_walk(&http, &base, &session).await;
        let count = first["eventCount"].as_u64().expect("eventCount");
        let seqs: Vec<u64> = events
            .iter()
            .map(|e| e["seq"].as_u64().expect("seq"))
            .collect();
        assert_eq!(
            seqs,
            (1..=count).collect::<Vec<u64>>(),
            "{session}: seqs must be exactly 1..=eventCount ({count})"
        );
        let mut by_id = HashMap::new();
        for e in events {
            let id = e["eventId"].as_str().expect("eventId").to_owned();
            assert!(
                by_id.insert(id.clone(), e).is_none(),
                "{session}: {id} is stored twice"
            );
        }
        match ended.get(session.as_str()) {
            Some((winner, _, _)) => {
                for field in ["status", "endedAt", "eventCount"] {
                    assert_eq!(
                        first[field], winner[field],
                        "{session}: the stored {field} must be what complete answered"
                    );
                }
            }
            None => {
                let expected = if count > 0 { "active" } else { "initiated" };
                assert_eq!(first["status"], expected, "{session}: {first}");
                assert!(first["endedAt"].is_null(), "{session}: {first}");
            }
        }
        assert_eq!(
            first["metadata"],
            creates[session.as_str()]
                .iter()
                .find(|r| r.status == 201)
                .expect("a winner")
                .reply["metadata"],
            "{session}: the stored metadata is the create winner's"
        );
        stored.insert(session, by_id);
    }

    // ---- events: exactly once, consistent answers, ends respected ----
    let mut by_event: HashMap<(&str, &str), Vec<&Record>> = HashMap::new();
    for r in records.iter().filter(|r| r.kind == Kind::Event) {
        let id = r.event_id.as_deref().expect("event id");
        by_event
            .entry((r.session.as_str(), id))
            .or_default()
            .push(r);
    }
    let mut acknowledged: HashMap<&str, HashSet<&str>> = HashMap::new();
    let (mut ended_rejections, mut after_end) = (0, 0);
    for ((session, id), rs) in &by_event {
        let ok: Vec<&&Record> = rs.iter().filter(|r| r.status / 100 == 2).collect();
        let stored_event = stored[*session].get(*id);
        match (ok.first(), stored_event) {
            (Some(first), Some(e)) => {
                let created = ok.iter().filter(|r| r.status == 201).count();
                // A request answered 503 may still have stored it; its retry then got 200.
                let unknown = rs.iter().any(|r| r.status == 503);
                assert!(
                    created == 1 || (created == 0 && unknown),
                    "{session}/{id}: {} requests answered 2xx, exactly one must be 201",
                    ok.len()
                );
                for r in &ok {
                    assert_eq!(r.reply["seq"], first.reply["seq"], "{session}/{id}: seq");
                    assert_eq!(r.reply["payload"], r.request["payload"], "{session}/{id}");
                }
                assert_eq!(e["seq"], first.reply["seq"], "{session}/{id}: stored seq");
                assert_eq!(
                    e["payload"], first.reply["payload"],
                    "{session}/{id}: stored payload"
                );
                acknowledged.entry(*session).or_default().insert(*id);
            }
            (Some(_), None) => panic!("{session}/{id} was answered 2xx but is not stored"),
            (None, Some(e)) => panic!("{session}/{id} is stored ({e}) but no request got 2xx"),
            (None, None) => {}
        }
        for r in rs {
            match (r.status, r.code()) {
                (409, "event_id_conflict") => {
                    let e = stored_event.unwrap_or_else(|| {
                        panic!("{session}/{id}: event_id_conflict, yet nothing is stored")
                    });
                    assert_ne!(
                        e["payload"], r.request["payload"],
                        "{session}/{id}: event_id_conflict for the stored content itself"
                    );
                }
                (409, "session_ended") => {
                    ended_rejections += 1;
                    assert!(
                        stored_event.is_none(),
                        "{session}/{id}: session_ended for an event that is stored"
                    );
                    let (_, first_sent, _) = ended.get(session).unwrap_or_else(|| {
                        panic!("{session}/{id}: session_ended, but nobody ended {session}")
                    });
                    assert!(
                        r.answered > *first_sent,
                        "{session}/{id}: session_ended answered before any complete was sent"
                    );
                }
                (404, _) => {
                    if let Some(created) = first_create_answer.get(session) {
                        assert!(
                            r.sent < *created,
                            "{session}/{id}: 404 for a request sent after {session} was created"
                        );
                    }
                }
                _ => {}
            }
            if let Some((_, _, first_ok)) = ended.get(session)
                && r.sent > *first_ok
                && r.status != 503
            {
                after_end += 1;
                assert_ne!(
                    r.status, 201,
                    "{session}/{id}: a new event was accepted after a complete had answered 200"
                );
                if stored_event.is_none() {
                    assert_eq!(
                        (r.status, r.code()),
                        (409, "session_ended"),
                        "{session}/{id}: a new event sent after the session ended"
                    );
                }
            }
        }
    }
    for (session, events) in &stored {
        let acked = acknowledged.get(session.as_str()).map_or(0, HashSet::len);
        assert_eq!(
            events.len(),
            acked,
            "{session}: eventCount must equal the distinct events acknowledged"
        );
    }

    // ---- reads by id during the run agree with the final store ----
    for r in records.iter().filter(|r| r.kind == Kind::GetEvent) {
        let id = r.event_id.as_deref().expect("id");
        if r.status == 200 {
            let e = stored[&r.session].get(id).unwrap_or_else(|| {
                panic!("{}/{id} was read during the run but is gone", r.session)
            });
            assert_eq!(r.reply["seq"], e["seq"], "{}/{id}", r.session);
        }
    }
    let total: usize = stored.values().map(HashMap::len).sum();
    println!(
        "  stored {total} distinct events over {} sessions; {} ended; {ended_rejections} \
         session_ended answers; {after_end} event requests sent after an end was answered",
        plan.sessions,
        ended.len()
    );
}

mod sqlite {
    use super::{Backend, Plan, run_with_store, stress};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_hundred_concurrent_clients_keep_every_invariant() {
        let plan = Plan {
            clients: 200,
            sessions: 8,
            ops_per_client: 16,
        };
        run_with_store(Backend::Sqlite, move |s| stress(s, plan)).await;
    }
}

mod mongo {
    use super::{Backend, Plan, run_with_store, stress};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hundred_and_twenty_concurrent_clients_keep_every_invariant() {
        let plan = Plan {
            clients: 120,
            sessions: 8,
            ops_per_client: 8,
        };
        run_with_store(Backend::Mongo, move |s| stress(s, plan)).await;
    }
}
