//! The background work of one instance: the sweeper that records timer ends, retention, and the
//! removal of erased sessions' events and expired tombstones. Every step is a conditional write
//! in storage, so several instances may run it at once: each end and each erasure is recorded
//! once.

use std::time::Duration;

use super::{ServiceError, SessionService, expire};
use crate::domain::Timestamp;
use crate::repo::RepoError;

/// Sessions the sweeper ends per tick, at most.
const SWEEP_BATCH: u32 = 500;
/// How much longer than the feed's changes a tombstone is kept (at most the feed's retention).
const TOMBSTONE_MARGIN_SECONDS: u64 = 3_600;

/// Changes the feed's retention removes per tick, at most.
const CHANGES_TRIMMED_PER_TICK: u32 = 10_000;

/// Ended sessions retention erases per tick, at most.
const RETENTION_BATCH: u32 = 100;
/// Events of erased sessions removed per tick: small enough that other writers barely wait.
const PURGE_EVENTS: u64 = 1_000;

/// How often the search index is brought up to the writes (on a store that indexes after the
/// write): a search does that itself first, so this only keeps what it has to do small.
const INDEX_INTERVAL: Duration = Duration::from_millis(250);

/// Runs the background work every `interval` (and the search index's every [`INDEX_INTERVAL`]),
/// until dropped.
pub struct Maintenance {
    task: tokio::task::JoinHandle<()>,
    indexer: tokio::task::JoinHandle<()>,
}

impl Maintenance {
    pub fn start(service: SessionService, interval: Duration) -> Self {
        let indexer = tokio::spawn(index(service.clone()));
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let last_success = metrics::gauge!("sweeper_last_success_timestamp_seconds");
            let failures = metrics::counter!("sweeper_failures_total");
            last_success.set(unix_seconds());
            loop {
                ticks.tick().await;
                let now = Timestamp::now();
                let mut failed = false;
                match service.sweep(now, SWEEP_BATCH).await {
                    Ok(0) => {}
                    Ok(ended) => {
                        tracing::info!(ended, "sweeper ended sessions whose timers ran out")
                    }
                    Err(e) => {
                        failed = true;
                        tracing::warn!(error = %e, "sweeper run failed; retrying next tick")
                    }
                }
                // Work left over (a long erasure) goes on at once, a bounded step at a time.
                loop {
                    match service.maintain(now, RETENTION_BATCH, PURGE_EVENTS).await {
                        Ok(true) => tokio::task::yield_now().await,
                        Ok(false) => break,
                        Err(e) => {
                            failed = true;
                            tracing::warn!(error = %e, "erasure step failed; retrying next tick");
                            break;
                        }
                    }
                }
                if failed {
                    failures.increment(1);
                } else {
                    last_success.set(unix_seconds());
                }
            }
        });
        Self { task, indexer }
    }

    /// Stops the work (between steps: each step is one storage write that commits or not) and
    /// waits until the tasks have let go of the store.
    pub async fn stop(self) {
        for task in [self.task, self.indexer] {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Keeps the search index up with the writes, every [`INDEX_INTERVAL`].
async fn index(service: SessionService) {
    let mut ticks = tokio::time::interval(INDEX_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let failures = metrics::counter!("search_index_failures_total");
    loop {
        ticks.tick().await;
        if let Err(e) = service.repos.search.index_pending().await {
            failures.increment(1);
            tracing::warn!(error = %e, "search indexing failed; retrying next tick");
        }
    }
}

/// Now, as Unix seconds (for the `sweeper_last_success_timestamp_seconds` gauge).
fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl SessionService {
    /// Records the end of up to `limit` sessions whose timers ran out by `now`; returns how many
    /// this call ended (others may have been ended by another instance meanwhile).
    pub async fn sweep(&self, now: Timestamp, limit: u32) -> Result<u64, ServiceError> {
        metrics::counter!("sweeper_runs_total").increment(1);
        let ids = self.repos.sessions.expired(now, limit).await?;
        let mut ended = 0;
        for id in ids {
            match expire(&self.repos, &self.hub, &id, now).await {
                Ok(true) => ended += 1,
                Ok(false) | Err(RepoError::NotFound | RepoError::Deleted) => {}
                Err(e) => return Err(ServiceError::Storage(e)),
            }
        }
        metrics::counter!("sweeper_sessions_ended_total").increment(ended);
        Ok(ended)
    }

    /// Erases up to `limit` sessions that ended more than the retention ago (if retention is
    /// on), then removes events of erased sessions (up to `max_events`) and expired tombstones.
    /// Returns whether more work is waiting.
    pub async fn maintain(
        &self,
        now: Timestamp,
        limit: u32,
        max_events: u64,
    ) -> Result<bool, ServiceError> {
        let sessions = &self.repos.sessions;
        let mut more = false;
        if self.lifecycle.retention_seconds > 0 {
            let cutoff = now.minus_seconds(self.lifecycle.retention_seconds);
            let ids = sessions.ended_before(cutoff, limit).await?;
            more |= ids.len() == limit as usize;
            for id in ids {
                match sessions.delete(&id, now).await {
                    Ok(outcome) if outcome.deleted_now => {
                        metrics::counter!("sessions_erased_total", "cause" => "retention")
                            .increment(1);
                        self.hub.poke(&id);
                    }
                    Ok(_) | Err(RepoError::NotFound) => {}
                    Err(e) => return Err(ServiceError::Storage(e)),
                }
            }
        }
        // The change feed, trimmed to its retention from the oldest change.
        let feed = &self.repos.feed;
        let changes_before = now.minus_seconds(self.lifecycle.changes_retention_seconds);
        let trimmed = feed.trim(changes_before, CHANGES_TRIMMED_PER_TICK).await?;
        more |= trimmed == u64::from(CHANGES_TRIMMED_PER_TICK);
        let oldest = feed.oldest_at().await?;
        metrics::gauge!("changes_oldest_age_seconds").set(oldest.map_or(0.0, |at| {
            (now.millis() - at.millis()).max(0) as f64 / 1000.0
        }));
        // A tombstone is what hides an erased session's changes from the feed (and keeps its id
        // from being taken again): it stays while any change of the session may remain, so not
        // before the feed's retention, nor before the oldest change kept.
        // An hour's margin covers the time between a deletion's timestamp and its change row's
        // (the writer's queue, clocks of other instances).
        let mut tombstones_before = now
            .minus_seconds(self.lifecycle.tombstone_retention_seconds)
            .min(changes_before);
        if let Some(oldest) = oldest {
            tombstones_before = tombstones_before.min(oldest);
        }
        let margin = TOMBSTONE_MARGIN_SECONDS.min(self.lifecycle.changes_retention_seconds);
        let tombstones_before = tombstones_before.minus_seconds(margin);
        let purged = sessions.purge(max_events, tombstones_before).await?;
        metrics::counter!("erased_events_removed_total").increment(purged.events_removed);
        Ok(more || purged.more)
    }

    /// Gives sessions from before timers the server's default timers, counted from now.
    pub async fn adopt_legacy_sessions(&self) -> Result<u64, ServiceError> {
        let timers = self.lifecycle.default_timers;
        Ok(self
            .repos
            .sessions
            .adopt_legacy_sessions(timers, Timestamp::now())
            .await?)
    }
}
