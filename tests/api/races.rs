//! Real concurrent HTTP requests against one session: retries, appends, completes and reads that
//! race each other must still leave exactly one consistent history.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;

use serde_json::{Value, json};

use crate::support::StoreCtx;
use crate::support::app::{Reply, TestApp, assert_one_201_and_the_rest_200, spawn_app};

/// Runs one request per item, each in its own task, all at once; replies come back in item order.
async fn in_parallel<T, F, Fut>(app: &TestApp, items: Vec<T>, request: F) -> Vec<Reply>
where
    T: Send + 'static,
    F: Fn(TestApp, T) -> Fut,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let tasks: Vec<_> = items
        .into_iter()
        .map(|item| tokio::spawn(request(app.handle(), item)))
        .collect();
    futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("request task"))
        .collect()
}

fn speech(event_id: &str) -> Value {
    json!({"eventId": event_id, "type": "user_speech", "payload": {"text": event_id}})
}

backend_test! { async fn concurrent_identical_events_store_one_event_and_answer_one_201(app: TestApp) {
    app.create_session("call-1").await;

    let replies = in_parallel(&app, vec![(); 40], |app, ()| async move {
        app.post_event("call-1", &speech("e-1")).await
    })
    .await;

    assert_one_201_and_the_rest_200(&replies);
    let bodies: HashSet<String> = replies.iter().map(|r| r.body.to_string()).collect();
    assert_eq!(
        bodies.len(),
        1,
        "every caller sees the same event: {bodies:?}"
    );
    assert_eq!(replies[0].body["seq"], 1);
    let session = app.read_session("call-1", "").await;
    assert_eq!(session["eventCount"], 1);
    assert_eq!(session["status"], "active");
    assert_eq!(session["events"].as_array().unwrap().len(), 1);
}}

/// Sends `n` distinct events to one session at once; all must be stored with seqs exactly `1..=n`,
/// and the pages must list them in that order.
async fn concurrent_distinct_events_get_every_seq_once(s: StoreCtx, n: u64) {
    let app = spawn_app(s).await;
    app.create_session("call-1").await;

    let replies = in_parallel(&app, (1..=n).collect(), |app, i| async move {
        app.post_event("call-1", &speech(&format!("e-{i}"))).await
    })
    .await;

    for r in &replies {
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let seqs: BTreeSet<u64> = replies
        .iter()
        .map(|r| r.body["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=n).collect::<BTreeSet<_>>());
    assert_eq!(app.event_count("call-1").await, n);
    // The pages list the events in seq order, each with the seq its 201 reported.
    let reported: HashMap<String, u64> = replies
        .iter()
        .map(|r| {
            (
                r.body["eventId"].as_str().unwrap().to_owned(),
                r.body["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    let walk = app.walk("call-1", "asc", 7).await;
    assert_eq!(walk.seqs, (1..=n).collect::<Vec<_>>());
    for (id, seq) in walk.event_ids.iter().zip(&walk.seqs) {
        assert_eq!(reported[id], *seq, "{id}");
    }
    let last_page = app
        .read_session("call-1", &format!("?limit=10&page={}", n.div_ceil(10)))
        .await;
    let last_seqs: Vec<u64> = last_page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(last_seqs, ((n - 1) / 10 * 10 + 1..=n).collect::<Vec<_>>());
}

backend_test! { async fn concurrent_distinct_events_get_every_seq_from_1_to_100_once(s: StoreCtx) {
    concurrent_distinct_events_get_every_seq_once(s, 100).await;
}}

backend_test! { async fn concurrent_completes_all_answer_200_with_one_ended_at(app: TestApp) {
    app.create_session("call-1").await;
    app.add_event("call-1", "e-1").await;

    let replies = in_parallel(&app, vec![(); 20], |app, ()| async move {
        app.complete("call-1", None).await
    })
    .await;

    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["status"], "completed");
    }
    let ended: HashSet<String> = replies
        .iter()
        .map(|r| r.body["endedAt"].to_string())
        .collect();
    assert_eq!(ended.len(), 1, "one endedAt: {ended:?}");
    let session = app.read_session("call-1", "").await;
    assert_eq!(session["endedAt"], replies[0].body["endedAt"]);
    assert_eq!(session["eventCount"], 1);
}}

backend_test! { async fn concurrent_completes_with_different_statuses_agree_on_one_outcome(app: TestApp) {
    app.create_session("call-1").await;
    let statuses: Vec<&'static str> = (0..20)
        .map(|i| if i % 2 == 0 { "completed" } else { "failed" })
        .collect();

    let replies = in_parallel(&app, statuses.clone(), |app, status| async move {
        app.complete("call-1", Some(&json!({"status": status})))
            .await
    })
    .await;

    let winners: Vec<_> = replies.iter().filter(|r| r.status == 200).collect();
    assert!(!winners.is_empty(), "someone ended the session");
    let status = winners[0].body["status"].as_str().unwrap().to_owned();
    let ended_at = winners[0].body["endedAt"].clone();
    for (asked, r) in statuses.iter().zip(&replies) {
        if *asked == status {
            assert_eq!(r.status, 200, "asked for the stored status: {}", r.text);
            assert_eq!(r.body["status"], status.as_str());
            assert_eq!(r.body["endedAt"], ended_at);
        } else {
            r.assert_problem(409, "session_already_ended");
        }
    }
    let session = app.read_session("call-1", "").await;
    assert_eq!(session["status"], status.as_str());
    assert_eq!(session["endedAt"], ended_at);
}}

backend_test! { async fn events_racing_a_complete_are_either_stored_or_refused_as_session_ended(app: TestApp) {
    app.create_session("call-1").await;
    // 50 event ids and one complete (`None`) in the middle, all sent at once.
    let mut requests: Vec<Option<String>> = (1..=50).map(|i| Some(format!("e-{i}"))).collect();
    requests.insert(25, None);

    let replies = in_parallel(&app, requests.clone(), |app, request| async move {
        match request {
            Some(event_id) => app.post_event("call-1", &speech(&event_id)).await,
            None => app.complete("call-1", None).await,
        }
    })
    .await;

    let mut stored = Vec::new();
    for (request, r) in requests.iter().zip(&replies) {
        match request {
            None => {
                assert_eq!(r.status, 200, "{}", r.text);
                assert_eq!(r.body["status"], "completed");
            }
            Some(event_id) if r.status == 201 => {
                let read = app
                    .get(&format!("/sessions/call-1/events/{event_id}"))
                    .await;
                assert_eq!(read.status, 200, "{}", read.text);
                assert_eq!(read.body, r.body);
                stored.push(event_id.clone());
            }
            Some(event_id) => {
                r.assert_problem(409, "session_ended");
                app.get(&format!("/sessions/call-1/events/{event_id}"))
                    .await
                    .assert_problem(404, "event_not_found");
            }
        }
    }
    let session = app.read_session("call-1", "").await;
    assert_eq!(session["status"], "completed");
    assert_eq!(session["eventCount"], stored.len() as u64);
    let walk = app.walk("call-1", "asc", 7).await;
    assert_eq!(walk.seqs, (1..=stored.len() as u64).collect::<Vec<_>>());
    let walked: BTreeSet<_> = walk.event_ids.into_iter().collect();
    assert_eq!(walked, stored.into_iter().collect::<BTreeSet<_>>());
}}

/// The event id the walk test stores at `seq`: `p-1`…`p-10` first, then the writer's `w-1`….
fn expected_id(seq: u64) -> String {
    if seq <= 10 {
        format!("p-{seq}")
    } else {
        format!("w-{}", seq - 10)
    }
}

backend_test! { async fn walking_cursors_while_events_are_added_visits_each_event_once_in_order(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "p-", 10).await;
    let writer_app = app.handle();
    let writer = tokio::spawn(async move { writer_app.add_events("call-1", "w-", 60).await });

    loop {
        let writer_done = writer.is_finished();
        let asc = app.walk("call-1", "asc", 4).await;
        assert!(
            asc.seqs.len() as u64 >= asc.first_total,
            "the walk saw at least what existed when it began"
        );
        assert_eq!(
            asc.seqs,
            (1..=asc.seqs.len() as u64).collect::<Vec<_>>(),
            "strictly increasing, none repeated, none skipped"
        );
        let desc = app.walk("call-1", "desc", 4).await;
        assert_eq!(
            desc.seqs,
            (1..=desc.first_total).rev().collect::<Vec<_>>(),
            "from the newest at the start down to 1, each once"
        );
        for walk in [&asc, &desc] {
            for (seq, id) in walk.seqs.iter().zip(&walk.event_ids) {
                assert_eq!(*id, expected_id(*seq));
            }
        }
        if writer_done {
            break;
        }
    }
    writer.await.expect("writer task");

    let asc = app.walk("call-1", "asc", 7).await;
    let desc = app.walk("call-1", "desc", 7).await;
    assert_eq!(asc.seqs, (1..=70).collect::<Vec<_>>());
    assert_eq!(desc.seqs, (1..=70).rev().collect::<Vec<_>>());
    assert_eq!(asc.first_total, 70);
}}
