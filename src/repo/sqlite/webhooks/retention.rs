//! Retention of the webhook log on the embedded store: finished deliveries of old messages, then
//! the old messages no delivery names.

use rusqlite::{Connection, params};

use super::super::map_err;
use crate::domain::Timestamp;
use crate::repo::RepoError;

/// Retention: finished deliveries of old messages. Old messages are found by their `created_at`
/// index and their deliveries by primary key, endpoint by endpoint (migration 0012); `CROSS JOIN`
/// keeps SQLite from reading every delivery of an endpoint instead (see the test below).
const TRIM_DELIVERIES: &str = "DELETE FROM webhook_deliveries WHERE (endpoint_id, ord) IN
    (SELECT d.endpoint_id, d.ord FROM webhook_messages m
     CROSS JOIN webhook_deliveries d
       ON d.endpoint_id IN (SELECT id FROM webhook_endpoints) AND d.ord = m.ord
     WHERE m.created_at < ?1 AND d.status <> 'pending'
     ORDER BY m.created_at LIMIT ?2)";

/// Retention: old messages no delivery names any more.
const TRIM_MESSAGES: &str = "DELETE FROM webhook_messages WHERE ord IN
    (SELECT m.ord FROM webhook_messages m
     WHERE m.created_at < ?1
       AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                       WHERE d.endpoint_id IN (SELECT id FROM webhook_endpoints)
                         AND d.ord = m.ord)
     ORDER BY m.created_at LIMIT ?2)";

/// Removes up to `max` finished deliveries of messages made before `before`, then up to `max`
/// such messages that no delivery names; how many deliveries it removed.
pub(super) fn trim(conn: &Connection, before: Timestamp, max: u32) -> Result<u64, RepoError> {
    let removed = conn
        .prepare_cached(TRIM_DELIVERIES)
        .and_then(|mut s| s.execute(params![before.millis(), i64::from(max)]))
        .map_err(map_err)?;
    conn.prepare_cached(TRIM_MESSAGES)
        .and_then(|mut s| s.execute(params![before.millis(), i64::from(max)]))
        .map_err(map_err)?;
    Ok(removed as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Retention runs every few seconds over tables of millions of rows: each of its statements
    /// must reach rows through an index, never by reading a whole table.
    #[test]
    fn retention_reads_old_messages_by_index_and_their_deliveries_by_key() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::super::migrations::migrate(&mut conn).unwrap();
        conn.execute_batch(
            "INSERT INTO webhook_endpoints VALUES ('a', 1, 1, '{}'), ('b', 1, 1, '{}');
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
             INSERT INTO webhook_messages SELECT i, 'm', 'k', 's', 'b', i FROM n;
             INSERT INTO webhook_deliveries (endpoint_id, ord, status, created_at)
                 SELECT 'a', ord, 'succeeded', created_at FROM webhook_messages;
             ANALYZE;",
        )
        .unwrap();
        for sql in [TRIM_DELIVERIES, TRIM_MESSAGES] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(params![250, 10], |r| r.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let scans: Vec<&String> = plan.iter().filter(|s| s.starts_with("SCAN")).collect();
            assert!(scans.is_empty(), "{sql}\nreads a whole table: {plan:#?}");
            assert!(
                plan.iter().any(|s| s.contains("webhook_messages_created")),
                "{plan:#?}"
            );
            assert!(
                plan.iter()
                    .any(|s| s.starts_with("SEARCH d USING PRIMARY KEY (endpoint_id=? AND ord=?)")),
                "{plan:#?}"
            );
        }
    }
}
