//! Batches and `kill -9`: writers send batches of 1 to 20 events to shared sessions, the service
//! is killed mid-ingest and restarted. Every acknowledged batch is all there with the seqs it
//! was acknowledged with; a batch in flight at the kill is all there (consecutive seqs) or not
//! at all, and its retry answers 200 or 201 accordingly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::ingest::{post_retrying, shared_sessions};
use super::verify::check_session;
use super::{KILL_POINT_LIMIT, SESSIONS, jitter, service, start};
use crate::client;
use crate::support::process::{ServiceCommand, ServiceProcess};
use crate::support::{Backend, ServiceStore};

/// Concurrent batch writers.
const WRITERS: usize = 8;
/// The most batches one writer sends (a bound; the kill normally comes first).
const MAX_BATCHES_PER_WRITER: usize = 1_000;
/// Acknowledged batches before the kill (then a random-ish delay more).
const KILL_AFTER_BATCHES: usize = 40;

/// A batch request: where it went, its eventIds in order, and its body.
#[derive(Debug, Clone)]
struct SentBatch {
    session: String,
    ids: Vec<String>,
    body: Value,
}

#[derive(Default)]
struct BatchLedger {
    /// Acknowledged batches, with the seqs their answer gave, in request order.
    acked: Vec<(SentBatch, Vec<u64>)>,
    /// Batches that got no answer (in flight at the kill).
    unanswered: Vec<SentBatch>,
    /// Answers no correct service gives while it is up.
    unexpected: Vec<String>,
    unavailable: Arc<AtomicUsize>,
}

fn batch_body(ids: &[String]) -> Value {
    let events: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(k, id)| {
            let kind = ["user_speech", "bot_speech", "system"][k % 3];
            json!({"eventId": id, "type": kind, "payload": {"id": id, "k": k}})
        })
        .collect();
    json!({ "events": events })
}

/// The seqs of a batch answer, checked against what was sent.
fn answered_seqs(sent: &SentBatch, reply: &Value) -> Result<Vec<u64>, String> {
    let events = reply["events"].as_array().ok_or("no events")?;
    let ids: Vec<&str> = events
        .iter()
        .filter_map(|e| e["eventId"].as_str())
        .collect();
    if ids != sent.ids.iter().map(String::as_str).collect::<Vec<_>>() {
        return Err(format!("the answer names other events: {reply}"));
    }
    Ok(events.iter().filter_map(|e| e["seq"].as_u64()).collect())
}

fn consecutive(seqs: &[u64]) -> bool {
    seqs.windows(2).all(|w| w[1] == w[0] + 1)
}

async fn writer(
    client: reqwest::Client,
    base: String,
    w: usize,
    ledger: Arc<Mutex<BatchLedger>>,
    acked: Arc<AtomicUsize>,
) {
    let unavailable = lock_ledger(&ledger).unavailable.clone();
    let sessions = shared_sessions();
    for i in 0..MAX_BATCHES_PER_WRITER {
        let size = 1 + (w * 7 + i * 13) % 20;
        let ids: Vec<String> = (0..size).map(|k| format!("w{w}-b{i}-{k}")).collect();
        let sent = SentBatch {
            session: sessions[(w + i) % SESSIONS].clone(),
            body: batch_body(&ids),
            ids,
        };
        let url = format!("{base}/sessions/{}/events:batch", sent.session);
        match post_retrying(&client, &url, &sent.body, &unavailable).await {
            Ok((201, reply)) => {
                let mut l = lock_ledger(&ledger);
                match answered_seqs(&sent, &reply) {
                    Ok(seqs) if consecutive(&seqs) => {
                        l.acked.push((sent, seqs));
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(seqs) => l.unexpected.push(format!("seqs not consecutive: {seqs:?}")),
                    Err(e) => l.unexpected.push(e),
                }
            }
            Ok((status, reply)) => lock_ledger(&ledger)
                .unexpected
                .push(format!("batch {i} of writer {w}: {status} {reply}")),
            Err(_) => {
                lock_ledger(&ledger).unanswered.push(sent);
                return;
            }
        }
    }
}

fn lock_ledger(ledger: &Mutex<BatchLedger>) -> std::sync::MutexGuard<'_, BatchLedger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}

async fn ingest_batches_and_kill(service: ServiceProcess, ledger: &Arc<Mutex<BatchLedger>>) {
    let acked = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            tokio::spawn(writer(
                client(),
                service.base(),
                w,
                ledger.clone(),
                acked.clone(),
            ))
        })
        .collect();
    let started = Instant::now();
    while acked.load(Ordering::SeqCst) < KILL_AFTER_BATCHES {
        assert!(
            started.elapsed() < KILL_POINT_LIMIT && !writers.iter().all(|w| w.is_finished()),
            "only {} batches acknowledged; unexpected answers: {:?}; service output:\n{}",
            acked.load(Ordering::SeqCst),
            lock_ledger(ledger).unexpected,
            service.output()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(jitter(200))).await;
    service.kill();
    for w in writers {
        w.await.expect("writer task panicked");
    }
}

async fn batch_crash_scenario(command: ServiceCommand, backend: Backend) {
    let running = start(&command).await;
    let client = client();
    for session in shared_sessions() {
        let body = json!({"sessionId": session, "language": "en-US"});
        let (status, reply) = crate::post_json(&client, &running.url("/sessions"), &body)
            .await
            .expect("create a shared session");
        assert_eq!(status, 201, "create {session}: {reply}");
    }
    let ledger = Arc::new(Mutex::new(BatchLedger::default()));
    ingest_batches_and_kill(running, &ledger).await;
    let running = start(&command).await;
    let mut l = std::mem::take(&mut *lock_ledger(&ledger));
    assert!(
        l.unexpected.is_empty(),
        "unexpected answers: {:#?}",
        l.unexpected
    );

    let mut stored: HashMap<String, HashMap<String, u64>> = HashMap::new();
    for session in shared_sessions() {
        let events = check_session(&client, &running, &session).await;
        let seqs = events.into_iter().map(|(id, e)| (id, e.seq)).collect();
        stored.insert(session, seqs);
    }
    for (sent, seqs) in &l.acked {
        let got: Vec<Option<u64>> = sent
            .ids
            .iter()
            .map(|id| stored[&sent.session].get(id).copied())
            .collect();
        let want: Vec<Option<u64>> = seqs.iter().copied().map(Some).collect();
        assert_eq!(
            got, want,
            "an acknowledged batch in {} after the kill",
            sent.session
        );
    }
    let in_flight = std::mem::take(&mut l.unanswered);
    let (mut whole, mut absent) = (0, 0);
    for sent in &in_flight {
        let events = &stored[&sent.session];
        let seqs: Vec<u64> = sent
            .ids
            .iter()
            .filter_map(|id| events.get(id).copied())
            .collect();
        let retry_status = if seqs.is_empty() {
            absent += 1;
            201
        } else {
            assert_eq!(
                seqs.len(),
                sent.ids.len(),
                "a batch in flight at the kill is stored in part: {seqs:?} of {:?}",
                sent.ids
            );
            assert!(consecutive(&seqs), "a stored batch's seqs: {seqs:?}");
            whole += 1;
            200
        };
        let url = running.url(&format!("/sessions/{}/events:batch", sent.session));
        let (status, reply) = post_retrying(&client, &url, &sent.body, &l.unavailable)
            .await
            .unwrap_or_else(|e| panic!("retry of a batch after the restart: {e}"));
        assert_eq!(status, retry_status, "the retry of {:?}: {reply}", sent.ids);
        let answered = answered_seqs(sent, &reply).unwrap_or_else(|e| panic!("{e}"));
        assert!(consecutive(&answered), "the retry's seqs: {answered:?}");
        if !seqs.is_empty() {
            assert_eq!(answered, seqs, "the retry answers the stored seqs");
        }
    }
    for session in shared_sessions() {
        check_session(&client, &running, &session).await;
    }
    let events: usize = l.acked.iter().map(|(s, _)| s.ids.len()).sum();
    println!(
        "[{backend:?}] {} acknowledged batches ({events} events) intact after kill -9; of {} in \
         flight, {whole} were stored whole and {absent} not at all",
        l.acked.len(),
        in_flight.len()
    );
}

/// Runs the scenario on a fresh store of `backend`, removes the store, then passes on a panic.
async fn run(backend: Backend) {
    let store = ServiceStore::new(backend, "crashbatch");
    let command = service(&store, "full");
    let outcome = tokio::spawn(batch_crash_scenario(command, backend)).await;
    store.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

mod every_batch_is_whole_or_absent_after_a_kill_during_batch_ingest {
    use super::{Backend, run};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        run(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mongo() {
        run(Backend::Mongo).await;
    }
}
