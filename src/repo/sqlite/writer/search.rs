//! The search index's writes: index passes, which follow the change log after the writes they
//! index (see `migrations/sqlite/0007_search_after_write.sql`), and erasure's removals.

use rusqlite::{Connection, OptionalExtension, params};

use super::super::map_err;
use super::Db;
use crate::domain::search::{index_line, searchable_text_in};
use crate::domain::{EventType, SessionId};
use crate::repo::RepoError;

/// The most changes one pass reads (and events the backfill looks at): the index's cost per event
/// falls with the size of a pass (FTS5 writes a segment per transaction), while the appends
/// committed with it wait for it.
pub const PASS_SIZE: i64 = 250;

/// Where the index stands after a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Every change up to this position is indexed.
    pub pos: i64,
    /// The last change's position when the pass ran.
    pub head: i64,
    /// Whether events stored before the log (migration 0006) are all indexed.
    pub backfilled: bool,
    /// Events this pass indexed.
    pub indexed: u64,
}

/// One index pass: the events stored by the next [`PASS_SIZE`] changes past the index's
/// position, then, if that reached the log's end, the next chunk of the backfill. Only what this
/// transaction commits moves the position, and an event already indexed is skipped, so a pass
/// run again after a failure indexes every event once.
pub fn pass(db: &mut Db) -> Result<Progress, RepoError> {
    let conn = db.conn;
    let (mut pos, cursor_session, cursor_seq, backfilled): (i64, String, i64, bool) = conn
        .prepare_cached(
            "SELECT pos, backfill_session, backfill_seq, backfill_done FROM search_progress",
        )
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))))
        .map_err(map_err)?;
    let head = head(conn)?;
    let mut indexed = 0;
    let mut read = 0;
    {
        // An event's change is followed only while the event is stored: an erased one is gone.
        let mut stmt = conn
            .prepare_cached(
                "SELECT c.pos, c.session_id, c.seq, e.type, e.payload
                 FROM changes c LEFT JOIN events e
                     ON c.kind = 'event.appended' AND e.session_id = c.session_id AND e.seq = c.seq
                 WHERE c.pos > ?1 ORDER BY c.pos LIMIT ?2",
            )
            .map_err(map_err)?;
        let mut rows = stmt.query(params![pos, PASS_SIZE]).map_err(map_err)?;
        while let Some(row) = rows.next().map_err(map_err)? {
            read += 1;
            pos = row.get(0).map_err(map_err)?;
            let event_type: Option<String> = row.get(3).map_err(map_err)?;
            let Some(event_type) = event_type else {
                continue;
            };
            let payload: String = row.get(4).map_err(map_err)?;
            let session: String = row.get(1).map_err(map_err)?;
            let seq: i64 = row.get(2).map_err(map_err)?;
            indexed += u64::from(index(conn, pos, &session, seq, &event_type, &payload)?);
        }
    }
    let caught_up = read < PASS_SIZE;
    if caught_up {
        pos = pos.max(head);
    }
    let mut backfill = (cursor_session, cursor_seq, backfilled);
    if caught_up && !backfilled {
        let (session, seq, done, count) = backfill_chunk(conn, &backfill.0, backfill.1)?;
        backfill = (session, seq, done);
        indexed += count;
    }
    conn.prepare_cached(
        "UPDATE search_progress SET pos = ?1, backfill_session = ?2, backfill_seq = ?3,
             backfill_done = ?4",
    )
    .and_then(|mut s| s.execute(params![pos, backfill.0, backfill.1, backfill.2]))
    .map_err(map_err)?;
    Ok(Progress {
        pos,
        head,
        backfilled: backfill.2,
        indexed,
    })
}

/// The position of the last change ever written (0 before the first).
pub fn head(conn: &Connection) -> Result<i64, RepoError> {
    conn.prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")
        .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
        .map(Option::unwrap_or_default)
        .map_err(map_err)
}

/// Indexes the stored event under `id`, if it is searchable and not indexed yet; whether it did.
fn index(
    conn: &Connection,
    id: i64,
    session: &str,
    seq: i64,
    event_type: &str,
    payload: &str,
) -> Result<bool, RepoError> {
    let Ok(kind) = EventType::parse(event_type) else {
        return Err(super::super::rows::corrupt("event type"));
    };
    let Some(text) = searchable_text_in(kind, payload) else {
        return Ok(false);
    };
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO search_rows (id, session_id, seq, type) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![id, session, seq, event_type]))
        .map_err(map_err)?;
    if inserted == 0 {
        return Ok(false);
    }
    conn.prepare_cached("INSERT INTO search_text (rowid, terms) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![id, index_line(&text)]))
        .map_err(map_err)?;
    Ok(true)
}

/// Indexes the events after `(session, seq)` in primary-key order that have no search row (stored
/// before migration 0006), at most [`PASS_SIZE`] looked at, under ids below every other row's.
/// Runs only once the log is indexed to its end, so every event it finds without a row is one
/// the log will never index. Returns the new cursor, whether it reached the end, and the count.
fn backfill_chunk(
    conn: &Connection,
    session: &str,
    seq: i64,
) -> Result<(String, i64, bool, u64), RepoError> {
    let mut next_id: i64 = conn
        .prepare_cached("SELECT min(0, coalesce(min(id), 0)) - 1 FROM search_rows")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(map_err)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT session_id, seq, type, payload FROM events
             WHERE (session_id, seq) > (?1, ?2) ORDER BY session_id, seq LIMIT ?3",
        )
        .map_err(map_err)?;
    let mut rows = stmt
        .query(params![session, seq, PASS_SIZE])
        .map_err(map_err)?;
    let (mut cursor, mut read, mut indexed) = ((session.to_owned(), seq), 0, 0);
    while let Some(row) = rows.next().map_err(map_err)? {
        read += 1;
        cursor = (row.get(0).map_err(map_err)?, row.get(1).map_err(map_err)?);
        let event_type: String = row.get(2).map_err(map_err)?;
        let payload: String = row.get(3).map_err(map_err)?;
        if index(conn, next_id, &cursor.0, cursor.1, &event_type, &payload)? {
            next_id -= 1;
            indexed += 1;
        }
    }
    Ok((cursor.0, cursor.1, read < PASS_SIZE, indexed))
}

/// Removes the index rows of the session's events up to `seq` (an erasure's chunk).
pub fn forget(conn: &Connection, id: &SessionId, upto_seq: i64) -> Result<(), RepoError> {
    conn.prepare_cached(
        "DELETE FROM search_text WHERE rowid IN
             (SELECT id FROM search_rows WHERE session_id = ?1 AND seq <= ?2)",
    )
    .and_then(|mut stmt| stmt.execute(params![id.as_str(), upto_seq]))
    .map_err(map_err)?;
    conn.prepare_cached("DELETE FROM search_rows WHERE session_id = ?1 AND seq <= ?2")
        .and_then(|mut stmt| stmt.execute(params![id.as_str(), upto_seq]))
        .map_err(map_err)?;
    Ok(())
}
