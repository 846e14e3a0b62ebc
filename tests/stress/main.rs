//! Concurrency at scale: hundreds of clients at once against the application on a real port,
//! racing to create the same sessions, sending distinct, duplicate and contested events to them,
//! walking them by cursor while they grow, and completing some of them half way. Every request
//! and its answer is recorded with when it was sent and when the answer came; at the end the
//! record and the store must agree on every invariant of the API:
//!
//! - exactly-once storage: an eventId answered 2xx is stored once, with the seq and payload every
//!   2xx answer for it gave, and exactly one request for it was answered 201;
//! - exact counts: `eventCount` equals the events a cursor walk returns, seqs 1..=eventCount;
//! - one `endedAt` per ended session, the same in every 200 `complete` answer;
//! - `409 session_ended` only for events the client sent after someone asked to end the session,
//!   never for an event that is stored, and no event accepted (201) after a `complete` answered;
//! - cursor walks made during the writes are whole and strictly ordered.
//!
//! The work is a fixed number of operations per client (no loops that wait for a condition).

#[path = "../support/mod.rs"]
mod support;

mod client;
mod invariants;

use std::time::{Duration, Instant};

use client::{Plan, Record, run_client};
use support::app::spawn_app;
use support::{Backend, StoreCtx, run_with_store};

/// How long one request may take before the test calls it hung.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

async fn stress(store: StoreCtx, plan: Plan) {
    let base = spawn_app(store.clone()).await.base;
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(plan.clients)
        .build()
        .expect("http client");
    let started = Instant::now();
    let clients: Vec<_> = (0..plan.clients)
        .map(|id| tokio::spawn(run_client(id, http.clone(), base.clone(), plan)))
        .collect();
    let mut records: Vec<Record> = Vec::new();
    for c in clients {
        match c.await {
            Ok(client_records) => records.extend(client_records),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    let elapsed = started.elapsed();
    invariants::check(&store, plan, &records, elapsed, &http, &base).await;
}

/// Runs a plan of `clients` clients, `sessions` shared sessions and `ops_per_client` operations
/// each on a fresh store of `backend`.
async fn run(backend: Backend, clients: usize, sessions: usize, ops_per_client: usize) {
    let plan = Plan {
        clients,
        sessions,
        ops_per_client,
    };
    run_with_store(backend, move |s| stress(s, plan)).await;
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_hundred_concurrent_clients_keep_every_invariant() {
        super::run(super::Backend::Sqlite, 200, 8, 16).await;
    }
}

/// The MongoDB test server is slower, so its run is smaller.
mod mongo {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hundred_and_twenty_concurrent_clients_keep_every_invariant() {
        super::run(super::Backend::Mongo, 120, 8, 8).await;
    }
}
