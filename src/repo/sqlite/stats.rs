//! Call analytics on the embedded store. Ended calls are read from `session_stats` (migration
//! 0009, kept by the writer), one row per 15-minute slot and dimensions, for every slot that lies
//! wholly inside one step; the calls of a slot that a step's edge cuts, the open calls, and every
//! call when grouping by a metadata key are read from `sessions` itself (through
//! `sessions_by_status_start`). All from one snapshot.

use std::collections::BTreeSet;

use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::{SqliteStore, map_err, rows, snapshot};
use crate::domain::stats::{Cells, Dims, GroupBy, SLOT_MILLIS, Tally, duration_seconds, step_of};
use crate::domain::{Status, Timestamp};
use crate::repo::RepoError;
use crate::repo::stats::{StatsRepository, StatsScan};

#[async_trait]
impl StatsRepository for SqliteStore {
    async fn tally(&self, scan: &StatsScan) -> Result<Vec<crate::domain::stats::Cell>, RepoError> {
        let scan = scan.clone();
        self.read(move |conn| snapshot(conn, |tx| count(tx, &scan)))
            .await
    }

    async fn active_now(&self) -> Result<u64, RepoError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT count(*) FROM sessions WHERE status = 'initiated' OR status = 'active'",
            )
            .and_then(|mut stmt| stmt.query_row([], |r| r.get::<_, i64>(0)))
            .map_err(map_err)
            .map(|n| n.max(0) as u64)
        })
        .await
    }
}

fn count(
    conn: &Connection,
    scan: &StatsScan,
) -> Result<Vec<crate::domain::stats::Cell>, RepoError> {
    let (Some(&first), Some(&last)) = (scan.bounds.first(), scan.bounds.last()) else {
        return Ok(Vec::new());
    };
    let mut cells = Cells::new(scan.group_by.as_ref(), scan.bounds.len() - 1);
    let metadata_key = match &scan.group_by {
        Some(GroupBy::Metadata(key)) => Some(format!("$.\"{key}\"")),
        _ => None,
    };
    if metadata_key.is_some() {
        // The tallies do not know metadata: every call is read.
        for status in Status::ALL {
            calls(
                conn,
                &scan.bounds,
                status,
                (first, last),
                metadata_key.as_deref(),
                &mut cells,
            )?;
        }
        return Ok(cells.into_vec());
    }
    for status in [Status::Initiated, Status::Active] {
        calls(conn, &scan.bounds, status, (first, last), None, &mut cells)?;
    }
    // Slots a step's edge cuts (an edge off the 15-minute grid) are read call by call.
    let cut: BTreeSet<i64> = scan
        .bounds
        .iter()
        .filter(|b| b.millis().rem_euclid(SLOT_MILLIS) != 0)
        .map(|b| b.millis().div_euclid(SLOT_MILLIS))
        .collect();
    for &slot in &cut {
        let lo = Timestamp::from_millis((slot * SLOT_MILLIS).max(first.millis()))
            .map_err(|e| RepoError::Backend(e.0.into()))?;
        let hi = Timestamp::from_millis(((slot + 1) * SLOT_MILLIS).min(last.millis()))
            .map_err(|e| RepoError::Backend(e.0.into()))?;
        for status in [Status::Completed, Status::Failed] {
            calls(conn, &scan.bounds, status, (lo, hi), None, &mut cells)?;
        }
    }
    tallies(conn, &scan.bounds, &cut, &mut cells)?;
    Ok(cells.into_vec())
}

/// Adds the calls of `status` started in `[range.0, range.1)`, one by one.
fn calls(
    conn: &Connection,
    bounds: &[Timestamp],
    status: Status,
    range: (Timestamp, Timestamp),
    metadata_path: Option<&str>,
    cells: &mut Cells,
) -> Result<(), RepoError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT started_at, ended_at, ended_reason, language, event_count,
                    CASE WHEN ?4 IS NOT NULL AND json_type(metadata, ?4) = 'text'
                         THEN json_extract(metadata, ?4) END
             FROM sessions WHERE status = ?1 AND started_at >= ?2 AND started_at < ?3",
        )
        .map_err(map_err)?;
    let mut found = stmt
        .query(params![
            status.as_str(),
            range.0.millis(),
            range.1.millis(),
            metadata_path
        ])
        .map_err(map_err)?;
    while let Some(row) = found.next().map_err(map_err)? {
        let started_at = rows::timestamp(row.get(0).map_err(map_err)?)?;
        let ended_at: Option<i64> = row.get(1).map_err(map_err)?;
        let events: i64 = row.get(4).map_err(map_err)?;
        let events = u64::try_from(events).map_err(|_| rows::corrupt("event_count"))?;
        let Some(step) = step_of(bounds, started_at) else {
            continue;
        };
        let tally = match ended_at {
            Some(ended) => Tally::ended(
                duration_seconds(started_at, rows::timestamp(ended)?),
                1,
                events,
            ),
            None => Tally::open(1, events),
        };
        let dims = Dims {
            status,
            ended_reason: row.get(2).map_err(map_err)?,
            language: row.get(3).map_err(map_err)?,
            metadata: row.get(5).map_err(map_err)?,
        };
        cells.add(step, &dims, &tally);
    }
    Ok(())
}

/// Adds the ended calls of every slot wholly inside one step, from `session_stats`.
fn tallies(
    conn: &Connection,
    bounds: &[Timestamp],
    cut: &BTreeSet<i64>,
    cells: &mut Cells,
) -> Result<(), RepoError> {
    let (Some(first), Some(last)) = (bounds.first(), bounds.last()) else {
        return Ok(());
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT slot, status, ended_reason, language, calls, events, durations
             FROM session_stats WHERE slot >= ?1 AND slot < ?2",
        )
        .map_err(map_err)?;
    let mut found = stmt
        .query(params![
            first.millis().div_euclid(SLOT_MILLIS),
            (last.millis() + SLOT_MILLIS - 1).div_euclid(SLOT_MILLIS)
        ])
        .map_err(map_err)?;
    while let Some(row) = found.next().map_err(map_err)? {
        let slot: i64 = row.get(0).map_err(map_err)?;
        if cut.contains(&slot) {
            continue;
        }
        let start = Timestamp::from_millis(slot * SLOT_MILLIS).map_err(|e| rows::corrupt(e.0))?;
        let Some(step) = step_of(bounds, start) else {
            continue;
        };
        let status: String = row.get(1).map_err(map_err)?;
        let reason: String = row.get(2).map_err(map_err)?;
        let calls: i64 = row.get(4).map_err(map_err)?;
        let events: i64 = row.get(5).map_err(map_err)?;
        let dims = Dims {
            status: status
                .parse()
                .map_err(|_| rows::corrupt("session_stats.status"))?,
            ended_reason: (!reason.is_empty()).then_some(reason),
            language: row.get(3).map_err(map_err)?,
            metadata: None,
        };
        let tally = cells.tally(step, &dims);
        tally.calls += u64::try_from(calls).map_err(|_| rows::corrupt("calls"))?;
        tally.events += u64::try_from(events).map_err(|_| rows::corrupt("events"))?;
        let durations = row.get_ref(6).map_err(map_err)?.as_str();
        let durations = durations.map_err(|_| rows::corrupt("session_stats.durations"))?;
        add_durations(durations, tally).ok_or_else(|| rows::corrupt("session_stats.durations"))?;
    }
    Ok(())
}

/// Adds `durations` (`{"<seconds>":calls,…}`, minified, as SQLite's JSON functions write it)
/// into `tally`, byte by byte, without building a JSON tree: this is most of what a long range
/// reads.
fn add_durations(text: &str, tally: &mut Tally) -> Option<()> {
    let mut rest = text.as_bytes().strip_prefix(b"{")?.strip_suffix(b"}")?;
    while !rest.is_empty() {
        let (seconds, after) = number(rest.strip_prefix(b"\"")?)?;
        let (calls, after) = number(after.strip_prefix(b"\":")?)?;
        tally.add_durations(seconds, calls);
        rest = match after {
            [] => after,
            [b',', more @ ..] if !more.is_empty() => more,
            _ => return None,
        };
    }
    Some(())
}

/// The decimal number `bytes` starts with, and what follows it.
fn number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    let value = std::str::from_utf8(&bytes[..digits]).ok()?.parse().ok()?;
    Some((value, &bytes[digits..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_sqlite_writes_them_are_read_back() {
        let conn = Connection::open_in_memory().unwrap();
        let text: String = conn
            .query_row(
                "SELECT json_remove(json_set(json_object('61', 1), '$.\"5\"', 2, '$.\"7\"', 1),
                                    '$.\"7\"')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let mut tally = Tally::default();
        add_durations(&text, &mut tally).unwrap();
        add_durations("{}", &mut tally).unwrap();
        assert_eq!(tally.durations().collect::<Vec<_>>(), [(5, 2), (61, 1)]);
        for bad in [
            "",
            "{",
            "{\"a\":1}",
            "{\"1\":x}",
            "[1]",
            "{\"1\":2,}",
            "{\"1\":2 }",
        ] {
            assert!(add_durations(bad, &mut Tally::default()).is_none(), "{bad}");
        }
    }
}
