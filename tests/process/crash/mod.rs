//! Crash safety: the real binary is killed with SIGKILL in the middle of concurrent event ingest,
//! then started again on the same store. Everything it acknowledged must still be there, exactly
//! once and with the seq it was acknowledged with; counts, seqs and statuses must agree; and a
//! request that was in flight at the kill must be safe to retry (201 or 200, never a duplicate).
//!
//! Both backends: a SQLite file in a temp directory, and a MongoDB database of its own on the
//! server `MONGODB_URI` names (dropped at the end, also when the test fails).

mod batch;
mod ingest;
mod verify;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::client;
use crate::support::process::{ServiceCommand, ServiceProcess};
use crate::support::{Backend, ServiceStore};
use ingest::{Ledger, ingest_and_kill, lock, shared_sessions};
use verify::verify_after_restart;

/// How long ingest may take to reach a kill point before the test gives up.
const KILL_POINT_LIMIT: Duration = Duration::from_secs(150);
/// How long a client keeps retrying one request the service answers with 503 ("retry with the
/// same request"). After a kill -9, MongoDB keeps the dead process's open transactions (and their
/// hold on the session documents they wrote) until it reaps them, 60 s by default
/// (`transactionLifetimeLimitSeconds`); appends to those sessions get 503 until then.
const UNAVAILABLE_LIMIT: Duration = Duration::from_secs(120);
/// Concurrent writers during ingest.
const WRITERS: usize = 16;
/// Shared sessions the writers spread their events over.
const SESSIONS: usize = 4;
/// The most operations one writer makes per run (a bound; the kill normally comes first).
const MAX_OPS_PER_WRITER: usize = 2_000;

/// When to kill the service during ingest.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// Once this many events have been acknowledged in this run.
    Acks(usize),
    /// At a random-ish moment after the first acknowledgement of this run.
    RandomMoment,
}

/// A number below `below` that differs from run to run.
fn jitter(below: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or_default();
    nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15) % below.max(1)
}

/// The service on `store`, with `SQLITE_SYNCHRONOUS=synchronous` and its access log on.
fn service(store: &ServiceStore, synchronous: &str) -> ServiceCommand {
    ServiceCommand::new()
        .store(store)
        .env("RUST_LOG", "session_service=info")
        .env("SQLITE_SYNCHRONOUS", synchronous)
}

/// Starts the service and waits for `/ready`.
async fn start(command: &ServiceCommand) -> ServiceProcess {
    let service = command.start().await;
    service.wait_ready().await;
    service
}

// ---------------------------------------------------------------------------------------------
// the scenario

async fn crash_scenario(command: ServiceCommand, label: String, kills: &'static [KillAt]) {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let service = start(&command).await;
    let client = client();
    for session in shared_sessions() {
        let body = json!({"sessionId": session, "language": "en-US", "metadata": {"shared": true}});
        let (status, reply) = crate::post_json(&client, &service.url("/sessions"), &body)
            .await
            .expect("create a shared session");
        assert_eq!(status, 201, "create {session}: {reply}");
    }
    let mut service = service;
    for (run, kill_at) in kills.iter().enumerate() {
        ingest_and_kill(service, &label, run, *kill_at, &ledger).await;
        service = start(&command).await;
        // Every writer has stopped: the ledger is the test's alone until the next run.
        let mut l = std::mem::take(&mut *lock(&ledger));
        let verified = verify_after_restart(&service, &label, &mut l).await;
        *lock(&ledger) = l;
        println!("{label} run {run} ({kill_at:?}): {verified} acknowledged events verified");
    }
}

/// Runs the scenario on a fresh store of `backend`, removes the store, then passes on a panic.
async fn run_crash_test(backend: Backend, synchronous: &'static str, kills: &'static [KillAt]) {
    let store = ServiceStore::new(backend, "crash");
    let label = format!("[{backend:?} synchronous={synchronous} {kills:?}]");
    let command = service(&store, synchronous);
    let outcome = tokio::spawn(crash_scenario(command, label, kills)).await;
    store.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// One crash test per backend: `crash_test!(name, synchronous, kills)`.
macro_rules! crash_test {
    ($name:ident, $synchronous:literal, $kills:expr) => {
        mod $name {
            use super::{Backend, KillAt, run_crash_test};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run_crash_test(Backend::Sqlite, $synchronous, $kills).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mongo() {
                run_crash_test(Backend::Mongo, $synchronous, $kills).await;
            }
        }
    };
}

crash_test!(
    every_acknowledged_event_survives_a_kill_after_50_acknowledgements,
    "full",
    &[KillAt::Acks(50)]
);
crash_test!(
    every_acknowledged_event_survives_a_kill_after_200_acknowledgements,
    "full",
    &[KillAt::Acks(200)]
);
crash_test!(
    every_acknowledged_event_survives_a_kill_after_500_acknowledgements,
    "full",
    &[KillAt::Acks(500)]
);
crash_test!(
    acknowledged_events_survive_two_kills_in_a_row_at_random_moments,
    "full",
    &[KillAt::RandomMoment, KillAt::RandomMoment]
);

/// `synchronous=normal` is a SQLite setting.
mod sqlite {
    use super::{Backend, KillAt, run_crash_test};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_synchronous_normal_a_process_kill_loses_no_acknowledged_event() {
        run_crash_test(Backend::Sqlite, "normal", &[KillAt::Acks(200)]).await;
    }
}
