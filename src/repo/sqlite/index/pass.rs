//! Index passes: each follows the store's change log from the index's position, indexes the
//! events those changes stored, removes the rows of erased sessions, and moves the position on,
//! all in one transaction of the index file.

use rusqlite::{Connection, params};

use super::super::feed::changes_head;
use super::super::map_err;
use crate::domain::EventType;
use crate::domain::search::{index_line, searchable_text_in};
use crate::repo::RepoError;

/// The most changes one pass reads (and events the backfill looks at): the index's cost per event
/// falls with the size of a pass (FTS5 writes a segment per transaction), while a search that
/// brings the index up to date waits for the pass under way.
pub const PASS_SIZE: i64 = 250;

/// The most rows of an erased session one pass removes; a pass that meets a larger one stops at
/// its change, and the next goes on removing.
pub const FORGET_SIZE: i64 = 2_000;

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
pub fn pass(conn: &Connection, backfill: bool) -> Result<Progress, RepoError> {
    pass_committed_by(conn, backfill, |c| c.execute_batch("COMMIT"))
}

/// [`pass`], committed by `commit` (the tests' may fail as a full disk does).
///
/// The log is read in a read transaction of its own, ended before the index is written: a reader
/// of the store holds back the restart of its WAL, so the store is read for as short a time as
/// it takes. An event erased after that read is indexed and then removed again, by the pass that
/// meets its session's `session.deleted` change, which comes later in the log.
pub fn pass_committed_by(
    conn: &Connection,
    backfill: bool,
    commit: impl FnOnce(&Connection) -> rusqlite::Result<()>,
) -> Result<Progress, RepoError> {
    let read = super::super::snapshot(conn, read_log)?;
    let changes = read
        .changes
        .into_iter()
        .map(|(pos, kind, session, seq, event)| {
            let line = match event {
                Some((event_type, payload)) => {
                    line_of(&event_type, &payload)?.map(|l| (event_type, l))
                }
                None => None,
            };
            Ok((pos, kind, session, seq, line))
        })
        .collect::<Result<Vec<_>, RepoError>>()?;
    super::in_transaction(
        conn,
        |tx| write(tx, read.from, read.head, &changes, backfill),
        commit,
    )
}

/// A change of the log as a pass sees it: position, kind, session, seq, and for an
/// `event.appended` whose event is still stored, the event's type and text: its payload as read,
/// then its index line once folded.
type Change = (i64, String, String, i64, Option<(String, String)>);

/// What a pass read of the log: from which position, the log's head, and the changes.
struct LogRead {
    from: i64,
    head: i64,
    changes: Vec<Change>,
}

/// Every change of the store's log up to this position is indexed (the index file's own record).
pub fn position(conn: &Connection) -> Result<i64, RepoError> {
    conn.prepare_cached("SELECT pos FROM main.search_progress")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(map_err)
}

fn read_log(conn: &Connection) -> Result<LogRead, RepoError> {
    let from = position(conn)?;
    let head = head(conn)?;
    // An event's change is followed only while the event is stored: an erased one is gone.
    let mut stmt = conn
        .prepare_cached(
            "SELECT c.pos, c.kind, c.session_id, c.seq, e.type, e.payload
             FROM store.changes c LEFT JOIN store.events e
                 ON c.kind = 'event.appended' AND e.session_id = c.session_id AND e.seq = c.seq
             WHERE c.pos > ?1 ORDER BY c.pos LIMIT ?2",
        )
        .map_err(map_err)?;
    let changes = stmt
        .query_map(params![from, PASS_SIZE], |row| {
            let event_type: Option<String> = row.get(4)?;
            let event = match event_type {
                Some(t) => Some((t, row.get(5)?)),
                None => None,
            };
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get::<_, Option<i64>>(3)?.unwrap_or(0),
                event,
            ))
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(map_err)?;
    Ok(LogRead {
        from,
        head,
        changes,
    })
}

/// Writes what a pass read (`changes`, with each event's type and index line) into the index,
/// unless another indexer moved the position since the read (then it writes nothing).
fn write(
    conn: &Connection,
    from: i64,
    head: i64,
    changes: &[Change],
    backfill: bool,
) -> Result<Progress, RepoError> {
    let (mut pos, cursor_session, cursor_seq, backfilled): (i64, Option<String>, i64, bool) = conn
        .prepare_cached(
            "SELECT pos, backfill_session, backfill_seq, backfill_done FROM main.search_progress",
        )
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))))
        .map_err(map_err)?;
    if pos != from {
        return Ok(Progress {
            pos,
            head,
            backfilled,
            indexed: 0,
        });
    }
    let mut indexed = 0;
    let mut caught_up = changes.len() < PASS_SIZE as usize;
    for (at, kind, session, seq, line) in changes {
        if kind == "session.deleted" && forget(conn, session, FORGET_SIZE)? == FORGET_SIZE {
            // More rows may be left: the next pass starts at this change again.
            caught_up = false;
            break;
        }
        pos = *at;
        if let Some((event_type, line)) = line {
            indexed += u64::from(index(conn, pos, session, *seq, event_type, line)?);
        }
    }
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
        "UPDATE main.search_progress SET pos = ?1, backfill_session = ?2, backfill_seq = ?3,
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
fn head(conn: &Connection) -> Result<i64, RepoError> {
    conn.prepare_cached(concat!("SELECT ", changes_head!("store")))
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
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
            "INSERT INTO main.search_rows (id, session_id, seq, type) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (session_id, seq) DO NOTHING",
        )
        .and_then(|mut s| s.execute(params![id, session, seq, event_type]))
        .map_err(map_err)?;
    if inserted == 0 {
        return Ok(false);
    }
    conn.prepare_cached("INSERT INTO main.search_text (rowid, terms) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![id, line]))
        .map_err(map_err)?;
    Ok(true)
}

/// The backfill of events whose changes the log no longer holds (a new index file over an older
/// store) or never held (stored before migration 0005): they have no search row. The
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
    // Events that have a row are skipped without reading their text, and so are those of erased
    // sessions (their `session.deleted` change may have been followed already).
    const COLUMNS: &str = "SELECT e.session_id, e.seq, e.type,
             CASE WHEN r.id IS NULL AND s.status <> 'deleted' THEN e.payload END
         FROM store.events e
         JOIN store.sessions s ON s.session_id = e.session_id
         LEFT JOIN main.search_rows r ON r.session_id = e.session_id AND r.seq = e.seq";
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
        .prepare_cached("SELECT min(0, coalesce(min(id), 0)) FROM main.search_rows")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(map_err)?;
    let mut indexed = 0;
    for (i, ((session, seq), event_type, line)) in wanted.iter().enumerate().rev() {
        let id = lowest - 1 - i as i64;
        indexed += u64::from(index(conn, id, session, *seq, event_type, line)?);
    }
    Ok((last, read < PASS_SIZE, indexed))
}

/// Removes up to `max` index rows of the erased session's events; how many.
fn forget(conn: &Connection, session: &str, max: i64) -> Result<i64, RepoError> {
    let ids = conn
        .prepare_cached("SELECT id FROM main.search_rows WHERE session_id = ?1 LIMIT ?2")
        .and_then(|mut stmt| {
            stmt.query_map(params![session, max], |r| r.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(map_err)?;
    for id in &ids {
        conn.prepare_cached("DELETE FROM main.search_text WHERE rowid = ?1")
            .and_then(|mut stmt| stmt.execute([id]))
            .map_err(map_err)?;
        conn.prepare_cached("DELETE FROM main.search_rows WHERE id = ?1")
            .and_then(|mut stmt| stmt.execute([id]))
            .map_err(map_err)?;
    }
    Ok(ids.len() as i64)
}
