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
    /// Whether events stored before migration 0006 are all indexed.
    pub backfilled: bool,
    /// Events this pass indexed.
    pub indexed: u64,
}

/// One index pass: the events stored by the next [`PASS_SIZE`] changes past the index's
/// position, then, with `backfill` and if that reached the log's end, the next chunk of the
/// backfill. Only what this transaction commits moves the position, and an event already indexed
/// is skipped, so a pass run again after a failure indexes every event once.
pub fn pass(db: &mut Db, backfill: bool) -> Result<Progress, RepoError> {
    let conn = db.conn;
    let (mut pos, cursor_session, cursor_seq, backfilled): (i64, Option<String>, i64, bool) = conn
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
            let line = line_of(&event_type, &row.get::<_, String>(4).map_err(map_err)?)?;
            if let Some(line) = line {
                let session: String = row.get(1).map_err(map_err)?;
                let seq: i64 = row.get(2).map_err(map_err)?;
                indexed += u64::from(index(conn, pos, &session, seq, &event_type, &line)?);
            }
        }
    }
    let caught_up = read < PASS_SIZE;
    if caught_up {
        pos = pos.max(head);
    }
    let mut cursor = (cursor_session, cursor_seq, backfilled);
    if backfill && caught_up && !backfilled {
        let (next, done, count) = backfill_chunk(conn, cursor.0.as_deref().map(|s| (s, cursor.1)))?;
        cursor = (
            next.as_ref().map(|n| n.0.clone()),
            next.map_or(0, |n| n.1),
            done,
        );
        indexed += count;
    }
    conn.prepare_cached(
        "UPDATE search_progress SET pos = ?1, backfill_session = ?2, backfill_seq = ?3,
             backfill_done = ?4",
    )
    .and_then(|mut s| s.execute(params![pos, cursor.0, cursor.1, cursor.2]))
    .map_err(map_err)?;
    Ok(Progress {
        pos,
        head,
        backfilled: cursor.2,
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

/// The index line of a stored event, if it is searchable.
fn line_of(event_type: &str, payload: &str) -> Result<Option<String>, RepoError> {
    let kind =
        EventType::parse(event_type).map_err(|_| super::super::rows::corrupt("event type"))?;
    Ok(searchable_text_in(kind, payload).map(|text| index_line(&text)))
}

/// Indexes the stored event under `id` unless it is indexed already; whether it did. An `id`
/// taken by another event is an error, not a skip: nothing is dropped silently.
fn index(
    conn: &Connection,
    id: i64,
    session: &str,
    seq: i64,
    event_type: &str,
    line: &str,
) -> Result<bool, RepoError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO search_rows (id, session_id, seq, type) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (session_id, seq) DO NOTHING",
        )
        .and_then(|mut s| s.execute(params![id, session, seq, event_type]))
        .map_err(map_err)?;
    if inserted == 0 {
        return Ok(false);
    }
    conn.prepare_cached("INSERT INTO search_text (rowid, terms) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![id, line]))
        .map_err(map_err)?;
    Ok(true)
}

/// The backfill of events stored before migration 0006 (they have no search row): the
/// [`PASS_SIZE`] events before `before` (from the last one when `None`), walked down in
/// primary-key order, so that a session's later events get higher ids; every id below all
/// others, so backfilled events come after every other in newest order. Runs only once the log is
/// indexed to its end, so an event it finds without a row is one the log will never index.
/// Returns where to go on from, whether it reached the first event, and the count.
#[allow(clippy::type_complexity)]
fn backfill_chunk(
    conn: &Connection,
    before: Option<(&str, i64)>,
) -> Result<(Option<(String, i64)>, bool, u64), RepoError> {
    // Events that have a row are skipped without reading their text.
    const COLUMNS: &str = "SELECT e.session_id, e.seq, e.type,
             CASE WHEN r.id IS NULL THEN e.payload END
         FROM events e LEFT JOIN search_rows r ON r.session_id = e.session_id AND r.seq = e.seq";
    let sql = match before {
        None => format!("{COLUMNS} ORDER BY e.session_id DESC, e.seq DESC LIMIT ?3"),
        Some(_) => format!(
            "{COLUMNS} WHERE (e.session_id, e.seq) < (?1, ?2)
             ORDER BY e.session_id DESC, e.seq DESC LIMIT ?3"
        ),
    };
    let (session, seq) = before.unwrap_or(("", 0));
    let mut stmt = conn.prepare_cached(&sql).map_err(map_err)?;
    let mut rows = stmt
        .query(params![session, seq, PASS_SIZE])
        .map_err(map_err)?;
    let (mut last, mut read, mut wanted) = (None, 0, Vec::new());
    while let Some(row) = rows.next().map_err(map_err)? {
        read += 1;
        let at: (String, i64) = (row.get(0).map_err(map_err)?, row.get(1).map_err(map_err)?);
        let payload: Option<String> = row.get(3).map_err(map_err)?;
        if let Some(payload) = payload {
            let event_type: String = row.get(2).map_err(map_err)?;
            if let Some(line) = line_of(&event_type, &payload)? {
                wanted.push((at.clone(), event_type, line));
            }
        }
        last = Some(at);
    }
    drop(rows);
    // Ids below every row's, the first found (the latest event) highest. They are inserted lowest
    // first: FTS5 writes out what it holds whenever a rowid comes below the one before.
    let lowest: i64 = conn
        .prepare_cached("SELECT min(0, coalesce(min(id), 0)) FROM search_rows")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(map_err)?;
    let mut indexed = 0;
    for (i, ((session, seq), event_type, line)) in wanted.iter().enumerate().rev() {
        let id = lowest - 1 - i as i64;
        indexed += u64::from(index(conn, id, session, *seq, event_type, line)?);
    }
    Ok((last, read < PASS_SIZE, indexed))
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
