//! Call analytics on MongoDB: one aggregation over `sessions` by `startedAt` (the index
//! `{startedAt: 1, sessionId: 1}` selects the range), counting calls per step, dimensions and
//! whole-second duration on the server. The step is found by a binary tree of `$cond`s over the
//! steps' edges, so any edge (any zone) is exact; the answer's size grows with the steps, groups
//! and distinct durations, never with the calls.

use async_trait::async_trait;
use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;

use super::MongoStore;
use super::errors::map_err;
use crate::domain::stats::{Cell, Cells, Dims, GroupBy, Tally};
use crate::domain::{Status, Timestamp};
use crate::repo::RepoError;
use crate::repo::stats::{StatsRepository, StatsScan};

#[async_trait]
impl StatsRepository for MongoStore {
    async fn tally(&self, scan: &StatsScan) -> Result<Vec<Cell>, RepoError> {
        let (Some(first), Some(last)) = (scan.bounds.first(), scan.bounds.last()) else {
            return Ok(Vec::new());
        };
        let metadata = match &scan.group_by {
            Some(GroupBy::Metadata(key)) => Bson::Document(doc! {
                "$cond": [
                    { "$eq": [{ "$type": format!("$metadata.{key}") }, "string"] },
                    format!("$metadata.{key}"),
                    Bson::Null,
                ]
            }),
            _ => Bson::Null,
        };
        let pipeline = vec![
            doc! { "$match": {
                "startedAt": { "$gte": date(*first), "$lt": date(*last) },
                "status": { "$in": Status::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>() },
            }},
            doc! { "$group": {
                "_id": {
                    "step": step_of(&scan.bounds[1..scan.bounds.len() - 1], 0),
                    "status": "$status",
                    "reason": { "$ifNull": ["$endedReason", Bson::Null] },
                    "language": "$language",
                    "metadata": metadata,
                    "seconds": { "$cond": [
                        { "$eq": [{ "$type": "$endedAt" }, "date"] },
                        { "$max": [0, { "$floor": { "$divide": [
                            { "$subtract": ["$endedAt", "$startedAt"] }, 1000
                        ] } }] },
                        Bson::Null,
                    ] },
                },
                "calls": { "$sum": 1 },
                "events": { "$sum": "$eventCount" },
            }},
        ];
        let mut found = self.sessions.aggregate(pipeline).await.map_err(map_err)?;
        let mut cells = Cells::new(scan.group_by.as_ref(), scan.bounds.len() - 1);
        while let Some(group) = found.try_next().await.map_err(map_err)? {
            let (step, dims, tally) = cell(&group).ok_or_else(|| {
                RepoError::Backend(format!("an unexpected stats group: {group}").into())
            })?;
            cells.add(step, &dims, &tally);
        }
        Ok(cells.into_vec())
    }

    async fn active_now(&self) -> Result<u64, RepoError> {
        self.sessions
            .count_documents(doc! { "status": { "$in": ["initiated", "active"] } })
            .await
            .map_err(map_err)
    }
}

fn date(t: Timestamp) -> bson::DateTime {
    bson::DateTime::from_millis(t.millis())
}

/// The index of the step `$startedAt` falls in, given the inner edges `edges` (the steps'
/// starts after the first) and the index of the step before `edges[0]`: a balanced tree of
/// comparisons, as deep as log2 of the steps.
fn step_of(edges: &[Timestamp], offset: usize) -> Bson {
    if edges.is_empty() {
        return Bson::Int64(offset as i64);
    }
    let mid = edges.len() / 2;
    Bson::Document(doc! { "$cond": [
        { "$lt": ["$startedAt", date(edges[mid])] },
        step_of(&edges[..mid], offset),
        step_of(&edges[mid + 1..], offset + mid + 1),
    ]})
}

fn cell(group: &Document) -> Option<(usize, Dims, Tally)> {
    let id = group.get_document("_id").ok()?;
    let number = |d: &Document, key: &str| -> Option<i64> {
        match d.get(key)? {
            Bson::Int32(n) => Some(i64::from(*n)),
            Bson::Int64(n) => Some(*n),
            Bson::Double(n) => Some(*n as i64),
            _ => None,
        }
    };
    let text = |key: &str| id.get_str(key).ok().map(str::to_owned);
    let step = usize::try_from(number(id, "step")?).ok()?;
    let calls = u64::try_from(number(group, "calls")?).ok()?;
    let events = u64::try_from(number(group, "events")?).ok()?;
    let tally = match number(id, "seconds") {
        Some(seconds) => Tally::ended(u64::try_from(seconds).ok()?, calls, events),
        None => Tally::open(calls, events),
    };
    let dims = Dims {
        status: id.get_str("status").ok()?.parse().ok()?,
        ended_reason: text("reason"),
        language: text("language")?,
        metadata: text("metadata"),
    };
    Some((step, dims, tally))
}
