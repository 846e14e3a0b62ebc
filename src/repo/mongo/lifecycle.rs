//! The lifecycle on MongoDB: ending by request or by timer, the sweeper's and retention's index
//! scans, listing, erasure to a tombstone and the purge of its events, timers for old sessions.
//!
//! - Every end is one conditional `findOneAndUpdate` on an open status: a requested end also
//!   requires that the deadline has not come by its instant (`expiresAt` null or later), a timer
//!   end requires the `expiresAt` it read. A write that no longer matches re-reads and decides
//!   again, so concurrent enders record one end and exactly one sees `ended_now`.
//! - A tombstone is the session's own document, replaced by `{sessionId, status: "deleted",
//!   deletedAt, eventCount}` where `eventCount` counts the events still to remove: keeping the
//!   document under the unique `sessionId` index is what makes racing creates and appends see the
//!   deletion. Events go in seq ranges from the lowest up (so what is left is always a dense
//!   range), driven only by stored state, so a purge resumes after a crash at any point.

use bson::{Bson, DateTime, Document, doc};
use futures_util::TryStreamExt;
use mongodb::options::{Hint, ReturnDocument};

use super::{
    MongoStore, OPEN, SEQ_INDEX, TOMBSTONE, backoff, corrupt, date, end_update, map_err,
    optional_date, session_from, timer_end_filter,
};
use crate::domain::{
    EndReason, Order, Session, SessionId, Status, TerminalStatus, Timers, Timestamp,
};
use crate::repo::{DeleteOutcome, EndOutcome, PurgeOutcome, RepoError, SessionScan};

const BY_START: &str = "sessions_by_start";
const BY_STATUS_START: &str = "sessions_by_status_start";
const BY_DEADLINE: &str = "sessions_by_deadline";
const BY_END: &str = "sessions_by_end";
const TOMBSTONES: &str = "sessions_tombstones";
const PURGE_PENDING: &str = "sessions_purge_pending";
const LEGACY_TIMERS: &str = "sessions_legacy_timers";

const ENDED: [&str; 2] = ["completed", "failed"];
const REAL_STATUSES: [Status; 4] = [
    Status::Initiated,
    Status::Active,
    Status::Completed,
    Status::Failed,
];
/// 0001-01-01: a lower bound that keeps an unbounded list's range scan on dates, away from the
/// documents that hold none (tombstones). Not year 0, the earliest [`Timestamp`]: SecantusDB
/// refuses dates before year 1 in a query (Python's datetime), so a session started in year 0
/// (which it cannot store either) is not listed without `started_from`.
const EARLIEST_MILLIS: i64 = -62_135_596_800_000;

/// How often an end re-reads a session that changed under its conditional write.
const END_ATTEMPTS: u32 = 20;
/// Events removed together with the tombstone; a longer session's rest goes in `purge`.
const INLINE_EVENT_DELETES: i64 = 1_000;
/// The most events one `deleteMany` of the purge removes.
const PURGE_CHUNK: u64 = 1_000;
/// The most tombstones one purge removes.
const TOMBSTONE_BATCH: i64 = 1_000;

impl MongoStore {
    /// Ends an open session at `at`: with `requested` (status, reason), or by its timer if its
    /// deadline had come by `at`. With `requested` absent, only a timer end is recorded.
    pub(super) async fn end_at(
        &self,
        id: &SessionId,
        at: Timestamp,
        requested: Option<(TerminalStatus, Option<EndReason>)>,
    ) -> Result<EndOutcome, RepoError> {
        for attempt in 1..=END_ATTEMPTS {
            let stored = self
                .sessions
                .find_one(doc! { "sessionId": id.as_str() })
                .await
                .map_err(map_err)?
                .ok_or(RepoError::NotFound)?;
            let mut session = session_from(&stored)?;
            if session.status.is_terminal() {
                return Ok(EndOutcome {
                    session,
                    ended_now: false,
                });
            }
            let filter = match (session.expired_at(at), &requested) {
                (Some(deadline), _) => {
                    session.end_by(deadline);
                    timer_end_filter(&stored)
                }
                (None, None) => {
                    return Ok(EndOutcome {
                        session,
                        ended_now: false,
                    });
                }
                (None, Some((status, reason))) => {
                    session.status = status.status();
                    session.ended_at = Some(at);
                    session.ended_reason = reason.clone();
                    doc! {
                        "sessionId": id.as_str(),
                        "status": { "$in": OPEN.as_slice() },
                        "$or": [{ "expiresAt": Bson::Null }, { "expiresAt": { "$gt": date(at) } }],
                    }
                }
            };
            let ended = self
                .sessions
                .find_one_and_update(filter, end_update(&session))
                .return_document(ReturnDocument::After)
                .await
                .map_err(map_err)?;
            if let Some(ended) = ended {
                return Ok(EndOutcome {
                    session: session_from(&ended)?,
                    ended_now: true,
                });
            }
            // It changed since it was read (ended, erased, or a new event moved its deadline).
            backoff(attempt).await;
        }
        Err(RepoError::Unavailable(
            "the session kept changing while it was being ended".into(),
        ))
    }

    pub(super) async fn expired_ids(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<SessionId>, RepoError> {
        self.ids(
            doc! { "expiresAt": { "$lte": date(now) }, "status": { "$in": OPEN.as_slice() } },
            doc! { "expiresAt": 1 },
            limit,
            BY_DEADLINE,
        )
        .await
    }

    pub(super) async fn ended_before_ids(
        &self,
        cutoff: Timestamp,
        limit: u32,
    ) -> Result<Vec<SessionId>, RepoError> {
        self.ids(
            doc! { "endedAt": { "$lt": date(cutoff) }, "status": { "$in": ENDED.as_slice() } },
            doc! { "endedAt": 1 },
            limit,
            BY_END,
        )
        .await
    }

    async fn ids(
        &self,
        filter: Document,
        sort: Document,
        limit: u32,
        index: &str,
    ) -> Result<Vec<SessionId>, RepoError> {
        if limit == 0 {
            // A limit of 0 means none to the server.
            return Ok(Vec::new());
        }
        let projection = doc! { "_id": 0, "sessionId": 1 };
        let docs = self
            .find_sessions(filter, sort, i64::from(limit), index, Some(projection))
            .await?;
        docs.iter().map(session_id_of).collect()
    }

    /// All statuses: one keyset range on `(startedAt, sessionId)`. Some statuses: one range per
    /// status on `(status, startedAt, sessionId)`, merged. A cursor splits each range in two
    /// exact ranges (the rest of its instant, then the instants after it), so no scan reads more
    /// than `limit` entries past the cursor however many sessions share an instant.
    pub(super) async fn list_sessions(
        &self,
        scan: &SessionScan,
    ) -> Result<Vec<Session>, RepoError> {
        if scan.limit == 0 {
            return Ok(Vec::new());
        }
        let mut statuses: Vec<Status> = Vec::new();
        for status in &scan.statuses {
            if !statuses.contains(status) {
                statuses.push(*status);
            }
        }
        let groups: Vec<Option<Status>> =
            if REAL_STATUSES.iter().all(|s| statuses.contains(s)) || statuses.is_empty() {
                vec![None]
            } else {
                statuses.into_iter().map(Some).collect()
            };
        let dir = match scan.order {
            Order::Asc => 1,
            Order::Desc => -1,
        };
        let sort = doc! { "startedAt": dir, "sessionId": dir };
        let limit = i64::from(scan.limit);
        let in_range = |t: Timestamp| {
            scan.started_from.is_none_or(|from| t >= from)
                && scan.started_before.is_none_or(|before| t < before)
        };
        let mut found = Vec::new();
        for status in groups {
            let (status_filter, index) = match status {
                Some(s) => (Bson::String(s.as_str().to_owned()), BY_STATUS_START),
                None => (
                    Bson::Array(REAL_STATUSES.iter().map(|s| s.as_str().into()).collect()),
                    BY_START,
                ),
            };
            let filter = |started: Document, id: Option<Document>| {
                let mut f = doc! {};
                match &status_filter {
                    Bson::Array(all) => f.insert("status", doc! { "$in": all.clone() }),
                    one => f.insert("status", one.clone()),
                };
                f.insert("startedAt", started);
                if let Some(id) = id {
                    f.insert("sessionId", id);
                }
                f
            };
            let mut left = limit;
            // The rest of the cursor's own instant.
            if let Some((t, after_id)) = scan.after.as_ref().filter(|(t, _)| in_range(*t)) {
                let op = if dir == 1 { "$gt" } else { "$lt" };
                let same = self
                    .sessions_where(
                        filter(
                            doc! { "$eq": date(*t) },
                            Some(doc! { op: after_id.as_str() }),
                        ),
                        sort.clone(),
                        left,
                        index,
                    )
                    .await?;
                left -= same.len() as i64;
                found.extend(same);
            }
            if left == 0 {
                continue;
            }
            // The instants after it (before it, descending), within the range asked for.
            let mut started = doc! {
                "$gte": scan.started_from.map_or(DateTime::from_millis(EARLIEST_MILLIS), date),
            };
            let after = scan.after.as_ref().map(|(t, _)| *t);
            match scan.order {
                Order::Asc => {
                    if let Some(t) = after {
                        started.insert("$gt", date(t));
                    }
                    if let Some(before) = scan.started_before {
                        started.insert("$lt", date(before));
                    }
                }
                Order::Desc => {
                    let upper = match (after, scan.started_before) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    if let Some(upper) = upper {
                        started.insert("$lt", date(upper));
                    }
                }
            }
            let rest = self
                .sessions_where(filter(started, None), sort.clone(), left, index)
                .await?;
            found.extend(rest);
        }
        Ok(scan.first_in_order(found))
    }

    async fn sessions_where(
        &self,
        filter: Document,
        sort: Document,
        limit: i64,
        index: &str,
    ) -> Result<Vec<Session>, RepoError> {
        let docs = self.find_sessions(filter, sort, limit, index, None).await?;
        docs.iter().map(session_from).collect()
    }

    /// Session documents matching `filter`, in `sort` order, read through the named index.
    async fn find_sessions(
        &self,
        filter: Document,
        sort: Document,
        limit: i64,
        index: &str,
        projection: Option<Document>,
    ) -> Result<Vec<Document>, RepoError> {
        let mut find = self
            .sessions
            .find(filter)
            .sort(sort)
            .limit(limit)
            .hint(Hint::Name(index.into()));
        if let Some(projection) = projection {
            find = find.projection(projection);
        }
        find.await
            .map_err(map_err)?
            .try_collect()
            .await
            .map_err(map_err)
    }

    /// Replaces the session by its tombstone in one conditional write on the event count read
    /// (a concurrent append changes it, and then this reads again), so the tombstone's
    /// `eventCount` is exactly the number of events it leaves; then removes the first of them.
    pub(super) async fn delete_session(
        &self,
        id: &SessionId,
        at: Timestamp,
    ) -> Result<DeleteOutcome, RepoError> {
        for attempt in 1..=END_ATTEMPTS {
            let stored = self
                .sessions
                .find_one(doc! { "sessionId": id.as_str() })
                .projection(doc! { "status": 1, "eventCount": 1 })
                .await
                .map_err(map_err)?
                .ok_or(RepoError::NotFound)?;
            if stored.get_str("status") == Ok(TOMBSTONE) {
                return Ok(DeleteOutcome { deleted_now: false });
            }
            let count = stored
                .get_i64("eventCount")
                .map_err(|_| corrupt("eventCount"))?;
            let tombstone = doc! {
                "sessionId": id.as_str(),
                "status": TOMBSTONE,
                "deletedAt": date(at),
                "eventCount": count,
            };
            let replaced = self
                .sessions
                .replace_one(
                    doc! {
                        "sessionId": id.as_str(),
                        "status": { "$ne": TOMBSTONE },
                        "eventCount": count,
                    },
                    tombstone,
                )
                .await
                .map_err(map_err)?;
            if replaced.matched_count == 1 {
                if count > 0 {
                    // The erasure is done and durable; what this leaves, the purge removes.
                    if let Err(e) = self.remove_events(id, 1, INLINE_EVENT_DELETES, count).await {
                        tracing::warn!(error = %e, "removing an erased session's first events failed; the purge will");
                    }
                }
                return Ok(DeleteOutcome { deleted_now: true });
            }
            backoff(attempt).await;
        }
        Err(RepoError::Unavailable(
            "the session kept changing while it was being erased".into(),
        ))
    }

    /// Removes the tombstone's events with `first <= seq <= upto` and counts down what is left,
    /// knowing the highest seq is `last`. `$min`: concurrent purgers only ever lower the count.
    async fn remove_events(
        &self,
        id: &SessionId,
        first: i64,
        upto: i64,
        last: i64,
    ) -> Result<u64, RepoError> {
        let removed = self
            .events
            .delete_many(doc! { "sessionId": id.as_str(), "seq": { "$gte": first, "$lte": upto } })
            .hint(Hint::Name(SEQ_INDEX.into()))
            .await
            .map_err(map_err)?
            .deleted_count;
        // Events go from the lowest seq up, so those left are exactly `upto + 1 ..= last`.
        let left = last.saturating_sub(upto).max(0);
        self.sessions
            .update_one(
                doc! { "sessionId": id.as_str(), "status": TOMBSTONE },
                doc! { "$min": { "eventCount": left } },
            )
            .await
            .map_err(map_err)?;
        Ok(removed)
    }

    /// The lowest (`direction` 1) or highest (-1) seq of the session's events still stored.
    async fn edge_seq(&self, id: &SessionId, direction: i32) -> Result<Option<i64>, RepoError> {
        let edge = self
            .events
            .find_one(doc! { "sessionId": id.as_str() })
            .sort(doc! { "seq": direction })
            .projection(doc! { "_id": 0, "seq": 1 })
            .hint(Hint::Name(SEQ_INDEX.into()))
            .await
            .map_err(map_err)?;
        edge.map(|d| d.get_i64("seq").map_err(|_| corrupt("seq")))
            .transpose()
    }

    async fn next_pending(&self) -> Result<Option<SessionId>, RepoError> {
        let pending = self
            .sessions
            .find_one(doc! { "status": TOMBSTONE, "eventCount": { "$gt": 0 } })
            .projection(doc! { "_id": 0, "sessionId": 1 })
            .hint(Hint::Name(PURGE_PENDING.into()))
            .await
            .map_err(map_err)?;
        pending.as_ref().map(session_id_of).transpose()
    }

    pub(super) async fn purge_erased(
        &self,
        max_events: u64,
        tombstones_before: Timestamp,
    ) -> Result<PurgeOutcome, RepoError> {
        let mut outcome = PurgeOutcome::default();
        let mut budget = max_events;
        while budget > 0 {
            let Some(id) = self.next_pending().await? else {
                break;
            };
            let (Some(first), Some(last)) =
                (self.edge_seq(&id, 1).await?, self.edge_seq(&id, -1).await?)
            else {
                // Its events are gone (a purge stopped before counting down): say so.
                self.sessions
                    .update_one(
                        doc! { "sessionId": id.as_str(), "status": TOMBSTONE },
                        doc! { "$set": { "eventCount": 0_i64 } },
                    )
                    .await
                    .map_err(map_err)?;
                continue;
            };
            let chunk = i64::try_from(budget.min(PURGE_CHUNK)).unwrap_or(1);
            let upto = first.saturating_add(chunk - 1);
            let removed = self.remove_events(&id, first, upto, last).await?;
            outcome.events_removed += removed;
            // At least one, so that a concurrent purger removing the same range cannot keep this
            // loop going without progress.
            budget = budget.saturating_sub(removed.max(1));
        }
        if budget == 0 {
            outcome.more = self.next_pending().await?.is_some();
        }
        let expired: Vec<Document> = self
            .sessions
            .find(doc! {
                "status": TOMBSTONE,
                "deletedAt": { "$lt": date(tombstones_before) },
                "eventCount": 0,
            })
            .projection(doc! { "_id": 1 })
            .limit(TOMBSTONE_BATCH)
            .hint(Hint::Name(TOMBSTONES.into()))
            .await
            .map_err(map_err)?
            .try_collect()
            .await
            .map_err(map_err)?;
        if !expired.is_empty() {
            let ids: Vec<Bson> = expired
                .iter()
                .filter_map(|d| d.get("_id").cloned())
                .collect();
            outcome.tombstones_removed = self
                .sessions
                .delete_many(doc! {
                    "_id": { "$in": ids },
                    "status": TOMBSTONE,
                    "eventCount": 0,
                })
                .await
                .map_err(map_err)?
                .deleted_count;
            outcome.more |= expired.len() as i64 == TOMBSTONE_BATCH;
        }
        Ok(outcome)
    }

    /// Sessions without timers (indexed as null) get `defaults` from `now`; an open one gets the
    /// deadline that follows, an ended one none.
    pub(super) async fn adopt_legacy(
        &self,
        defaults: Timers,
        now: Timestamp,
    ) -> Result<u64, RepoError> {
        self.backfill_last_event_at().await?;
        let deadline = crate::domain::deadline(defaults, now, None).map(|d| d.at);
        let mut changed = 0;
        for (statuses, expires_at) in [(OPEN, optional_date(deadline)), (ENDED, Bson::Null)] {
            changed += self
                .sessions
                .update_many(
                    doc! { "inactivityTimeoutSeconds": Bson::Null, "status": { "$in": statuses.as_slice() } },
                    doc! { "$set": {
                        "inactivityTimeoutSeconds": i64::from(defaults.inactivity_seconds),
                        "maxDurationSeconds": i64::from(defaults.max_duration_seconds),
                        "timersSince": date(now),
                        "expiresAt": expires_at,
                    } },
                )
                .hint(Hint::Name(LEGACY_TIMERS.into()))
                .await
                .map_err(map_err)?
                .modified_count;
        }
        Ok(changed)
    }

    /// `lastEventAt` was not recorded before timers: for each session from then that has events
    /// (and no `lastEventAt` yet), the last event's timestamp, as SQLite's migration does. Once,
    /// at the upgrade: sessions that were adopted are no longer found.
    async fn backfill_last_event_at(&self) -> Result<(), RepoError> {
        let mut legacy = self
            .sessions
            .find(doc! {
                "inactivityTimeoutSeconds": Bson::Null,
                "status": { "$in": OPEN.iter().chain(ENDED.iter()).collect::<Vec<_>>() },
                "eventCount": { "$gt": 0_i64 },
                "lastEventAt": Bson::Null,
            })
            .projection(doc! { "sessionId": 1, "eventCount": 1 })
            .hint(Hint::Name(LEGACY_TIMERS.into()))
            .await
            .map_err(map_err)?;
        while let Some(session) = legacy.try_next().await.map_err(map_err)? {
            let (Ok(id), Ok(count)) = (session.get_str("sessionId"), session.get_i64("eventCount"))
            else {
                continue;
            };
            let last = self
                .events
                .find_one(doc! { "sessionId": id, "seq": count })
                .await
                .map_err(map_err)?;
            if let Some(at) = last.as_ref().and_then(|e| e.get_datetime("timestamp").ok()) {
                self.sessions
                    .update_one(
                        doc! { "sessionId": id, "lastEventAt": Bson::Null },
                        doc! { "$set": { "lastEventAt": *at } },
                    )
                    .await
                    .map_err(map_err)?;
            }
        }
        Ok(())
    }
}

/// The `sessionId` of a (projected) session document.
fn session_id_of(doc: &Document) -> Result<SessionId, RepoError> {
    let id = doc.get_str("sessionId").map_err(|_| corrupt("sessionId"))?;
    SessionId::parse(id).map_err(|_| corrupt("sessionId"))
}
