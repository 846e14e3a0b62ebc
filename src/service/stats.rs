//! Call analytics: the steps of the range in its zone, the store's counts for them, and the
//! figures made of those counts ([`crate::domain::stats`]).

use super::{ServiceError, SessionService};
use crate::domain::Timestamp;
use crate::domain::stats::{Figures, GroupBy, Step, TimeStep, Zone, figures, time_steps};
use crate::repo::stats::StatsScan;

/// What `GET /stats` asked for, validated.
#[derive(Debug, Clone)]
pub struct StatsRequest {
    pub from: Timestamp,
    pub to: Timestamp,
    pub step: Step,
    pub zone: Zone,
    pub group_by: Option<GroupBy>,
}

/// The figures of a range, step by step.
#[derive(Debug, Clone)]
pub struct StatsAnswer {
    pub request: StatsRequest,
    pub steps: Vec<TimeStep>,
    pub figures: Figures,
    pub active_now: u64,
}

impl SessionService {
    /// The calls started in `[request.from, request.to)`, counted per step of the zone's
    /// calendar (and per group); more than [`crate::domain::stats::MAX_BUCKETS`] buckets is
    /// refused before or after the store is read.
    pub async fn stats(&self, request: StatsRequest) -> Result<StatsAnswer, ServiceError> {
        let steps = time_steps(request.from, request.to, request.step, &request.zone)
            .map_err(|(field, invalid)| ServiceError::InvalidStats { field, invalid })?;
        let bounds = steps
            .iter()
            .map(|s| s.from)
            .chain(steps.last().map(|s| s.to))
            .collect();
        let scan = StatsScan {
            bounds,
            group_by: request.group_by.clone(),
        };
        let repos = &self.0.repos;
        let cells = repos.stats.tally(&scan).await?;
        let active_now = repos.stats.active_now().await?;
        let figures =
            figures(steps.len(), &cells).map_err(|invalid| ServiceError::InvalidStats {
                field: "groupBy",
                invalid,
            })?;
        Ok(StatsAnswer {
            request,
            steps,
            figures,
            active_now,
        })
    }
}
