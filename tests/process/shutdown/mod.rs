//! Graceful shutdown of the real binary: SIGTERM under load drains in-flight requests, keeps
//! every acknowledged write and exits 0; a client that never reads cannot hold the exit past the
//! shutdown timeout.
//!
//! SQLite only: the store's own durability is covered by the storage and crash tests.

mod load;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::process::{ServiceProcess, has_message, json_lines};
use crate::support::raw_http::RawConnection;
use crate::support::walk::CursorWalk;
use crate::support::{Backend, ServiceStore};
use crate::{EXIT_LIMIT, SHUTDOWN_TIMEOUT, client, sqlite_service};
use load::{Ended, Failure, Shared, SlowRequest, client_loop};

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

/// Every event of `session` in page order, as (eventId, seq), following `after` cursors.
async fn walk_session(
    client: &reqwest::Client,
    service: &ServiceProcess,
    session: &str,
) -> (u64, Vec<(String, u64)>) {
    let mut walker = CursorWalk::new(session, "asc", 100).stable();
    while let Some(query) = walker.next_query() {
        let url = service.url(&format!("/sessions/{session}{query}"));
        let response = client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url} got no answer: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.expect("read the page");
        assert_eq!(status, 200, "GET {url}: {text}");
        walker.page(serde_json::from_str(&text).expect("page is JSON"));
    }
    let walk = walker.finish();
    let count = walk.first["eventCount"].as_u64().expect("eventCount");
    (count, walk.event_ids.into_iter().zip(walk.seqs).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_in_flight_requests_keeps_every_acknowledged_write_and_exits_0()
{
    let store = ServiceStore::new(Backend::Sqlite, "shutdown");
    let mut service = sqlite_service(&store, Some("session_service=info"), SHUTDOWN_TIMEOUT)
        .start()
        .await;
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
    let slow = SlowRequest::begin(service.addr(), session).await;
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
            "in-flight requests did not finish in time; they end with the process"
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
    let mut restarted = sqlite_service(&store, Some("session_service=info"), SHUTDOWN_TIMEOUT)
        .start()
        .await;
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
    restarted.stop(EXIT_LIMIT).await;

    eprintln!(
        "shutdown under load: {} requests, {} acknowledged writes verified after restart \
         (incl. the slow in-flight one, seq {slow_seq}), {stored_unacked} stored without an \
         acknowledgement, {answered_after_sigterm} requests started after SIGTERM still answered, \
         failures: {failures:?}",
        attempts.len() + 1,
        acked.len(),
    );
}

/// A client that asks for a large page and never reads it would hold its connection (and the
/// drain) for ever: on shutdown, once its socket has refused the answer for the grace, the
/// connection is dropped, and the process exits without waiting for its drain limit.
#[tokio::test]
async fn a_client_that_never_reads_its_response_does_not_hold_shutdown() {
    let store = ServiceStore::new(Backend::Sqlite, "shutdown");
    let mut service = sqlite_service(&store, None, Duration::from_secs(60))
        .start()
        .await;
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
    let mut stalled = RawConnection::connect(service.addr()).await;
    stalled
        .send(b"GET /sessions/big?limit=100 HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    service.sigterm();
    crate::assert_exits_without_waiting_for_the_drain(&mut service).await;
    drop(stalled);

    // Everything acknowledged is there after a restart.
    assert_eq!(event_count_after_restart(&store, "big").await, 16);
}

/// A request still in flight when the drain reaches its limit (its body half sent, within the
/// request timeout) ends with the process, which exits 0 and says so; nothing of it was stored.
#[tokio::test]
async fn a_request_still_in_flight_at_the_drain_limit_ends_with_the_process() {
    let store = ServiceStore::new(Backend::Sqlite, "shutdown");
    let mut service = sqlite_service(&store, None, Duration::from_millis(500))
        .start()
        .await;
    let client = client();
    let created = client
        .post(service.url("/sessions"))
        .json(&serde_json::json!({"sessionId": "half", "language": "en"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let body = r#"{"eventId": "e1", "type": "system", "payload": {}}"#;
    let mut half = RawConnection::connect(service.addr()).await;
    half.send(
        crate::support::raw_http::post_head("/sessions/half/events", body.len(), "").as_bytes(),
    )
    .await;
    half.send(&body.as_bytes()[..10]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    service.sigterm();
    let status = service.wait_exit(EXIT_LIMIT).await;
    assert_eq!(status.code(), Some(0), "{}", service.output());
    assert!(
        has_message(
            &service.json_logs(),
            "in-flight requests did not finish in time; they end with the process"
        ),
        "{}",
        service.output()
    );
    drop(half);

    assert_eq!(event_count_after_restart(&store, "half").await, 0);
}

/// The `eventCount` of `session` as a new process on `store` reads it: what survived.
async fn event_count_after_restart(store: &ServiceStore, session: &str) -> u64 {
    let mut again = sqlite_service(store, None, SHUTDOWN_TIMEOUT).start().await;
    let body: serde_json::Value = client()
        .get(again.url(&format!("/sessions/{session}?limit=1")))
        .send()
        .await
        .expect("read")
        .json()
        .await
        .expect("json");
    again.stop(EXIT_LIMIT).await;
    body["eventCount"].as_u64().expect("an eventCount")
}

/// Connections that have asked for nothing yet do not hold shutdown until their header timeout:
/// a silent one, one with half of HTTP/2's preface, one with half a request head.
#[tokio::test]
async fn connections_without_a_whole_request_head_are_closed_on_shutdown() {
    let store = ServiceStore::new(Backend::Sqlite, "shutdown");
    let mut service = sqlite_service(&store, None, Duration::from_secs(60))
        .env("HEADER_READ_TIMEOUT_MS", "60000")
        .start()
        .await;
    let silent = RawConnection::connect(service.addr()).await;
    let mut preface = RawConnection::connect(service.addr()).await;
    preface.send(b"PRI * HTTP/2.0\r\n").await;
    let mut head = RawConnection::connect(service.addr()).await;
    head.send(b"GET /health HTTP/1.1\r\nhost: x\r\n").await;
    // A kept-alive connection whose next head has begun.
    let mut next = RawConnection::connect(service.addr()).await;
    next.send(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await;
    next.read_until(
        EXIT_LIMIT,
        "first answer",
        crate::support::raw_http::complete_response,
    )
    .await;
    next.send(b"GET /heal").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    service.sigterm();
    crate::assert_exits_without_waiting_for_the_drain(&mut service).await;
    drop((silent, preface, head, next));
    store.cleanup().await;
}
