//! Transcript search on the embedded store: FTS5 over the folded terms of each searchable event
//! (`search_text`, in the index file: see `index`), joined to the event and its session in one
//! statement.

use std::collections::HashMap;

use async_trait::async_trait;
use futures_util::future::try_join_all;
use rusqlite::{Connection, params};

use super::feed::changes_head;
use super::{SqliteStore, map_err, rows, snapshot};
use crate::domain::{Session, SessionId};
use crate::repo::RepoError;
use crate::repo::search::{
    Candidate, MAX_RELEVANCE_DEPTH, SearchAfter, SearchOrder, SearchRepository, SearchScan,
};

/// The newest events found: `?1` the FTS5 query, `?2` the type or NULL, `?3` the session or
/// NULL, `?4` the limit, `?5` the row id they lie before. Only events of sessions not erased; only
/// then are the events of this one page read (`rows::event`'s columns first).
const NEWEST: &str = "
    WITH found AS (
        SELECT r.id, r.session_id, r.seq
        FROM search_text f
        JOIN search_rows r ON r.id = f.rowid
        JOIN sessions s ON s.session_id = r.session_id
        WHERE search_text MATCH ?1 AND f.rowid < ?5 AND s.status <> 'deleted'
          AND (?2 IS NULL OR r.type = ?2) AND (?3 IS NULL OR r.session_id = ?3)
        ORDER BY f.rowid DESC LIMIT ?4)
    SELECT e.seq, e.event_id, e.type, e.payload, e.timestamp, found.id, found.session_id
    FROM found JOIN events e ON e.session_id = found.session_id AND e.seq = found.seq
    ORDER BY found.id DESC";

/// The best `?4` events found with row ids from `?5` to `?6` (one part of the index), as
/// (row id, score): best first, ties newest first. Parameters `?1`-`?3` as in [`NEWEST`].
const RANK: &str = "
    SELECT f.rowid, bm25(search_text) AS score
    FROM search_text f
    JOIN search_rows r ON r.id = f.rowid
    JOIN sessions s ON s.session_id = r.session_id
    WHERE search_text MATCH ?1 AND f.rowid >= ?5 AND f.rowid <= ?6 AND s.status <> 'deleted'
      AND (?2 IS NULL OR r.type = ?2) AND (?3 IS NULL OR r.session_id = ?3)
    ORDER BY score, f.rowid DESC LIMIT ?4";

/// [`RANK`] over the part's best `?7` matches only: ranked by the full-text index alone, before
/// any of them is joined to its row and session. Joining every match before ranking cost most of
/// a query on common words. Whenever it finds `?4` events they are the part's best ones (an
/// event outside the window ranks below every event in it); when it finds fewer, the window may
/// have cut them off, and [`RANK`] runs.
const RANK_IN_WINDOW: &str = "
    WITH ranked AS (
        SELECT rowid AS id, bm25(search_text) AS score FROM search_text
        WHERE search_text MATCH ?1 AND rowid >= ?5 AND rowid <= ?6
        ORDER BY score, rowid DESC LIMIT ?7)
    SELECT ranked.id, ranked.score
    FROM ranked
    JOIN search_rows r ON r.id = ranked.id
    JOIN sessions s ON s.session_id = r.session_id
    WHERE s.status <> 'deleted'
      AND (?2 IS NULL OR r.type = ?2) AND (?3 IS NULL OR r.session_id = ?3)
    ORDER BY ranked.score, ranked.id DESC LIMIT ?4";

/// The event of search row `?1`, unless its session is erased (`rows::event`'s columns first).
const EVENT_OF_ROW: &str = "
    SELECT e.seq, e.event_id, e.type, e.payload, e.timestamp, r.id, r.session_id
    FROM search_rows r
    JOIN sessions s ON s.session_id = r.session_id
    JOIN events e ON e.session_id = r.session_id AND e.seq = r.seq
    WHERE r.id = ?1 AND s.status <> 'deleted'";

/// How many times the events asked for (with those skipped) a part's window ranks: room for a
/// filter on the type (about half the speech) and for erased calls.
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
        match scan.order {
            SearchOrder::Newest => {
                let scan = scan.clone();
                self.read(move |conn| snapshot(conn, |tx| newest(tx, &scan)))
                    .await
            }
            SearchOrder::Relevance => self.relevance(scan).await,
        }
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
                    tx.prepare_cached(concat!(
                        "SELECT p.pos, ",
                        changes_head!("main"),
                        ", p.backfill_done FROM search.search_progress p"
                    ))
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

    /// A page in relevance order. Ranking a common word's matches costs tens of milliseconds
    /// ([`RANK`] scores every one), so the index's row ids are cut into as many ranges as there
    /// are idle reader threads, plus one (at most [`SqliteStore::search_parts`]), ranked at once; their
    /// best are merged, then only the page's events are read. The parts' scores agree: `bm25()`
    /// weighs each word by its share of the whole index, whatever range a query covers. Each
    /// part pays for those shares again, so parts lower a query's latency, not its cost: under
    /// load, when no reader is idle, a query is one part.
    async fn relevance(&self, scan: &SearchScan) -> Result<Vec<Candidate>, RepoError> {
        let skip = match scan.after {
            Some(SearchAfter::Offset(n)) => n.min(MAX_RELEVANCE_DEPTH),
            _ => 0,
        };
        let limit = scan.limit.min(MAX_RELEVANCE_DEPTH - skip);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let wanted = skip + limit;
        let span = self.read(|conn| snapshot(conn, row_span)).await?;
        // A part for the reader this query takes anyway, and one for each idle reader: busy ones
        // would only take turns at the parts.
        let parts = parts(span, self.search_parts.min(self.readers.idle() + 1));
        let ranked = try_join_all(parts.into_iter().map(|range| {
            let scan = scan.clone();
            self.read(move |conn| snapshot(conn, |tx| rank(tx, &scan, range, wanted)))
        }))
        .await?;
        let mut best: Vec<(f64, i64)> = ranked.concat();
        best.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
        let page: Vec<i64> = best
            .into_iter()
            .skip(skip as usize)
            .take(limit as usize)
            .map(|(_, id)| id)
            .collect();
        self.read(move |conn| snapshot(conn, |tx| events_of(tx, &page)))
            .await
    }
}

/// The lowest and highest row ids of the index, if it has any row.
fn row_span(conn: &Connection) -> Result<Option<(i64, i64)>, RepoError> {
    conn.prepare_cached(
        "SELECT (SELECT min(id) FROM search_rows), (SELECT max(id) FROM search_rows)",
    )
    .and_then(|mut s| s.query_row([], |r| Ok(r.get::<_, Option<i64>>(0)?.zip(r.get(1)?))))
    .map_err(map_err)
}

/// `n` ranges of row ids, together every id, cutting `span` into parts of equal width. Rows
/// written since `span` was read fall in the last part.
fn parts(span: Option<(i64, i64)>, n: usize) -> Vec<(i64, i64)> {
    let Some((low, high)) = span.filter(|_| n > 1) else {
        return vec![(i64::MIN, i64::MAX)];
    };
    let (low, width) = (i128::from(low), i128::from(high) - i128::from(low) + 1);
    let cut = |i: usize| -> i64 {
        let at = low + width * i as i128 / n as i128;
        i64::try_from(at).unwrap_or(i64::MAX)
    };
    (0..n)
        .map(|i| {
            let from = if i == 0 { i64::MIN } else { cut(i) };
            let to = if i + 1 == n { i64::MAX } else { cut(i + 1) - 1 };
            (from, to)
        })
        .filter(|(from, to)| from <= to)
        .collect()
}

/// The best `wanted` events of `scan` with row ids in `range`, as (score, row id).
fn rank(
    conn: &Connection,
    scan: &SearchScan,
    (from, to): (i64, i64),
    wanted: u32,
) -> Result<Vec<(f64, i64)>, RepoError> {
    let fts5 = scan.query.fts5();
    let event_type = scan.event_type.map(|t| t.as_str());
    let session = scan.session_id.as_ref().map(SessionId::as_str);
    let run = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> Result<Vec<(f64, i64)>, RepoError> {
        let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
        let rows = stmt.query_map(params, |r| Ok((r.get(1)?, r.get(0)?)));
        rows.and_then(Iterator::collect).map_err(map_err)
    };
    // One call's matches may all lie outside the window: ranking them all costs less there.
    if session.is_none() {
        let window = i64::from(wanted) * WINDOW_FACTOR;
        let params = params![fts5, event_type, session, wanted, from, to, window];
        let found = run(RANK_IN_WINDOW, params)?;
        if found.len() == wanted as usize {
            return Ok(found);
        }
    }
    run(RANK, params![fts5, event_type, session, wanted, from, to])
}

/// A page in newest order.
fn newest(conn: &Connection, scan: &SearchScan) -> Result<Vec<Candidate>, RepoError> {
    if scan.limit == 0 {
        return Ok(Vec::new());
    }
    let before = match scan.after {
        Some(SearchAfter::Position(p)) => row_id(p),
        _ => i64::MAX,
    };
    let fts5 = scan.query.fts5();
    let event_type = scan.event_type.map(|t| t.as_str());
    let session = scan.session_id.as_ref().map(SessionId::as_str);
    let mut stmt = conn.prepare_cached(NEWEST).map_err(map_err)?;
    let params = params![fts5, event_type, session, scan.limit, before];
    let mut found = stmt.query(params).map_err(map_err)?;
    let mut page = Page::default();
    while let Some(row) = found.next().map_err(map_err)? {
        page.push(conn, row)?;
    }
    Ok(page.candidates)
}

/// The events of search rows `ids`, in that order; those of sessions erased since they were
/// ranked are left out.
fn events_of(conn: &Connection, ids: &[i64]) -> Result<Vec<Candidate>, RepoError> {
    let mut stmt = conn.prepare_cached(EVENT_OF_ROW).map_err(map_err)?;
    let mut page = Page::default();
    for id in ids {
        let mut found = stmt.query([id]).map_err(map_err)?;
        if let Some(row) = found.next().map_err(map_err)? {
            page.push(conn, row)?;
        }
    }
    Ok(page.candidates)
}

/// Candidates built from rows of [`NEWEST`] or [`EVENT_OF_ROW`], each session read once.
#[derive(Default)]
struct Page {
    sessions: HashMap<String, Session>,
    candidates: Vec<Candidate>,
}

impl Page {
    fn push(&mut self, conn: &Connection, row: &rusqlite::Row<'_>) -> Result<(), RepoError> {
        let id: String = row.get(6).map_err(map_err)?;
        let session = match self.sessions.get(&id) {
            Some(session) => session.clone(),
            None => {
                let sid = rows::session_id(id.clone())?;
                let session = rows::session(conn, &sid)?.ok_or(RepoError::NotFound)?;
                self.sessions.insert(id, session.clone());
                session
            }
        };
        let position: i64 = row.get(5).map_err(map_err)?;
        self.candidates.push(Candidate {
            event: rows::event(&session.session_id, row)?,
            session,
            position: position_of(position),
        });
        Ok(())
    }
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
    use crate::domain::search::TextQuery;
    use crate::domain::{
        EventId, EventType, JsonObject, Language, NewEvent, NewSession, Timers, Timestamp,
    };
    use crate::repo::sqlite::{SqliteConfig, Synchronous};
    use crate::repo::{EventRepository, SessionRepository};

    #[test]
    fn parts_cover_every_row_id_once_in_order() {
        let spans = [
            None,
            Some((1, 1)),
            Some((5, 6)),
            Some((-1_000, 2_000)),
            Some((i64::MIN, i64::MAX)),
        ];
        for span in spans {
            for n in 1..=7 {
                let parts = parts(span, n);
                assert_eq!(parts[0].0, i64::MIN, "{span:?} in {n}");
                assert_eq!(parts[parts.len() - 1].1, i64::MAX, "{span:?} in {n}");
                for pair in parts.windows(2) {
                    assert_eq!(pair[0].1.checked_add(1), Some(pair[1].0), "{span:?} in {n}");
                }
                assert!(parts.iter().all(|(from, to)| from <= to), "{span:?} in {n}");
                let wanted = if span.is_some() { n } else { 1 };
                assert!(parts.len() <= wanted, "{span:?} in {n}");
            }
        }
        assert_eq!(parts(Some((0, 99)), 2), [(i64::MIN, 49), (50, i64::MAX)]);
    }

    /// A store in a temporary directory holding call `p` with 60 turns that say "refund" once
    /// to three times among up to nine other words, so they rank in an order other than the
    /// order they were stored in, with ties (alike texts) between turns far apart.
    async fn ranked_call() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SqliteConfig::new(dir.path().join("s.db"), Synchronous::Normal);
        // Enough idle readers for every number of parts tried.
        config.reader_threads = 8;
        let store = SqliteStore::open(&config).unwrap().store;
        let session_id = rows::session_id("p".to_owned()).unwrap();
        let new = NewSession {
            session_id: session_id.clone(),
            language: Language::parse("en").unwrap(),
            metadata: JsonObject::default(),
            started_at: Timestamp::now(),
            timers: Timers::default(),
            redact: None,
        };
        store.create_or_get(new).await.unwrap();
        for i in 0..60 {
            let (times, others) = ((i * 7) % 3 + 1, (i * 11) % 10);
            let mut words = vec!["refund"; times];
            words.extend(std::iter::repeat_n("word", others));
            let text = words.join(" ");
            store
                .append(NewEvent {
                    session_id: session_id.clone(),
                    event_id: EventId::parse(format!("e{i:02}")).unwrap(),
                    event_type: EventType::UserSpeech,
                    payload: JsonObject::parse(serde_json::json!({ "text": text })).unwrap(),
                    client_timestamp: None,
                    received_at: Timestamp::now(),
                    expected_seq: None,
                    redact: None,
                })
                .await
                .unwrap();
        }
        (dir, store)
    }

    fn event_ids(found: Vec<Candidate>) -> Vec<String> {
        found
            .into_iter()
            .map(|c| c.event.event_id.to_string())
            .collect()
    }

    /// Ranked in parts and merged, every page is the page of the one ranking of the whole index,
    /// whatever the number of parts: a merge that kept each part's order, or broke ties another
    /// way (newest first), would fail.
    #[tokio::test]
    async fn ranking_in_parts_pages_exactly_as_ranking_the_whole_index() {
        let (_dir, mut store) = ranked_call().await;
        let mut scan = SearchScan {
            query: TextQuery::parse("refund").unwrap(),
            event_type: None,
            session_id: None,
            order: SearchOrder::Relevance,
            after: None,
            limit: 100,
        };
        store.search_parts = 1;
        let whole = event_ids(store.search(&scan).await.unwrap());
        assert_eq!(whole.len(), 60);
        assert_ne!(whole[0], "e59", "ranked, not newest first");
        for parts in [2, 3, 7] {
            store.search_parts = parts;
            scan.limit = 100;
            scan.after = None;
            let all = event_ids(store.search(&scan).await.unwrap());
            assert_eq!(all, whole, "in {parts} parts");
            scan.limit = 9;
            for skip in [0, 9, 27, 54] {
                scan.after = Some(SearchAfter::Offset(skip));
                let page = event_ids(store.search(&scan).await.unwrap());
                let skip = skip as usize;
                assert_eq!(
                    page,
                    whole[skip..(skip + 9).min(60)],
                    "in {parts} parts from {skip}"
                );
            }
        }
    }

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
