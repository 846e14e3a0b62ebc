//! Redaction seen from outside the process: with `REDACT` on and every log at `trace`, the
//! original card numbers, addresses and phone numbers sent in payloads appear nowhere in the
//! logs and nowhere in the SQLite files (database and WAL); `redactions_total` counts what was
//! replaced in stored events.

use serde_json::{Value, json};

use crate::support::{Backend, ServiceStore};
use crate::{EXIT_LIMIT, SHUTDOWN_TIMEOUT, client, post_json, sqlite_service};

/// What a caller says; none of it may be stored or logged.
const SECRETS: [&str; 4] = [
    "4111111111111111",
    "5555-5555-5555-4444",
    "pat.doe@example.com",
    "+1 415 555 0132",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_a_caller_said_of_the_redacted_kinds_reaches_the_logs_or_the_files() {
    let store = ServiceStore::new(Backend::Sqlite, "redact");
    let mut service = sqlite_service(&store, Some("trace"), SHUTDOWN_TIMEOUT)
        .env("REDACT", "card,email,phone,ssn")
        .env("LOG_FORMAT", "json")
        .start()
        .await;
    let http = client();
    let url = |path: &str| service.url(path);
    let said = |i: usize| json!({"text": format!("it is {} ok", SECRETS[i])});
    let (status, _) = post_json(
        &http,
        &url("/sessions"),
        &json!({"sessionId": "c", "language": "en"}),
    )
    .await
    .unwrap();
    assert_eq!(status, 201);
    let event = |id: &str, payload: Value| json!({"eventId": id, "type": "user_speech", "payload": payload});
    let events = url("/sessions/c/events");
    // Stored: one card, then a batch with a card, an address and a phone number.
    assert_eq!(
        post_json(&http, &events, &event("e1", said(0)))
            .await
            .unwrap()
            .0,
        201
    );
    let batch =
        json!({"events": [event("e2", said(1)), event("e3", said(2)), event("e4", said(3))]});
    let (status, body) = post_json(&http, &url("/sessions/c/events:batch"), &batch)
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    // Replayed (nothing new stored, nothing counted), refused and malformed ones too.
    assert_eq!(
        post_json(&http, &events, &event("e1", said(0)))
            .await
            .unwrap()
            .0,
        200
    );
    let invalid = json!({"eventId": "e5", "type": "shout", "payload": said(1)});
    assert_eq!(post_json(&http, &events, &invalid).await.unwrap().0, 400);
    let malformed = format!(
        "{{\"eventId\": \"e6\", \"payload\": {{\"text\": \"{}\"}}",
        SECRETS[2]
    );
    let r = http
        .post(&events)
        .header("content-type", "application/json")
        .body(malformed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let metrics = http
        .get(url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (kind, n) in [("card", 2), ("email", 1), ("phone", 1), ("ssn", 0)] {
        let line = format!("redactions_total{{kind=\"{kind}\"}} {n}");
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in:\n{metrics}"
        );
    }

    service.sigterm();
    service.wait_exit(EXIT_LIMIT).await;
    let mut logs = service.stdout_lines().join("\n");
    logs.push_str(&service.stderr_lines().join("\n"));
    assert!(
        logs.len() > 1_000,
        "trace logging was on: {} bytes",
        logs.len()
    );
    let path = store
        .database_url
        .trim_start_matches("sqlite://")
        .to_owned();
    let mut files = Vec::new();
    // The store, and the search index's file beside it (it holds the terms of what was said).
    for suffix in ["", "-wal", "-journal", ".search", ".search-wal"] {
        if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
            files.push((suffix, bytes));
        }
    }
    assert!(!files.is_empty(), "no database file at {path}");
    let stored =
        |bytes: &[u8], needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    for secret in SECRETS {
        assert!(!logs.contains(secret), "{secret:?} is in the logs");
        for (suffix, bytes) in &files {
            assert!(
                !stored(bytes, secret),
                "{secret:?} is in the database file{suffix}"
            );
        }
    }
    // The redacted forms are there (the check above looked at the right files).
    assert!(
        files.iter().any(|(_, b)| stored(b, "[REDACTED:card]")),
        "no redacted card stored"
    );
    store.cleanup().await;
}
