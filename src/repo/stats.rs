//! Call analytics' storage seam: each store counts the calls that started in each time step, by
//! the dimensions they can be grouped by; [`crate::domain::stats`] turns the counts into figures.

use async_trait::async_trait;

use super::RepoError;
use crate::domain::Timestamp;
use crate::domain::stats::{Cell, GroupBy};

/// What [`StatsRepository::tally`] counts.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsScan {
    /// The steps' edges, ascending: step `i` is the calls started in `[bounds[i], bounds[i + 1])`.
    pub bounds: Vec<Timestamp>,
    /// When grouping by a metadata key, its value is read into [`crate::domain::stats::Dims`].
    pub group_by: Option<GroupBy>,
}

#[async_trait]
pub trait StatsRepository: Send + Sync {
    /// The sessions (never erased ones) that started within the scan's steps, counted per step
    /// and dimensions: open ones by number and events, ended ones also by whole-second duration.
    /// Read from one snapshot. A step and dimensions may come in several cells (callers add
    /// them up).
    async fn tally(&self, scan: &StatsScan) -> Result<Vec<Cell>, RepoError>;

    /// The sessions open now (`initiated` or `active` as stored), whenever they started.
    async fn active_now(&self) -> Result<u64, RepoError>;
}
