//! The embedded store indexes transcripts after the write, in the background: with no search
//! asking for it, every searchable event is taken in (`search_indexed_events_total`), each once,
//! also after a restart.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Backend, ServiceStore};
use crate::{EXIT_LIMIT, SHUTDOWN_TIMEOUT, client, post_json, sqlite_service};

/// `search_indexed_events_total` as the service reports it (0 before its first pass).
async fn indexed(http: &reqwest::Client, url: &str) -> u64 {
    let text = http.get(url).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("search_indexed_events_total "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

async fn found(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// Polls until the service reports `want` events indexed; a generous deadline, not a timing
/// claim (the service looks every 250 ms).
async fn wait_indexed(http: &reqwest::Client, url: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = indexed(http, url).await;
        assert!(got <= want, "{got} indexed, more than the {want} stored");
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{got} of {want} indexed in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_indexed_in_the_background_each_once_and_after_a_restart() {
    let store = ServiceStore::new(Backend::Sqlite, "search-index");
    let http = client();
    let event = |id: &str, kind: &str, text: &str| json!({"eventId": id, "type": kind, "payload": {"text": text}});
    let mut service = sqlite_service(&store, None, SHUTDOWN_TIMEOUT).start().await;
    let (status, _) = post_json(
        &http,
        &service.url("/sessions"),
        &json!({"sessionId": "c", "language": "en"}),
    )
    .await
    .unwrap();
    assert_eq!(status, 201);
    let events = service.url("/sessions/c/events");
    for (i, kind) in ["user_speech", "bot_speech", "system", "user_speech"]
        .iter()
        .enumerate()
    {
        let (status, _) = post_json(&http, &events, &event(&format!("e{i}"), kind, "refund"))
            .await
            .unwrap();
        assert_eq!(status, 201);
    }
    // A replay stores nothing and indexes nothing.
    assert_eq!(
        post_json(&http, &events, &event("e0", "user_speech", "refund"))
            .await
            .unwrap()
            .0,
        200
    );
    let batch = json!({"events": [event("b1", "user_speech", "refund"), event("b2", "bot_speech", "refund")]});
    let (status, body) = post_json(&http, &service.url("/sessions/c/events:batch"), &batch)
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    wait_indexed(&http, &service.url("/metrics"), 5).await;
    let search = found(&http, &service.url("/search?q=refund&limit=100")).await;
    assert_eq!(search["hits"].as_array().unwrap().len(), 5, "{search}");
    service.sigterm();
    service.wait_exit(EXIT_LIMIT).await;
    // A clean stop folds both WALs back: the last connection to each file to close is one that
    // may write, so no -wal or -shm is left beside the store or its index.
    let path = store.database_url.strip_prefix("sqlite://").unwrap();
    for file in [path.to_owned(), format!("{path}.search")] {
        for suffix in ["-wal", "-shm"] {
            let left = format!("{file}{suffix}");
            assert!(
                !std::path::Path::new(&left).exists(),
                "{left} is left after a clean stop"
            );
        }
    }

    // After a restart the new events are taken in, each once, and the earlier ones not again.
    let service = sqlite_service(&store, None, SHUTDOWN_TIMEOUT).start().await;
    for i in 5..8 {
        let url = service.url("/sessions/c/events");
        let (status, _) = post_json(
            &http,
            &url,
            &event(&format!("e{i}"), "user_speech", "refund"),
        )
        .await
        .unwrap();
        assert_eq!(status, 201);
    }
    wait_indexed(&http, &service.url("/metrics"), 3).await;
    let found = found(&http, &service.url("/search?q=refund&limit=100")).await;
    let hits = found["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 8, "{found}");
    assert_eq!(
        indexed(&http, &service.url("/metrics")).await,
        3,
        "the search found them indexed"
    );
}
