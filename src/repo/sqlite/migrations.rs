//! Versioned SQL from `migrations/sqlite/`, compiled in, applied in order at startup and recorded in
//! `schema_migrations`, each in its own transaction, so an existing database upgrades in place.

use rusqlite::{Connection, params};

/// `(version, name, sql)`; append new files here, never edit an applied one.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "create_sessions_and_events",
        include_str!("../../../migrations/sqlite/0001_create_sessions_and_events.sql"),
    ),
    (
        2,
        "session_lifecycle",
        include_str!("../../../migrations/sqlite/0002_session_lifecycle.sql"),
    ),
    (
        3,
        "metadata_revision",
        include_str!("../../../migrations/sqlite/0003_metadata_revision.sql"),
    ),
    (
        4,
        "session_redact",
        include_str!("../../../migrations/sqlite/0004_session_redact.sql"),
    ),
    (
        5,
        "changes",
        include_str!("../../../migrations/sqlite/0005_changes.sql"),
    ),
    (
        6,
        "search",
        include_str!("../../../migrations/sqlite/0006_search.sql"),
    ),
    (
        7,
        "search_after_write",
        include_str!("../../../migrations/sqlite/0007_search_after_write.sql"),
    ),
    (
        8,
        "checks_without_lists",
        include_str!("../../../migrations/sqlite/0008_checks_without_lists.sql"),
    ),
    (
        9,
        "session_stats",
        include_str!("../../../migrations/sqlite/0009_session_stats.sql"),
    ),
    (
        10,
        "webhooks",
        include_str!("../../../migrations/sqlite/0010_webhooks.sql"),
    ),
    (
        11,
        "search_in_its_own_file",
        include_str!("../../../migrations/sqlite/0011_search_in_its_own_file.sql"),
    ),
    (
        12,
        "webhook_deliveries_lean",
        include_str!("../../../migrations/sqlite/0012_webhook_deliveries_lean.sql"),
    ),
];

/// Applies the migrations this database lacks and returns the names of those it applied.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<Vec<String>> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER NOT NULL PRIMARY KEY,
             name       TEXT    NOT NULL,
             applied_at INTEGER NOT NULL
         )",
    )?;
    let mut applied = Vec::new();
    for &(version, name, sql) in MIGRATIONS {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let done: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [version],
            |row| row.get(0),
        )?;
        if !done {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                params![version, name, crate::domain::Timestamp::now().millis()],
            )?;
            applied.push(format!("{version:04}_{name}"));
        }
        tx.commit()?;
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::{MIGRATIONS, migrate};

    /// The opcodes SQLite compiles `sql` to.
    fn opcodes(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
        stmt.query_map([], |r| r.get::<_, String>(1))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// An append writes an event and its change: neither insert may build a temporary index (an
    /// IN list in a CHECK does, on every row, and cost a third of the writer's instructions).
    #[test]
    fn an_append_builds_no_temporary_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        for sql in [
            "INSERT INTO events (session_id, seq, event_id, type, payload, timestamp)
             VALUES ('s', 1, 'e', 'system', '{}', 0) ON CONFLICT (session_id, event_id) DO NOTHING",
            "INSERT INTO changes (at, kind, session_id, seq, data)
             VALUES (0, 'event.appended', 's', 1, NULL)",
        ] {
            let ops = opcodes(&conn, sql);
            assert!(
                !ops.iter().any(|op| op == "OpenEphemeral"),
                "{sql}: {ops:?}"
            );
        }
    }

    /// Migration 0008 rebuilds `events` and `changes`: what they held is kept, their rules still
    /// refuse what they refused, and no change position is handed out twice, also when the log
    /// was trimmed empty before the upgrade.
    #[test]
    fn rebuilt_tables_keep_their_rows_their_rules_and_the_log_position() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (
                 version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL,
                 applied_at INTEGER NOT NULL)",
        )
        .unwrap();
        for &(version, name, sql) in &MIGRATIONS[..7] {
            conn.execute_batch(sql).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?1, ?2, 0)",
                rusqlite::params![version, name],
            )
            .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO events VALUES ('s', 1, 'e1', 'user_speech', '{\"text\":\"hi\"}', 5);
             INSERT INTO events VALUES ('s', 2, 'e2', 'system', '{}', 6);
             INSERT INTO changes (at, kind, session_id, seq) VALUES (1, 'event.appended', 's', 1);
             INSERT INTO changes (at, kind, session_id, seq) VALUES (2, 'event.appended', 's', 2);
             DELETE FROM changes;",
        )
        .unwrap();
        assert_eq!(
            migrate(&mut conn).unwrap(),
            [
                "0008_checks_without_lists",
                "0009_session_stats",
                "0010_webhooks",
                "0011_search_in_its_own_file",
                "0012_webhook_deliveries_lean"
            ]
        );

        let events: Vec<(String, i64, String, String)> = conn
            .prepare("SELECT event_id, seq, type, payload FROM events ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            events,
            [
                (
                    "e1".into(),
                    1,
                    "user_speech".into(),
                    r#"{"text":"hi"}"#.into()
                ),
                ("e2".into(), 2, "system".into(), "{}".into()),
            ]
        );
        let duplicate_id = conn.execute(
            "INSERT INTO events VALUES ('s', 3, 'e1', 'system', '{}', 7)",
            [],
        );
        assert!(duplicate_id.is_err(), "the idempotency key is kept");
        let bad_type = conn.execute(
            "INSERT INTO events VALUES ('s', 3, 'e3', 'nope', '{}', 7)",
            [],
        );
        assert!(bad_type.is_err(), "an unknown event type is refused");
        let bad_kind = conn.execute(
            "INSERT INTO changes (at, kind, session_id) VALUES (3, 'nope', 's')",
            [],
        );
        assert!(bad_kind.is_err(), "an unknown change kind is refused");

        conn.execute(
            "INSERT INTO changes (at, kind, session_id) VALUES (3, 'session.updated', 's')",
            [],
        )
        .unwrap();
        assert_eq!(
            conn.last_insert_rowid(),
            3,
            "positions 1 and 2 were handed out before"
        );
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }

    #[test]
    fn session_stats_counts_the_calls_that_had_ended_before_it() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap().len(), MIGRATIONS.len());
        conn.execute_batch(
            "DELETE FROM schema_migrations WHERE version = 9; DROP TABLE session_stats;
             INSERT INTO sessions (session_id, status, language, metadata, started_at, ended_at,
                                   event_count, ended_reason)
             VALUES ('a', 'completed', 'en', '{}', 900000, 961500, 3, 'caller_hangup'),
                    ('b', 'completed', 'en', '{}', 901000, 962900, 2, 'caller_hangup'),
                    ('c', 'failed', 'de', '{}', 1799999, 1799000, 0, NULL),
                    ('d', 'active', 'en', '{}', 900000, NULL, 4, NULL),
                    ('e', 'deleted', '', '{}', 900000, NULL, 0, NULL);",
        )
        .unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), ["0009_session_stats"]);
        let rows: Vec<(i64, String, String, String, i64, i64, String)> = conn
            .prepare("SELECT * FROM session_stats ORDER BY status")
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            rows,
            [
                (
                    1,
                    "completed".into(),
                    "caller_hangup".into(),
                    "en".into(),
                    2,
                    5,
                    r#"{"61":2}"#.into()
                ),
                (
                    1,
                    "failed".into(),
                    String::new(),
                    "de".into(),
                    1,
                    0,
                    r#"{"0":1}"#.into()
                ),
            ]
        );
    }
}
