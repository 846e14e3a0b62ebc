//! The change feed read from the change log (`changes`, written by the writer in each write's
//! transaction). A position is `s` and a row's `pos`; positions are handed out in commit order,
//! so a read of one snapshot sees every change up to the newest one it sees, and nothing is
//! skipped. A session that was erased answers its changes without data.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, map_err, rows, snapshot};
use crate::domain::Timestamp;
use crate::repo::RepoError;
use crate::repo::feed::{
    ChangeData, ChangeKind, ChangeKinds, FeedChange, FeedError, FeedRead, FeedRepository, FeedStart,
};

/// How often a waiting read looks again for changes this process was not told of (another
/// process writing to the same file).
const POLL: Duration = Duration::from_millis(200);

fn position(pos: i64) -> String {
    format!("s{pos}")
}

fn parse(text: &str) -> Result<i64, FeedError> {
    text.strip_prefix('s')
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0 && !text[1..].starts_with('+'))
        .ok_or(FeedError::InvalidPosition)
}

/// The last position handed out (0 before the first change), as an SQL expression over the
/// store's schema `$schema` (`main`, or `store` where the search index's file attaches it).
/// `changes` is AUTOINCREMENT, so SQLite keeps its last position in `sqlite_sequence`, whatever
/// was pruned since.
macro_rules! changes_head {
    ($schema:literal) => {
        concat!(
            "coalesce((SELECT seq FROM ",
            $schema,
            ".sqlite_sequence WHERE name = 'changes'), 0)"
        )
    };
}
pub(crate) use changes_head;

/// The last position handed out (0 before the first change).
fn last_position(conn: &Connection) -> Result<i64, RepoError> {
    conn.prepare_cached(concat!("SELECT ", changes_head!("main")))
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(map_err)
}

fn first_position(conn: &Connection) -> Result<Option<i64>, RepoError> {
    conn.prepare_cached("SELECT min(pos) FROM changes")
        .and_then(|mut s| s.query_row([], |r| r.get::<_, Option<i64>>(0)))
        .map_err(map_err)
}

/// The most positions one read looks at (a `types` filter may match few of them).
const SCAN_LIMIT: i64 = 100_000;

/// The bit of `kind` in the filter the query takes.
const KIND_BITS: &str = "CASE c.kind WHEN 'session.created' THEN 1 WHEN 'event.appended' THEN 2 \
     WHEN 'session.updated' THEN 4 WHEN 'session.ended' THEN 8 ELSE 16 END";

fn kind_mask(kinds: ChangeKinds) -> i64 {
    ChangeKind::ALL
        .iter()
        .enumerate()
        .filter(|(_, k)| kinds.contains(**k))
        .map(|(i, _)| 1_i64 << i)
        .sum()
}

/// One page, read in one snapshot.
fn read_page(
    conn: &Connection,
    after: Option<i64>,
    limit: u32,
    kinds: ChangeKinds,
) -> Result<FeedRead, FeedError> {
    let last = last_position(conn)?;
    let first = first_position(conn)?;
    // Everything before the oldest row kept was trimmed (rows go from the oldest, and positions
    // are dense otherwise).
    let earliest = first.map_or(last, |f| f - 1);
    let after = match after {
        None => earliest,
        Some(p) if p > last => return Err(FeedError::InvalidPosition),
        Some(p) if p < earliest => {
            return Err(FeedError::Expired {
                earliest: position(earliest),
            });
        }
        Some(p) => p,
    };
    let sql = format!(
        "SELECT e.seq, e.event_id, e.type, e.payload, e.timestamp,
                c.pos, c.at, c.kind, c.session_id, c.data, s.status
         FROM changes c
         LEFT JOIN sessions s ON s.session_id = c.session_id
         LEFT JOIN events e ON c.seq IS NOT NULL AND e.session_id = c.session_id AND e.seq = c.seq
         WHERE c.pos > ?1 AND c.pos <= ?4 AND ({KIND_BITS}) & ?2 != 0
         ORDER BY c.pos LIMIT ?3"
    );
    // One read looks at a bounded stretch of the log, however rare the kinds asked for.
    let bound = last.min(after.saturating_add(SCAN_LIMIT));
    let mut stmt = conn.prepare_cached(&sql).map_err(map_err)?;
    let mut found = stmt
        .query(params![
            after,
            kind_mask(kinds),
            i64::from(limit) + 1,
            bound
        ])
        .map_err(map_err)?;
    let mut changes = Vec::new();
    let mut has_more = false;
    while let Some(row) = found.next().map_err(map_err)? {
        if changes.len() == limit as usize {
            has_more = true;
            break;
        }
        changes.push(change(row)?);
    }
    // Without more, every change up to `bound` was seen (of the kinds asked for); past a bound
    // short of `last`, there may be more.
    let next = match changes.last() {
        Some(c) if has_more => c.position.clone(),
        _ => {
            has_more |= bound < last;
            position(bound.max(after))
        }
    };
    Ok(FeedRead {
        changes,
        next,
        has_more,
    })
}

fn change(row: &rusqlite::Row<'_>) -> Result<FeedChange, RepoError> {
    let pos: i64 = row.get(5).map_err(map_err)?;
    let at: i64 = row.get(6).map_err(map_err)?;
    let kind: String = row.get(7).map_err(map_err)?;
    let kind = ChangeKind::parse(&kind).ok_or_else(|| rows::corrupt("changes.kind"))?;
    let session_id = rows::session_id(row.get::<_, String>(8).map_err(map_err)?)?;
    let data: Option<String> = row.get(9).map_err(map_err)?;
    let status: Option<String> = row.get(10).map_err(map_err)?;
    // Erased (a tombstone, or purged since): nothing but the id.
    let erased = status.as_deref().is_none_or(|s| s == "deleted");
    let has_event = row.get::<_, Option<i64>>(0).map_err(map_err)?.is_some();
    let data = match (kind, data) {
        _ if erased => ChangeData::None,
        (ChangeKind::EventAppended, _) if has_event => {
            ChangeData::Event(rows::event(&session_id, row)?)
        }
        (_, Some(text)) => ChangeData::Session(Box::new(snapshot::read(&text)?)),
        _ => ChangeData::None,
    };
    Ok(FeedChange {
        position: position(pos),
        kind,
        at: Timestamp::from_millis(at).map_err(|e| rows::corrupt(e.0))?,
        session_id,
        data,
    })
}

/// Removes the oldest changes, from the first on, up to the first one at or after `before`
/// (contiguous, so what is kept is a suffix of the log), at most `max`, and none after `indexed`,
/// which the search index has yet to follow (`super::index`).
pub fn trim(
    conn: &Connection,
    before: Timestamp,
    max: u32,
    indexed: i64,
) -> Result<u64, RepoError> {
    let removed = conn
        .prepare_cached(
            "DELETE FROM changes WHERE pos IN (SELECT pos FROM changes ORDER BY pos LIMIT ?2)
                 AND pos <= ?3
                 AND pos < coalesce((SELECT min(pos) FROM
                     (SELECT pos, at FROM changes ORDER BY pos LIMIT ?2) WHERE at >= ?1),
                     9223372036854775807)",
        )
        .and_then(|mut s| s.execute(params![before.millis(), i64::from(max), indexed]))
        .map_err(map_err)?;
    Ok(removed as u64)
}

#[async_trait]
impl FeedRepository for SqliteStore {
    async fn read(
        &self,
        start: FeedStart,
        limit: u32,
        kinds: ChangeKinds,
        wait: Duration,
        // The log is trimmed to the retention by `trim`: what is in it is served.
        _retained_since: Timestamp,
    ) -> Result<FeedRead, FeedError> {
        let after = match &start {
            FeedStart::Oldest => None,
            FeedStart::After(text) => Some(parse(text)?),
        };
        let until = Instant::now() + wait;
        let mut after = after;
        loop {
            // Listen before reading, so a commit between the read and the wait is not missed.
            let committed = self.committed.notified();
            tokio::pin!(committed);
            committed.as_mut().enable();
            let page = self
                .read(move |conn| {
                    super::snapshot(conn, |tx| Ok(read_page(tx, after, limit, kinds)))
                })
                .await??;
            let left = until.saturating_duration_since(Instant::now());
            if !page.changes.is_empty() || page.has_more || left.is_zero() {
                return Ok(page);
            }
            // Nothing yet: from where this read got to, once something is committed.
            after = Some(parse(&page.next)?);
            tokio::select! {
                _ = committed => {}
                _ = tokio::time::sleep(left.min(POLL)) => {}
            }
        }
    }

    async fn head(&self) -> Result<String, RepoError> {
        self.read(|conn| last_position(conn).map(position)).await
    }

    fn beyond(&self, position: &str, head: &str) -> bool {
        matches!((parse(position), parse(head)), (Ok(p), Ok(h)) if p > h)
    }

    async fn trim(&self, before: Timestamp, max: u32) -> Result<u64, RepoError> {
        let indexed = self.indexer.indexed();
        self.write(super::writer::Touches::Neither, move |db| {
            trim(db.conn, before, max, indexed)
        })
        .await
    }

    async fn oldest_at(&self) -> Result<Option<Timestamp>, RepoError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT at FROM changes ORDER BY pos LIMIT 1")
                .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)).optional())
                .map_err(map_err)?
                .map(|ms| Timestamp::from_millis(ms).map_err(|e| rows::corrupt(e.0)))
                .transpose()
        })
        .await
    }
}
