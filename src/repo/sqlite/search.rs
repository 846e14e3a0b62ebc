//! Transcript search on the embedded store: FTS5 over the folded terms of each searchable event
//! (`search_text`, see migration 0006), joined to the event and its session in one snapshot.

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
    ($score:literal, $order:literal) => {
        concat!(
            "WITH found AS (
                 SELECT r.id, r.session_id, r.seq, ", $score, " AS score
                 FROM search_text f
                 JOIN search_rows r ON r.id = f.rowid
                 JOIN sessions s ON s.session_id = r.session_id
                 WHERE search_text MATCH ?1 AND s.status <> 'deleted'
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
    "-f.rowid",
    "AND f.rowid < ?5 ORDER BY f.rowid DESC LIMIT ?4"
);
const RELEVANCE: &str = candidates!(
    "bm25(search_text)",
    "ORDER BY score, f.rowid DESC LIMIT ?4 OFFSET ?5"
);

#[async_trait]
impl SearchRepository for SqliteStore {
    async fn search(&self, scan: &SearchScan) -> Result<Vec<Candidate>, RepoError> {
        let scan = scan.clone();
        self.read(move |conn| snapshot(conn, |tx| run(tx, &scan)))
            .await
    }
}

fn run(conn: &Connection, scan: &SearchScan) -> Result<Vec<Candidate>, RepoError> {
    let (sql, bound, limit) = match (scan.order, scan.after) {
        (SearchOrder::Newest, after) => {
            let before = match after {
                Some(SearchAfter::Position(p)) => i64::try_from(p).unwrap_or(i64::MAX),
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
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    let mut found = stmt
        .query(params![
            scan.query.fts5(),
            scan.event_type.map(|t| t.as_str()),
            scan.session_id.as_ref().map(SessionId::as_str),
            i64::from(limit),
            bound,
        ])
        .map_err(map_err)?;
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
            position: u128::try_from(position).map_err(|_| rows::corrupt("search row id"))?,
        });
    }
    Ok(candidates)
}
