//! Keeps `session_stats` (migration 0009) in step with the sessions, inside the command's own
//! transaction: a call is counted when it ends and taken out when an ended call is erased, so a
//! failed COMMIT leaves neither the session's change nor its count.

use rusqlite::{Connection, params};

use super::super::map_err;
use crate::domain::Timestamp;
use crate::domain::stats::{duration_seconds, slot};
use crate::repo::RepoError;

/// An ended call as `session_stats` counts it.
pub struct Counted<'a> {
    pub started_at: Timestamp,
    pub ended_at: Timestamp,
    /// `completed` or `failed`.
    pub status: &'a str,
    pub ended_reason: Option<&'a str>,
    pub language: &'a str,
    pub events: u64,
}

impl Counted<'_> {
    fn key(&self) -> (i64, &str, &str, &str) {
        (
            slot(self.started_at),
            self.status,
            self.ended_reason.unwrap_or(""),
            self.language,
        )
    }

    /// The JSON path of its duration's entry in `durations`.
    fn path(&self) -> String {
        format!("$.\"{}\"", duration_seconds(self.started_at, self.ended_at))
    }
}

/// Counts a call that has just ended.
pub fn count(conn: &Connection, call: &Counted) -> Result<(), RepoError> {
    let (slot, status, reason, language) = call.key();
    let seconds = duration_seconds(call.started_at, call.ended_at).to_string();
    conn.prepare_cached(
        "INSERT INTO session_stats (slot, status, ended_reason, language, calls, events, durations)
         VALUES (?1, ?2, ?3, ?4, 1, ?5, json_object(?6, 1))
         ON CONFLICT (slot, status, ended_reason, language) DO UPDATE SET
             calls = calls + 1, events = events + excluded.events,
             durations = json_set(durations, ?7, coalesce(json_extract(durations, ?7), 0) + 1)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            slot,
            status,
            reason,
            language,
            call.events,
            seconds,
            call.path()
        ])
    })
    .map_err(map_err)?;
    Ok(())
}

/// Takes an ended call out of the counts, when it is erased.
pub fn uncount(conn: &Connection, call: &Counted) -> Result<(), RepoError> {
    let (slot, status, reason, language) = call.key();
    let changed = conn
        .prepare_cached(
            "UPDATE session_stats SET calls = calls - 1, events = events - ?5,
                 durations = CASE WHEN json_extract(durations, ?6) > 1
                     THEN json_set(durations, ?6, json_extract(durations, ?6) - 1)
                     ELSE json_remove(durations, ?6) END
             WHERE slot = ?1 AND status = ?2 AND ended_reason = ?3 AND language = ?4",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                slot,
                status,
                reason,
                language,
                call.events,
                call.path()
            ])
        })
        .map_err(map_err)?;
    if changed == 0 {
        // Only a database edited by hand (or by a binary older than migration 0009 writing beside
        // this one) gets here; the erasure itself must still happen.
        tracing::warn!("an erased call was not in session_stats; GET /stats may count it");
        return Ok(());
    }
    conn.prepare_cached(
        "DELETE FROM session_stats
         WHERE slot = ?1 AND status = ?2 AND ended_reason = ?3 AND language = ?4 AND calls = 0",
    )
    .and_then(|mut stmt| stmt.execute(params![slot, status, reason, language]))
    .map_err(map_err)?;
    Ok(())
}
