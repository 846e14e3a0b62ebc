//! After a restart: everything the ledger knows, checked against the store by cursor walks and
//! reads by id, and every unanswered request retried.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::ingest::{Ledger, Sent, post_retrying, shared_sessions};
use crate::client;
use crate::support::process::ServiceProcess;
use crate::support::walk::CursorWalk;

/// GETs `path` from a service that must answer.
async fn get(client: &reqwest::Client, service: &ServiceProcess, path: &str) -> (u16, Value) {
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

/// One event as a cursor walk returned it.
#[derive(Debug, Clone)]
pub struct Walked {
    pub event_id: String,
    pub seq: u64,
    pub payload: Value,
    pub event_type: Value,
}

/// Follows `nextCursor` through the whole session in `order`; checks each page's pagination.
async fn walk(
    client: &reqwest::Client,
    service: &ServiceProcess,
    session: &str,
    order: &str,
    limit: u32,
) -> (Value, Vec<Walked>) {
    let mut walker = CursorWalk::new(session, order, limit);
    while let Some(query) = walker.next_query() {
        let (status, body) = get(client, service, &format!("/sessions/{session}{query}")).await;
        assert_eq!(status, 200, "GET /sessions/{session}{query}: {body}");
        walker.page(body);
    }
    let walk = walker.finish();
    let events = walk
        .events
        .iter()
        .map(|e| Walked {
            event_id: e["eventId"].as_str().expect("eventId").to_owned(),
            seq: e["seq"].as_u64().expect("seq"),
            payload: e["payload"].clone(),
            event_type: e["type"].clone(),
        })
        .collect();
    (walk.first, events)
}

/// Walks `session` ascending (and descending) and checks that it is whole: seqs exactly
/// 1..=eventCount in order, no eventId twice, status matching the count. Returns the events by
/// eventId.
pub async fn check_session(
    client: &reqwest::Client,
    service: &ServiceProcess,
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
pub async fn verify_after_restart(service: &ServiceProcess, label: &str, l: &mut Ledger) -> usize {
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
    check_feed(&client, service, &stored, &l.sessions_acked).await;
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

/// The change feed after the restart (the whole of it, as NDJSON): every stored event of the
/// shared sessions has exactly one `event.appended` change, with its seq, in seq order per
/// session, and every acknowledged session exactly one `session.created`.
async fn check_feed(
    client: &reqwest::Client,
    service: &ServiceProcess,
    stored: &BTreeMap<String, HashMap<String, Walked>>,
    sessions: &std::collections::HashSet<String>,
) {
    let response = client
        .get(service.url("/changes"))
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET /changes after the restart: {e}"));
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("the feed's body");
    let mut appended: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    let mut created: HashMap<String, usize> = HashMap::new();
    for line in text.lines() {
        let change: Value = serde_json::from_str(line).expect("a change per line");
        let session = change["sessionId"].as_str().expect("sessionId").to_owned();
        match change["type"].as_str() {
            Some("event.appended") => appended.entry(session).or_default().push((
                change["data"]["seq"].as_u64().expect("seq"),
                change["data"]["eventId"]
                    .as_str()
                    .expect("eventId")
                    .to_owned(),
            )),
            Some("session.created") => *created.entry(session).or_default() += 1,
            _ => {}
        }
    }
    for (session, events) in stored {
        let mut want: Vec<(u64, String)> = events
            .values()
            .map(|e| (e.seq, e.event_id.clone()))
            .collect();
        want.sort();
        let got = appended.get(session).cloned().unwrap_or_default();
        assert_eq!(
            got, want,
            "{session}: the feed's event.appended changes, in order, once each"
        );
    }
    for session in sessions.iter().chain(shared_sessions().iter()) {
        assert_eq!(
            created.get(session),
            Some(&1),
            "{session}: one session.created in the feed"
        );
    }
}
