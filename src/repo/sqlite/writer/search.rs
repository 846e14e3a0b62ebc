//! The search index's rows, written in the transaction of the write they follow.

use rusqlite::{Connection, params};

use super::super::map_err;
use crate::domain::{Event, SessionId};
use crate::repo::RepoError;

/// Indexes a stored event under `line`, its folded terms (`domain::search::index_line`, made
/// off the writer).
pub fn index(conn: &Connection, event: &Event, line: &str) -> Result<(), RepoError> {
    conn.prepare_cached("INSERT INTO search_rows (session_id, seq, type) VALUES (?1, ?2, ?3)")
        .and_then(|mut stmt| {
            stmt.execute(params![
                event.session_id.as_str(),
                event.seq as i64,
                event.event_type.as_str()
            ])
        })
        .map_err(map_err)?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached("INSERT INTO search_text (rowid, terms) VALUES (?1, ?2)")
        .and_then(|mut stmt| stmt.execute(params![id, line]))
        .map_err(map_err)?;
    Ok(())
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
