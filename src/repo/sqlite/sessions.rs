//! The session repository on the embedded store: creating, ending, expiring, listing, erasing
//! and purging calls, written through the writer and read on the reader threads.

use async_trait::async_trait;
use rusqlite::Connection;

use super::writer::{self, Touches};
use super::{SqliteStore, map_err, rows, snapshot};
use crate::domain::{NewSession, Order, Session, SessionId, Status, Timers, Timestamp};
use crate::repo::{
    CreateOutcome, DeleteOutcome, EndOutcome, EndRequest, MetadataPatch, Patched, PurgeOutcome,
    RepoError, SessionRepository, SessionScan,
};

#[async_trait]
impl SessionRepository for SqliteStore {
    async fn create_or_get(&self, new: NewSession) -> Result<CreateOutcome, RepoError> {
        // The JSON text (kept since the request was parsed) is copied here, off the writer.
        let metadata = new.metadata.json().to_owned();
        self.write(Touches::Appends, move |db| {
            writer::create(db, &new, &metadata)
        })
        .await
    }

    async fn get(&self, id: &SessionId) -> Result<Session, RepoError> {
        let id = id.clone();
        self.read(move |conn| rows::session(conn, &id)?.ok_or(RepoError::NotFound))
            .await
    }

    async fn end(&self, id: &SessionId, request: EndRequest) -> Result<EndOutcome, RepoError> {
        let id = id.clone();
        self.write(Touches::Sessions, move |db| writer::end(db, &id, &request))
            .await
    }

    async fn expire(&self, id: &SessionId, now: Timestamp) -> Result<EndOutcome, RepoError> {
        let id = id.clone();
        self.write(Touches::Sessions, move |db| writer::expire(db, &id, now))
            .await
    }

    /// The stored deadline (`expires_at`) may lag the true one (the writer rewrites it only when
    /// it lags by more than a little, see `writer::stored_deadline`), never lead it: the index
    /// finds every session whose stored deadline has passed, and each is kept only if its true
    /// deadline has. A lagging one is a session idle for most of its timeout, so few are passed
    /// over.
    async fn expired(&self, now: Timestamp, limit: u32) -> Result<Vec<SessionId>, RepoError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(EXPIRED).map_err(map_err)?;
            let mut found = stmt.query([now.millis()]).map_err(map_err)?;
            let mut ids = Vec::new();
            while ids.len() < limit as usize {
                let Some(row) = found.next().map_err(map_err)? else {
                    break;
                };
                let timing = match rows::Timing::from_row(row, 1) {
                    Ok(timing) => timing,
                    Err(RepoError::Deleted) => continue,
                    Err(e) => return Err(e),
                };
                if timing.deadline().is_some_and(|d| d.at <= now) {
                    ids.push(rows::session_id(row.get::<_, String>(0).map_err(map_err)?)?);
                }
            }
            Ok(ids)
        })
        .await
    }

    async fn list(&self, scan: &SessionScan) -> Result<Vec<Session>, RepoError> {
        let scan = scan.clone();
        self.read(move |conn| snapshot(conn, |tx| list(tx, &scan)))
            .await
    }

    async fn delete(&self, id: &SessionId, at: Timestamp) -> Result<DeleteOutcome, RepoError> {
        let id = id.clone();
        self.write(Touches::Sessions, move |db| writer::delete(db, &id, at))
            .await
    }

    async fn patch_metadata(
        &self,
        id: &SessionId,
        patch: MetadataPatch,
    ) -> Result<Patched, RepoError> {
        let id = id.clone();
        self.write(Touches::Sessions, move |db| {
            writer::patch_metadata(db, &id, &patch)
        })
        .await
    }

    async fn purge(
        &self,
        max_events: u64,
        tombstones_before: Timestamp,
    ) -> Result<PurgeOutcome, RepoError> {
        self.write(Touches::Sessions, move |db| {
            writer::purge(db, max_events, tombstones_before)
        })
        .await
    }

    async fn ended_before(
        &self,
        cutoff: Timestamp,
        limit: u32,
    ) -> Result<Vec<SessionId>, RepoError> {
        self.read(move |conn| {
            ids(
                conn,
                "SELECT session_id FROM sessions INDEXED BY sessions_by_end
                 WHERE status IN ('completed', 'failed') AND ended_at < ?1
                 ORDER BY ended_at LIMIT ?2",
                cutoff,
                limit,
            )
        })
        .await
    }

    async fn adopt_legacy_sessions(
        &self,
        defaults: Timers,
        now: Timestamp,
    ) -> Result<u64, RepoError> {
        self.write(Touches::Sessions, move |db| {
            writer::adopt(db, defaults, now)
        })
        .await
    }

    async fn ping(&self) -> Result<(), RepoError> {
        self.read(|conn| {
            conn.query_row("SELECT count(*) FROM schema_migrations", [], |_| Ok(()))
                .map_err(map_err)
        })
        .await?;
        self.write(Touches::Appends, |_| Ok(())).await
    }
}

/// Open sessions whose stored deadline is at or before `?1`, by it, with what decides their true
/// deadline ([`rows::Timing`]).
pub(super) const EXPIRED: &str = concat!(
    "SELECT session_id, ",
    rows::timing_columns!(),
    " FROM sessions WHERE expires_at IS NOT NULL AND expires_at <= ?1 ORDER BY expires_at"
);

/// Session ids from `sql`, which takes `(instant, limit)`.
fn ids(
    conn: &Connection,
    sql: &str,
    at: Timestamp,
    limit: u32,
) -> Result<Vec<SessionId>, RepoError> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    let mut rows = stmt
        .query(rusqlite::params![at.millis(), limit])
        .map_err(map_err)?;
    let mut ids = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        ids.push(rows::session_id(row.get::<_, String>(0).map_err(map_err)?)?);
    }
    Ok(ids)
}

/// One keyset range per status on `(status, started_at, session_id)`, each at most `limit` rows,
/// merged in order: the cost is bounded by `limit` times the number of statuses, however many
/// sessions are stored.
fn list(conn: &Connection, scan: &SessionScan) -> Result<Vec<Session>, RepoError> {
    const ALL: [Status; 4] = [
        Status::Initiated,
        Status::Active,
        Status::Completed,
        Status::Failed,
    ];
    let statuses: &[Status] = if scan.statuses.is_empty() {
        &ALL
    } else {
        &scan.statuses
    };
    let sql = match scan.order {
        Order::Asc => format!(
            "SELECT {} FROM sessions INDEXED BY sessions_by_status_start
             WHERE status = ?1 AND started_at >= ?2 AND started_at < ?3
               AND (started_at, session_id) > (?4, ?5)
             ORDER BY started_at ASC, session_id ASC LIMIT ?6",
            rows::SESSION_COLUMNS
        ),
        Order::Desc => format!(
            "SELECT {} FROM sessions INDEXED BY sessions_by_status_start
             WHERE status = ?1 AND started_at >= ?2 AND started_at < ?3
               AND (started_at, session_id) < (?4, ?5)
             ORDER BY started_at DESC, session_id DESC LIMIT ?6",
            rows::SESSION_COLUMNS
        ),
    };
    // Without a cursor, a position before (or after) every session.
    let (after_time, after_id) = match (&scan.after, scan.order) {
        (Some((t, id)), _) => (t.millis(), id.as_str().to_owned()),
        (None, Order::Asc) => (i64::MIN, String::new()),
        (None, Order::Desc) => (i64::MAX, String::new()),
    };
    let from = scan.started_from.map_or(i64::MIN, Timestamp::millis);
    let before = scan.started_before.map_or(i64::MAX, Timestamp::millis);
    let mut stmt = conn.prepare_cached(&sql).map_err(map_err)?;
    let mut found = Vec::new();
    for status in statuses {
        let mut rows = stmt
            .query(rusqlite::params![
                status.as_str(),
                from,
                before,
                after_time,
                after_id,
                scan.limit
            ])
            .map_err(map_err)?;
        while let Some(row) = rows.next().map_err(map_err)? {
            found.push(rows::session_row(row)?);
        }
    }
    Ok(scan.first_in_order(found))
}
