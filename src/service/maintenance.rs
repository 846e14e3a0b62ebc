//! The background work of one instance: the sweeper that records timer ends, retention, and the
//! removal of erased sessions' events and expired tombstones. Every step is a conditional write
//! in storage, so several instances may run it at once: each end and each erasure is recorded
//! once.

use std::time::Duration;

use super::SessionService;
use crate::domain::Timestamp;

/// Sessions the sweeper ends per tick, at most.
const SWEEP_BATCH: u32 = 500;
/// Ended sessions retention erases per tick, at most.
const RETENTION_BATCH: u32 = 100;
/// Events of erased sessions removed per tick: small enough that other writers barely wait.
const PURGE_EVENTS: u64 = 1_000;

/// Runs the background work every `interval`, until dropped.
pub struct Maintenance {
    task: tokio::task::JoinHandle<()>,
}

impl Maintenance {
    pub fn start(service: SessionService, interval: Duration) -> Self {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let now = Timestamp::now();
                match service.sweep(now, SWEEP_BATCH).await {
                    Ok(0) => {}
                    Ok(ended) => {
                        tracing::info!(ended, "sweeper ended sessions whose timers ran out")
                    }
                    Err(e) => tracing::warn!(error = %e, "sweeper run failed; retrying next tick"),
                }
                // Work left over (a long erasure) goes on at once, a bounded step at a time.
                loop {
                    match service.maintain(now, RETENTION_BATCH, PURGE_EVENTS).await {
                        Ok(true) => tokio::task::yield_now().await,
                        Ok(false) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "erasure step failed; retrying next tick");
                            break;
                        }
                    }
                }
            }
        });
        Self { task }
    }

    /// Stops the work (between steps: each step is one storage write that commits or not) and
    /// waits until the task has let go of the store.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
