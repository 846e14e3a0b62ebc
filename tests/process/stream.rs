//! The live-transcript stream in the real binary: SIGTERM ends open streams (also one whose
//! consumer stopped reading) so the process exits without waiting for its drain limit; a
//! consumer that stops reading does not make the service's memory grow with what it has not
//! read, and gets everything once it reads on; two processes on one SQLite file (the poller);
//! and the stream metrics, exactly, in a process of their own.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::process::{ServiceCommand, ServiceProcess};
use crate::support::sse::{self, SseRequest, SseStream, names_of, seqs_of};
use crate::support::walk::CursorWalk;
use crate::support::{Backend, ServiceStore};
use crate::{EXIT_LIMIT, assert_exits_without_waiting_for_the_drain, client, post_json};

/// How long one wait in these tests may take: a hang detector, never a timing assertion.
const LIMIT: Duration = Duration::from_secs(20);

/// Runs `scenario` with a fresh store of `backend` for the binary, and removes the store
/// afterwards, also when the scenario panics (its services are killed as they are dropped).
async fn with_store<F, Fut>(backend: Backend, prefix: &str, scenario: F)
where
    F: FnOnce(Arc<ServiceStore>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let store = Arc::new(ServiceStore::new(backend, prefix));
    let outcome = tokio::spawn(scenario(store.clone())).await;
    if let Ok(store) = Arc::try_unwrap(store) {
        store.cleanup().await;
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Starts the service on `store` with `vars` and waits for `/ready`.
async fn start(store: &ServiceStore, vars: &[(&str, &str)]) -> ServiceProcess {
    let mut command = ServiceCommand::new()
        .store(store)
        .env("RUST_LOG", "session_service=info");
    for (name, value) in vars {
        command = command.env(name, *value);
    }
    let service = command.start().await;
    service.wait_ready().await;
    service
}

/// Creates `session` through `service`.
async fn create(http: &reqwest::Client, service: &ServiceProcess, session: &str) {
    let body = json!({"sessionId": session, "language": "en-US"});
    let (status, reply) = post_json(http, &service.url("/sessions"), &body)
        .await
        .expect("create the session");
    assert_eq!(status, 201, "{reply}");
}

/// Appends `event_id` (with `payload`) to `session` through `service`; its seq.
async fn append(
    http: &reqwest::Client,
    service: &ServiceProcess,
    session: &str,
    event_id: &str,
    payload: Value,
) -> u64 {
    let url = service.url(&format!("/sessions/{session}/events"));
    let body = json!({"eventId": event_id, "type": "user_speech", "payload": payload});
    let (status, reply) = post_json(http, &url, &body)
        .await
        .unwrap_or_else(|e| panic!("append {event_id}: {e}"));
    assert_eq!(status, 201, "{event_id}: {reply}");
    reply["seq"].as_u64().expect("seq")
}

/// Completes `session` through `service`.
async fn complete(http: &reqwest::Client, service: &ServiceProcess, session: &str) {
    let url = service.url(&format!("/sessions/{session}/complete"));
    let (status, reply) = post_json(http, &url, &json!({}))
        .await
        .expect("complete the session");
    assert_eq!(status, 200, "{reply}");
}

/// Every event id of `session` in seq order, by a cursor walk, checking that the seqs are
/// exactly 1..=eventCount.
async fn walk(http: &reqwest::Client, service: &ServiceProcess, session: &str) -> Vec<String> {
    let mut walker = CursorWalk::new(session, "asc", 100).stable();
    while let Some(query) = walker.next_query() {
        let url = service.url(&format!("/sessions/{session}{query}"));
        let response = http.get(&url).send().await.expect("read a page");
        assert_eq!(response.status(), 200, "GET {url}");
        walker.page(response.json().await.expect("a page is JSON"));
    }
    let walk = walker.finish();
    let count = walk.first["eventCount"].as_u64().expect("eventCount");
    assert!(walk.seqs.iter().copied().eq(1..=count), "seqs 1..={count}");
    walk.event_ids
}

/// Opens a stream of `session` on `service` and reads it up to `caught-up`.
async fn open_caught_up(service: &ServiceProcess, session: &str) -> SseStream {
    let mut stream = SseRequest::new(&sse::client(), &service.base(), session)
        .open()
        .await;
    stream.expect_retry().await;
    stream.until_event("caught-up").await;
    stream
}

// ---------------------------------------------------------------------------------------------
// shutdown

async fn sigterm_ends_open_streams_and_the_process_exits_without_waiting_for_the_drain_limit(
    store: Arc<ServiceStore>,
) {
    let mut service = start(&store, &[("SHUTDOWN_TIMEOUT_MS", "60000")]).await;
    let http = client();
    create(&http, &service, "call-1").await;
    append(&http, &service, "call-1", "e1", json!({})).await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(open_caught_up(&service, "call-1").await);
    }
    // And the change feed's stream, up to its opening `retry:`.
    let mut feed = sse::client()
        .get(service.url("/changes?after=now"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("the change feed's stream");
    assert_eq!(feed.status(), 200);
    let opening = tokio::time::timeout(LIMIT, feed.chunk())
        .await
        .expect("the feed's opening within the limit")
        .expect("the feed's opening");
    assert!(opening.is_some_and(|b| b.starts_with(b"retry:")));

    service.sigterm();
    for stream in &mut streams {
        // Nothing more (keepalives aside), then a clean end of the response.
        stream.expect_end().await;
    }
    // The feed's too: an end, not a cut connection.
    loop {
        match tokio::time::timeout(LIMIT, feed.chunk())
            .await
            .expect("the feed ended within the limit")
        {
            Ok(None) => break,
            Ok(Some(_)) => {} // keepalives
            Err(e) => panic!("the change feed's stream was cut, not ended: {e}"),
        }
    }
    // The streams did not hold the exit.
    assert_exits_without_waiting_for_the_drain(&mut service).await;
    assert!(
        service
            .json_logs()
            .iter()
            .any(|l| l["message"] == "stopped"),
        "{}",
        service.output()
    );
}

mod sigterm_ends_open_streams_and_the_process_exits_without_waiting_for_the_drain_limit {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        with_store(Backend::Sqlite, "stream_shutdown", super::sigterm_ends_open_streams_and_the_process_exits_without_waiting_for_the_drain_limit).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mongo() {
        with_store(Backend::Mongo, "stream_shutdown", super::sigterm_ends_open_streams_and_the_process_exits_without_waiting_for_the_drain_limit).await;
    }
}

// ---------------------------------------------------------------------------------------------
// a stalled consumer

/// Events written while the consumer reads nothing, and the size of each one's payload text.
const STALLED_EVENTS: usize = 3_000;
const PAYLOAD_BYTES: usize = 8 * 1024;
/// Events written before the memory baseline, so that caches and allocator pools are warm.
const WARM_UP_EVENTS: usize = 100;
/// Concurrent writers.
const WRITERS: usize = 8;
/// Events written for a stalled consumer before SIGTERM: far more than socket buffers hold.
const STALLED_SHUTDOWN_EVENTS: usize = 2_000;

/// The resident memory of process `pid`, in bytes (`VmRSS` of `/proc/<pid>/status`).
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read the status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"));
    kib * 1024
}

/// Appends `w{w}-{i}` for `i` in `range` with `WRITERS` concurrent writers (writer `w` takes
/// every `WRITERS`-th index), each with a payload of [`PAYLOAD_BYTES`].
async fn append_big(service: &ServiceProcess, session: &str, range: std::ops::Range<usize>) {
    let text = "x".repeat(PAYLOAD_BYTES);
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (http, url, text) = (client(), service.url(""), text.clone());
            let session = session.to_owned();
            let indexes: Vec<usize> = range.clone().filter(|i| i % WRITERS == w).collect();
            tokio::spawn(async move {
                for i in indexes {
                    let body = json!({"eventId": format!("e{i}"), "type": "user_speech", "payload": {"text": text}});
                    let (status, reply) =
                        post_json(&http, &format!("{url}/sessions/{session}/events"), &body)
                            .await
                            .unwrap_or_else(|e| panic!("append e{i}: {e}"));
                    assert_eq!(status, 201, "e{i}: {reply}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_consumer_does_not_grow_the_services_memory_and_gets_every_event_once_it_reads_on()
 {
    let store = ServiceStore::new(Backend::Sqlite, "stream_stalled");
    let mut service = start(&store, &[("SQLITE_SYNCHRONOUS", "normal")]).await;
    let http = client();
    create(&http, &service, "big").await;
    // Open, then read nothing more: the connection stays open and its buffers fill.
    let mut stream = open_caught_up(&service, "big").await;
    append_big(&service, "big", 0..WARM_UP_EVENTS).await;
    let before = resident_bytes(service.pid());
    append_big(
        &service,
        "big",
        WARM_UP_EVENTS..WARM_UP_EVENTS + STALLED_EVENTS,
    )
    .await;
    let after = resident_bytes(service.pid());
    let written = (STALLED_EVENTS * PAYLOAD_BYTES) as u64;
    let grown = after.saturating_sub(before);
    eprintln!(
        "stalled consumer: resident memory {} KiB -> {} KiB (+{} KiB) over {} KiB written",
        before / 1024,
        after / 1024,
        grown / 1024,
        written / 1024
    );
    assert!(
        grown < written / 2,
        "the service's resident memory grew by {grown} bytes while {written} bytes were written \
         for a consumer that read nothing: it buffers what the consumer has not read"
    );

    // Reading on: every event once, in order, then the end.
    complete(&http, &service, "big").await;
    let frames = stream.read_to_end(LIMIT).await;
    stream.expect_end().await;
    let total = (WARM_UP_EVENTS + STALLED_EVENTS) as u64;
    let (last, events) = frames.split_last().expect("frames after the stall");
    assert!(last.is("session-ended"), "the last frame: {last:?}");
    assert!(
        events.iter().all(|f| f.is("event")),
        "only events before the end"
    );
    let seqs = seqs_of(events);
    assert!(
        seqs.iter().copied().eq(1..=total),
        "not every seq 1..={total} exactly once in order: {} frames, first gap or duplicate \
         after {:?}",
        seqs.len(),
        seqs.windows(2).find(|w| w[1] != w[0] + 1).map(|w| w[0])
    );
    let ids: Vec<String> = sse::events_of(events)
        .iter()
        .map(|e| e["eventId"].as_str().expect("eventId").to_owned())
        .collect();
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "an event id twice"
    );
    assert_eq!(ids, walk(&http, &service, "big").await);
    service.stop(EXIT_LIMIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_even_a_stream_whose_consumer_stopped_reading_without_waiting_for_the_drain_limit()
 {
    let store = ServiceStore::new(Backend::Sqlite, "stream_stalled_shutdown");
    let vars = [
        ("SQLITE_SYNCHRONOUS", "normal"),
        ("SHUTDOWN_TIMEOUT_MS", "60000"),
    ];
    let mut service = start(&store, &vars).await;
    let http = client();
    create(&http, &service, "big").await;
    // Open, then read nothing more; enough is written to fill the socket buffers both ends.
    let stream = open_caught_up(&service, "big").await;
    append_big(&service, "big", 0..STALLED_SHUTDOWN_EVENTS).await;

    service.sigterm();
    assert_exits_without_waiting_for_the_drain(&mut service).await;
    drop(stream);
}

// ---------------------------------------------------------------------------------------------
// two processes, one SQLite file

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_one_process_delivers_what_another_process_writes_to_the_same_sqlite_file() {
    let store = ServiceStore::new(Backend::Sqlite, "stream_two_processes");
    // The default poll interval: what a listener gets from another process.
    let mut writer = start(&store, &[]).await;
    let mut reader = start(&store, &[]).await;
    let http = client();
    create(&http, &writer, "call-1").await;
    append(&http, &writer, "call-1", "e1", json!({})).await;
    let mut stream = SseRequest::new(&sse::client(), &reader.base(), "call-1")
        .open()
        .await;
    stream.expect_retry().await;
    assert_eq!(
        names_of(&stream.until_event("caught-up").await),
        ["event", "caught-up"]
    );
    for i in 2..=4 {
        append(&http, &writer, "call-1", &format!("e{i}"), json!({})).await;
        let frame = stream.expect_frame().await;
        assert_eq!(frame.event_json()["eventId"], format!("e{i}"), "{frame:?}");
    }
    append(&http, &writer, "call-1", "e5", json!({})).await;
    complete(&http, &writer, "call-1").await;
    let rest = stream.until_event("session-ended").await;
    assert_eq!(seqs_of(&rest), [5]);
    assert_eq!(rest[1].json()["status"], "completed");
    stream.expect_end().await;
    reader.stop(EXIT_LIMIT).await;
    writer.stop(EXIT_LIMIT).await;
}

// ---------------------------------------------------------------------------------------------
// metrics

/// The value of the series `name` (no labels) in a Prometheus text exposition, if present.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            (series == name).then(|| value.parse().ok())?
        })
}

/// The four stream metrics as (open, delivered, resumes, refused); an absent one is 0.
async fn stream_metrics(http: &reqwest::Client, service: &ServiceProcess) -> [f64; 4] {
    let text = http
        .get(service.url("/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text");
    [
        "streams_open",
        "stream_events_delivered_total",
        "stream_resumes_total",
        "streams_refused_total",
    ]
    .map(|name| metric(&text, name).unwrap_or(0.0))
}

/// Scrapes until the stream metrics are `expected` (bounded by [`LIMIT`]): the gauge and the
/// counters move as the streams' tasks run, a moment after what the client sees.
async fn assert_stream_metrics(
    http: &reqwest::Client,
    service: &ServiceProcess,
    expected: [f64; 4],
) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let seen = stream_metrics(http, service).await;
        if seen == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream metrics [open, delivered, resumes, refused] are {seen:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stream_metrics_count_open_streams_delivered_events_resumes_and_refusals(
    store: Arc<ServiceStore>,
) {
    let mut service = start(&store, &[("MAX_STREAMS", "1")]).await;
    let http = client();
    let streams = sse::client();
    create(&http, &service, "call-1").await;
    for i in 1..=3 {
        append(&http, &service, "call-1", &format!("e{i}"), json!({})).await;
    }
    let request = SseRequest::new(&streams, &service.base(), "call-1");

    let mut first = request.open().await;
    first.expect_retry().await;
    assert_eq!(seqs_of(&first.until_event("caught-up").await), [1, 2, 3]);
    assert_stream_metrics(&http, &service, [1.0, 3.0, 0.0, 0.0]).await;

    request
        .refused()
        .await
        .assert_problem(503, "too_many_streams");
    assert_stream_metrics(&http, &service, [1.0, 3.0, 0.0, 1.0]).await;

    drop(first);
    assert_stream_metrics(&http, &service, [0.0, 3.0, 0.0, 1.0]).await;

    let mut resumed = request.clone().last_event_id("1").open().await;
    resumed.expect_retry().await;
    assert_eq!(seqs_of(&resumed.until_event("caught-up").await), [2, 3]);
    append(&http, &service, "call-1", "e4", json!({})).await;
    assert_eq!(resumed.expect_frame().await.id_seq(), 4);
    assert_stream_metrics(&http, &service, [1.0, 6.0, 1.0, 1.0]).await;

    complete(&http, &service, "call-1").await;
    resumed.until_event("session-ended").await;
    resumed.expect_end().await;
    assert_stream_metrics(&http, &service, [0.0, 6.0, 1.0, 1.0]).await;
    service.stop(EXIT_LIMIT).await;
}

mod stream_metrics_count_open_streams_delivered_events_resumes_and_refusals {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        with_store(
            Backend::Sqlite,
            "stream_metrics",
            super::stream_metrics_count_open_streams_delivered_events_resumes_and_refusals,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mongo() {
        with_store(
            Backend::Mongo,
            "stream_metrics",
            super::stream_metrics_count_open_streams_delivered_events_resumes_and_refusals,
        )
        .await;
    }
}
