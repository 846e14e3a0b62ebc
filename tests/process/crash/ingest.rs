//! The writers: what they send during ingest, and what they saw (the ledger).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{
    KILL_POINT_LIMIT, KillAt, MAX_OPS_PER_WRITER, SESSIONS, UNAVAILABLE_LIMIT, WRITERS, jitter,
};
use crate::client;
use crate::support::process::ServiceProcess;

/// POSTs `body`, and sends the same request again while the service answers 503 (at most
/// [`UNAVAILABLE_LIMIT`]); counts the 503s in `unavailable`. `Err` when no complete response came
/// back (the request may or may not have been applied).
pub async fn post_retrying(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    unavailable: &AtomicUsize,
) -> Result<(u16, Value), String> {
    let started = Instant::now();
    loop {
        match crate::post_json(client, url, body)
            .await
            .map_err(|e| e.to_string())?
        {
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

// ---------------------------------------------------------------------------------------------
// what the clients saw

/// An event request: where it went and what it said.
#[derive(Debug, Clone)]
pub struct Sent {
    pub session: String,
    pub body: Value,
}

/// What the clients know across runs.
#[derive(Default)]
pub struct Ledger {
    /// eventId → the request and the seq the service acknowledged (2xx) for it.
    pub acked: HashMap<String, (Sent, u64)>,
    /// eventId → a request that got no response (in flight at the kill, or refused after it).
    pub unanswered: HashMap<String, Sent>,
    /// Sessions whose creation was acknowledged.
    pub sessions_acked: HashSet<String>,
    /// Sessions whose create request got no response.
    pub sessions_unanswered: HashSet<String>,
    /// Identical retries answered 200 with the first answer's seq.
    pub retries_confirmed: usize,
    /// Answers no correct service gives while it is up.
    pub unexpected: Vec<String>,
    /// 503 answers seen (each followed by the same request again).
    pub unavailable: Arc<AtomicUsize>,
}

impl Ledger {
    pub fn record_ack(&mut self, event_id: &str, sent: &Sent, status: u16, body: &Value) {
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

pub fn lock(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn shared_sessions() -> Vec<String> {
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
pub async fn ingest_and_kill(
    service: ServiceProcess,
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
                service.base(),
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
