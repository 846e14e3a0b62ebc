//! A graceful stop with an attempt in flight: the stopping process lets go of the attempt's
//! lease, so the next process sends the message at once instead of when the lease would have
//! ended. Attempts here may take ten minutes (`WEBHOOK_TIMEOUT_MS`), so a lease outlives the
//! test's patience by far: without the release this test waits [`LIMIT`] and fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use super::{LIMIT, Receiver, SETTLE, closed_port, copies, create, register, start};
use crate::client;
use crate::support::process::has_message;
use crate::support::{Backend, ServiceStore};

/// Accepts connections on `listener`, reads what they send and never answers; counts them.
fn never_answer(
    listener: tokio::net::TcpListener,
) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
            }));
        }
    });
    (accepted, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_releases_the_lease_of_an_unfinished_attempt_so_the_next_process_sends_it_at_once()
 {
    let store = ServiceStore::new(Backend::Sqlite, "webhooks-stop-releases");
    let command = super::command(&store).env("WEBHOOK_TIMEOUT_MS", "600000");
    let http = client();
    let mut first = start(&command).await;
    let addr = closed_port();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let (accepted, hanging) = never_answer(listener);
    let (_, secret) = register(
        &http,
        &first,
        &format!("http://{addr}/hook"),
        &["session.created"],
    )
    .await;
    create(&http, &first, "held").await;
    // The first attempt is under way: the receiver took the connection and does not answer.
    let deadline = Instant::now() + LIMIT;
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "no attempt reached the receiver in {LIMIT:?}; the service's output:\n{}",
            first.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    first.stop(LIMIT).await;
    assert!(
        has_message(
            &first.json_logs(),
            "released the leases of unfinished webhook attempts"
        ),
        "the stopping process says it let go of its lease; its output:\n{}",
        first.output()
    );
    hanging.abort();
    let _ = hanging.await;

    // The receiver answers now; the next process sends the message without waiting for a lease.
    let receiver = Receiver::bind(addr).await;
    let second = start(&command).await;
    receiver
        .until("the message whose attempt the stop cut short", |received| {
            received.iter().any(|r| r.session() == "held")
        })
        .await;
    tokio::time::sleep(SETTLE).await;
    let received = receiver.received();
    assert_eq!(
        received.len(),
        1,
        "sent once to the answering receiver: {received:#?}"
    );
    assert!(copies(&received).values().all(|n| *n == 1));
    assert!(received[0].verifies_with(&secret), "{:#?}", received[0]);
    assert_eq!(received[0].kind(), "session.created");
    drop(second);
}
