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
