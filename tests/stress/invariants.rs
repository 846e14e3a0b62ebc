//! What the record of every request and the store must agree on once a stress run is over.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::{Kind, Plan, Record, session_name};
use crate::support::StoreCtx;
use crate::support::walk::CursorWalk;

/// A whole ascending walk of `session` once the writes are over, checked against the count.
async fn final_walk(http: &reqwest::Client, base: &str, session: &str) -> (Value, Vec<Value>) {
    let mut walker = CursorWalk::new(session, "asc", 100);
    while let Some(query) = walker.next_query() {
        let url = format!("{base}/sessions/{session}{query}");
        let r = http.get(&url).send().await.expect("final walk");
        assert_eq!(r.status(), 200, "{url}");
        walker.page(r.json().await.expect("final walk body"));
    }
    let walk = walker.finish();
    (walk.first, walk.events)
}

/// Checks every invariant of the API against `records` and the store behind `base`.
pub async fn check(
    store: &StoreCtx,
    plan: Plan,
    records: &[Record],
    elapsed: Duration,
    http: &reqwest::Client,
    base: &str,
) {
    // ---- what was sent, and nothing the API does not promise ----
    let mut tally: BTreeMap<(Kind, u16, String), usize> = BTreeMap::new();
    for r in records {
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
        let (first, events) = final_walk(http, base, &session).await;
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
