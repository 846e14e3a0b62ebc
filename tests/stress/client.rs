//! One stress client: a fixed, seeded list of operations, every request and answer recorded.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::walk::CursorWalk;

/// How often a write answered 503 is sent again before the test gives up on it.
const WRITE_ATTEMPTS: usize = 30;

/// The size of one stress run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub clients: usize,
    pub sessions: usize,
    pub ops_per_client: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Create,
    Event,
    Complete,
    Walk,
    GetEvent,
}

/// One request and its answer.
#[derive(Debug, Clone)]
pub struct Record {
    pub kind: Kind,
    pub client: usize,
    pub session: String,
    pub event_id: Option<String>,
    pub request: Value,
    pub sent: Instant,
    pub answered: Instant,
    pub status: u16,
    pub reply: Value,
}

impl Record {
    pub fn code(&self) -> &str {
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

pub fn session_name(j: usize) -> String {
    format!("shared-{j}")
}

/// Odd sessions get ended half way; of those, every other one sees both terminal statuses.
pub fn is_ending(j: usize) -> bool {
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
    /// Sends one request and records it with its answer. A write answered 503 ("retry with the
    /// same request") is sent again, as a client would; every attempt is recorded.
    async fn send(
        &mut self,
        kind: Kind,
        session: &str,
        event_id: Option<String>,
        path: &str,
        request: Option<Value>,
    ) -> Record {
        let url = format!("{}{path}", self.base);
        for _ in 0..WRITE_ATTEMPTS {
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
                event_id: event_id.clone(),
                request: request.clone().unwrap_or(Value::Null),
                sent,
                answered: Instant::now(),
                status,
                reply: serde_json::from_str(&text).unwrap_or(Value::Null),
            };
            self.records.push(record.clone());
            let retry =
                status == 503 && matches!(kind, Kind::Create | Kind::Event | Kind::Complete);
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
        let mut walker = CursorWalk::new(session, order, limit);
        while let Some(query) = walker.next_query() {
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
            walker.page(r.reply);
        }
        let walk = walker.finish();
        let (seqs, first_total) = (walk.seqs, walk.first_total);
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
    }
}

/// One client's fixed list of operations.
pub async fn run_client(id: usize, http: reqwest::Client, base: String, plan: Plan) -> Vec<Record> {
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
