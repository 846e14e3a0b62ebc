//! Transcript search on the embedded store: FTS5 over the folded terms of each searchable event
//! (`search_text`, in the index file: see `index`), joined to the event and its session in one
//! statement.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::{SqliteStore, map_err, rows, snapshot};
use crate::domain::{Session, SessionId};
use crate::repo::RepoError;
use crate::repo::search::{
    Candidate, MAX_RELEVANCE_DEPTH, SearchAfter, SearchOrder, SearchRepository, SearchScan,
};

/// The events found, ranked or not: their search row's id and session, only events of
/// sessions not erased, and the order's key (`score`). `?1` the FTS5 query, `?2` the type or NULL,
/// `?3` the session or NULL, `?4` the limit, `?5` the rowid bound (newest) or the offset
/// (relevance). Only then are the events of this one page read (`rows::event`'s columns first):
/// reading every match's payload before ranking cost most of a relevance query.
macro_rules! candidates {
    ($ranked:literal, $from:literal, $score:literal, $order:literal) => {
        concat!(
            "WITH ", $ranked, " found AS (
                 SELECT r.id, r.session_id, r.seq, ", $score, " AS score
                 FROM ", $from, "
                 JOIN sessions s ON s.session_id = r.session_id
                 WHERE s.status <> 'deleted'
                   AND (?2 IS NULL OR r.type = ?2) AND (?3 IS NULL OR r.session_id = ?3) ",
            $order,
            ")
             SELECT e.seq, e.event_id, e.type, e.payload, e.timestamp, found.id, found.session_id
             FROM found JOIN events e ON e.session_id = found.session_id AND e.seq = found.seq
             ORDER BY found.score, found.id DESC"
        )
    };
}

const NEWEST: &str = candidates!(
    "",
    "search_text f JOIN search_rows r ON r.id = f.rowid",
    "-f.rowid",
    "AND search_text MATCH ?1 AND f.rowid < ?5 ORDER BY f.rowid DESC LIMIT ?4"
);
const RELEVANCE: &str = candidates!(
    "",
    "search_text f JOIN search_rows r ON r.id = f.rowid",
    "bm25(search_text)",
    "AND search_text MATCH ?1 ORDER BY score, f.rowid DESC LIMIT ?4 OFFSET ?5"
);
/// [`RELEVANCE`] over the best `?6` matches of the whole index only: ranked by the full-text
/// index alone, before any of them is joined to its row and session. Joining every match before
/// ranking cost most of a query on common words. Whenever it finds `?4` events they are the
/// best ones (an event outside the window ranks below every event in it); when it finds fewer,
/// the window may have cut them off, and [`RELEVANCE`] runs.
const RELEVANCE_IN_WINDOW: &str = candidates!(
    "ranked AS (
         SELECT rowid AS id, bm25(search_text) AS score FROM search_text
         WHERE search_text MATCH ?1 ORDER BY score, rowid DESC LIMIT ?6),",
    "ranked JOIN search_rows r ON r.id = ranked.id",
    "ranked.score",
    "ORDER BY score, r.id DESC LIMIT ?4 OFFSET ?5"
);

/// How many times the events asked for (with those skipped) the window ranks: room for a filter
/// on the type (about half the speech) and for erased calls.
const WINDOW_FACTOR: i64 = 4;

#[async_trait]
impl SearchRepository for SqliteStore {
    async fn search(&self, scan: &SearchScan) -> Result<Vec<Candidate>, RepoError> {
        // Every write acknowledged before this search is found by it: the first read of a search
        // brings the index up to date (the reads after it go on from where it stood). Should the
        // index not be writable now (a full disk), the search answers from it as it stands.
        if scan.after.is_none()
            && let Err(e) = self.catch_up(false).await
        {
            metrics::counter!("search_index_failures_total").increment(1);
            tracing::warn!(error = %e, "the search index could not catch up; searching it as it is");
        }
        let scan = scan.clone();
        self.read(move |conn| snapshot(conn, |tx| run(tx, &scan)))
            .await
    }

    async fn index_pending(&self) -> Result<u64, RepoError> {
        self.catch_up(true).await
    }
}

impl SqliteStore {
    /// Runs index passes until the index has followed every change committed before this call
    /// (and, with `backfill`, indexed every older event too); the events indexed. Costs one read
    /// when there is nothing to do.
    async fn catch_up(&self, backfill: bool) -> Result<u64, RepoError> {
        let indexed_total = metrics::counter!("search_indexed_events_total");
        let pending = metrics::gauge!("search_index_pending_changes");
        let (pos, head, backfilled): (i64, i64, bool) = self
            .read(|conn| {
                snapshot(conn, |tx| {
                    tx.prepare_cached(
                        "SELECT p.pos, coalesce(
                                (SELECT seq FROM main.sqlite_sequence WHERE name = 'changes'), 0),
                             p.backfill_done
                         FROM search.search_progress p",
                    )
                    .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))))
                    .map_err(map_err)
                })
            })
            .await?;
        pending.set((head - pos).max(0) as f64);
        let mut done = (pos >= head, backfilled || !backfill);
        let mut indexed = 0;
        while done != (true, true) {
            let progress = self.indexer.pass(backfill).await?;
            indexed += progress.indexed;
            indexed_total.increment(progress.indexed);
            pending.set((progress.head - progress.pos).max(0) as f64);
            done = (progress.pos >= head, progress.backfilled || !backfill);
        }
        Ok(indexed)
    }
}

fn run(conn: &Connection, scan: &SearchScan) -> Result<Vec<Candidate>, RepoError> {
    let (sql, bound, limit) = match (scan.order, scan.after) {
        (SearchOrder::Newest, after) => {
            let before = match after {
                Some(SearchAfter::Position(p)) => row_id(p),
                _ => i64::MAX,
            };
            (NEWEST, before, scan.limit)
        }
        (SearchOrder::Relevance, after) => {
            let skip = match after {
                Some(SearchAfter::Offset(n)) => n.min(MAX_RELEVANCE_DEPTH),
                _ => 0,
            };
            (
                RELEVANCE,
                i64::from(skip),
                scan.limit.min(MAX_RELEVANCE_DEPTH - skip),
            )
        }
    };
    if limit == 0 {
        return Ok(Vec::new());
    }
    let fts5 = scan.query.fts5();
    let event_type = scan.event_type.map(|t| t.as_str());
    let session = scan.session_id.as_ref().map(SessionId::as_str);
    // One call's matches may all lie outside the window: ranking them all costs less there.
    if matches!(scan.order, SearchOrder::Relevance) && session.is_none() {
        let window = (bound + i64::from(limit)) * WINDOW_FACTOR;
        let params = params![fts5, event_type, session, i64::from(limit), bound, window];
        let found = candidates(conn, RELEVANCE_IN_WINDOW, params)?;
        if found.len() == limit as usize {
            return Ok(found);
        }
    }
    let params = params![fts5, event_type, session, i64::from(limit), bound];
    candidates(conn, sql, params)
}

/// The candidates `sql` (one of the queries above) finds with `params`, each with its session.
fn candidates(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Candidate>, RepoError> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    let mut found = stmt.query(params).map_err(map_err)?;
    let mut sessions: HashMap<String, Session> = HashMap::new();
    let mut candidates = Vec::new();
    while let Some(row) = found.next().map_err(map_err)? {
        let id: String = row.get(6).map_err(map_err)?;
        let session = match sessions.get(&id) {
            Some(session) => session.clone(),
            None => {
                let sid = rows::session_id(id.clone())?;
                let session = rows::session(conn, &sid)?.ok_or(RepoError::NotFound)?;
                sessions.insert(id, session.clone());
                session
            }
        };
        let position: i64 = row.get(5).map_err(map_err)?;
        candidates.push(Candidate {
            event: rows::event(&session.session_id, row)?,
            session,
            position: position_of(position),
        });
    }
    Ok(candidates)
}

/// A search row's place in newest order as a position: its id, which may be negative (a
/// backfilled event's), moved up so every id is a distinct unsigned number in the same order.
fn position_of(row_id: i64) -> u128 {
    u128::from(row_id.cast_unsigned() ^ (1 << 63))
}

/// The row id before which [`position_of`] `position` lies (every id, for one past them all).
fn row_id(position: u128) -> i64 {
    u64::try_from(position).map_or(i64::MAX, |p| (p ^ (1 << 63)).cast_signed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_keep_the_order_of_row_ids_and_map_back() {
        let ids = [i64::MIN, -1_000, -1, 0, 1, 42, i64::MAX];
        for pair in ids.windows(2) {
            assert!(position_of(pair[0]) < position_of(pair[1]));
        }
        for id in ids {
            assert_eq!(row_id(position_of(id)), id);
        }
        assert_eq!(row_id(u128::MAX), i64::MAX);
    }
}
