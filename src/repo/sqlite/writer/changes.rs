//! The change log's rows, written by the writer in the transaction of the write they record
//! (see `migrations/sqlite/0005_changes.sql`). A row's `at` is when it was written, so it grows
//! with its position (the log is trimmed from the oldest by it).

use rusqlite::{Connection, params};

use super::super::{map_err, snapshot};
use crate::domain::{Session, SessionId, Timestamp};
use crate::repo::RepoError;
use crate::repo::feed::ChangeKind;

/// A change to the session itself (created, updated, ended), with the session as it is now.
pub fn session(conn: &Connection, kind: ChangeKind, session: &Session) -> Result<(), RepoError> {
    let data = snapshot::write(session)?;
    insert(conn, kind, &session.session_id, None, Some(&data))
}

/// An event stored with `seq`.
pub fn event(conn: &Connection, id: &SessionId, seq: u64) -> Result<(), RepoError> {
    insert(conn, ChangeKind::EventAppended, id, Some(seq), None)
}

/// The session's erasure: its earlier changes lose their data, and the erasure is recorded.
pub fn erased(conn: &Connection, id: &SessionId) -> Result<(), RepoError> {
    conn.prepare_cached(
        "UPDATE changes SET data = NULL WHERE session_id = ?1 AND data IS NOT NULL",
    )
    .and_then(|mut stmt| stmt.execute([id.as_str()]))
    .map_err(map_err)?;
    insert(conn, ChangeKind::SessionDeleted, id, None, None)
}

fn insert(
    conn: &Connection,
    kind: ChangeKind,
    id: &SessionId,
    seq: Option<u64>,
    data: Option<&str>,
) -> Result<(), RepoError> {
    conn.prepare_cached(
        "INSERT INTO changes (at, kind, session_id, seq, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            Timestamp::now().millis(),
            kind.as_str(),
            id.as_str(),
            seq.map(|s| s as i64),
            data
        ])
    })
    .map_err(map_err)?;
    metrics::counter!("changes_written_total").increment(1);
    Ok(())
}
