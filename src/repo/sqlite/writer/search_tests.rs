//! The search index's passes on the writer: they follow the change log after the writes, so a
//! failed COMMIT, a pass cut short, an erasure in between or events older than the index must
//! each leave every searchable event indexed exactly once.

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::search::{self, PASS_SIZE, Progress};
use super::tests::{Fault, append_cmd, batch_cmd, create_cmd, event, id, open_db, run};
use super::{Command, Db, Touches, delete, purge};
use crate::domain::{EventType, JsonObject, NewEvent, Timestamp};
use crate::repo::RepoError;

fn said(session: &str, event_id: &str, text: &str) -> NewEvent {
    said_at(session, event_id, text, Timestamp::now())
}

fn said_at(session: &str, event_id: &str, text: &str, at: Timestamp) -> NewEvent {
    let mut new = event(session, event_id, at);
    new.event_type = EventType::UserSpeech;
    new.payload = JsonObject::parse(serde_json::json!({ "text": text })).unwrap();
    new
}

fn pass(db: &mut Db) -> Result<Progress, RepoError> {
    pass_with(db, true)
}

/// A pass as a search runs it (`backfill: false`) or as the background task does.
fn pass_with(db: &mut Db, backfill: bool) -> Result<Progress, RepoError> {
    let (reply, rx) = oneshot::channel();
    let work = move |db: &mut Db<'_>| search::pass(db, backfill);
    run(db, vec![Command::new(Touches::Neither, work, reply)]);
    rx.blocking_recv().unwrap()
}

/// Passes until the log is followed to its end and the backfill is done; events indexed.
fn catch_up(db: &mut Db) -> u64 {
    let mut indexed = 0;
    loop {
        let progress = pass(db).unwrap();
        indexed += progress.indexed;
        if progress.pos >= progress.head && progress.backfilled {
            return indexed;
        }
    }
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Events the full-text index finds for an FTS5 query.
fn found(conn: &Connection, query: &str) -> i64 {
    conn.query_row(
        "SELECT count(*) FROM search_text WHERE search_text MATCH ?1",
        [query],
        |r| r.get(0),
    )
    .unwrap()
}

fn single(db: &mut Db, new: NewEvent) {
    let (cmd, rx) = append_cmd(new);
    run(db, vec![cmd]);
    rx.blocking_recv().unwrap().unwrap();
}

#[test]
fn an_index_pass_whose_commit_fails_leaves_nothing_and_the_next_indexes_each_event_once() {
    for fault in [Fault::FullRolledBack, Fault::IoErrorStillOpen] {
        let (_dir, conn) = open_db();
        let mut db = Db::new(&conn);
        let (create, _) = create_cmd("s");
        run(&mut db, vec![create]);
        for i in 0..3 {
            single(&mut db, said("s", &format!("e{i}"), "I want a refund"));
        }
        single(&mut db, event("s", "not-speech", Timestamp::now()));

        // The pass commits with an append; the COMMIT fails: neither stays.
        db.faults.0.push_back(fault);
        let (reply, pass_rx) = oneshot::channel();
        let index = Command::new(Touches::Neither, |db| search::pass(db, true), reply);
        let (append, append_rx) = append_cmd(said("s", "e3", "refund please"));
        run(&mut db, vec![index, append]);
        assert!(pass_rx.blocking_recv().unwrap().is_err(), "{fault:?}");
        assert!(append_rx.blocking_recv().unwrap().is_err());
        assert!(conn.is_autocommit(), "no transaction is left open");
        assert_eq!(count(&conn, "SELECT count(*) FROM search_rows"), 0);
        assert_eq!(count(&conn, "SELECT pos FROM search_progress"), 0);

        assert_eq!(catch_up(&mut db), 3, "{fault:?}");
        assert_eq!(catch_up(&mut db), 0, "a pass again indexes nothing again");
        assert_eq!(found(&conn, "refund"), 3);
        assert_eq!(count(&conn, "SELECT count(*) FROM search_rows"), 3);
    }
}

#[test]
fn passes_follow_a_long_log_a_pass_at_a_time_each_event_under_its_change_position() {
    let (_dir, conn) = open_db();
    let mut db = Db::new(&conn);
    let (create, _) = create_cmd("s");
    run(&mut db, vec![create]);
    // 2,500 events (a fifth of them not speech) in batches of 100, in one transaction.
    let batches = (0..25)
        .map(|b| {
            let now = Timestamp::now();
            let events = (0..100)
                .map(|i| match i % 5 {
                    0 => event("s", &format!("b{b}-{i}"), now),
                    _ => said_at(
                        "s",
                        &format!("b{b}-{i}"),
                        &format!("order number {b} {i}"),
                        now,
                    ),
                })
                .collect();
            batch_cmd(events).0
        })
        .collect();
    run(&mut db, batches);

    let first = pass(&mut db).unwrap();
    assert!(
        first.pos < first.head,
        "one pass reads at most {PASS_SIZE} changes"
    );
    assert!(first.indexed > 0 && first.indexed <= PASS_SIZE as u64);
    assert_eq!(first.indexed + catch_up(&mut db), 2_000);
    assert_eq!(found(&conn, "order"), 2_000);
    assert_eq!(found(&conn, "\"number 7 3\""), 1);
    // Each row's id is the position of the change that stored its event.
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM search_rows r JOIN changes c
                 ON c.pos = r.id AND c.session_id = r.session_id AND c.seq = r.seq"
        ),
        2_000
    );
}

#[test]
fn an_event_erased_before_the_pass_reaches_it_is_never_indexed() {
    let (_dir, conn) = open_db();
    let mut db = Db::new(&conn);
    let (create, _) = create_cmd("gone");
    run(&mut db, vec![create]);
    single(&mut db, said("gone", "e1", "my card was charged twice"));
    delete(&mut db, &id("gone"), Timestamp::now()).unwrap();
    purge(&mut db, 1_000, Timestamp::from_millis(0).unwrap()).unwrap();
    assert_eq!(count(&conn, "SELECT count(*) FROM events"), 0);
    assert_eq!(catch_up(&mut db), 0);
    assert_eq!(found(&conn, "charged"), 0);
}

#[test]
fn the_log_keeps_every_change_the_index_has_yet_to_follow() {
    let (_dir, conn) = open_db();
    let mut db = Db::new(&conn);
    let (create, _) = create_cmd("s");
    run(&mut db, vec![create]);
    single(&mut db, said("s", "e1", "hello"));
    let later = Timestamp::from_millis(Timestamp::now().millis() + 3_600_000).unwrap();
    assert_eq!(super::super::feed::trim(&conn, later, 100).unwrap(), 0);
    catch_up(&mut db);
    assert_eq!(super::super::feed::trim(&conn, later, 100).unwrap(), 2);
    assert_eq!(found(&conn, "hello"), 1, "trimming the log keeps the index");
}

/// A database from before migration 0006: its events have no search rows. Once the log is
/// followed, the backfill indexes them under ids below every other, so newest order puts them
/// last; an event stored after them comes first.
#[test]
fn events_stored_before_the_index_are_backfilled_once_the_log_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = Connection::open(dir.path().join("old.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE schema_migrations (
             version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .unwrap();
    for &(version, name, sql) in &super::super::migrations::MIGRATIONS[..5] {
        conn.execute_batch(sql).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations VALUES (?1, ?2, 0)",
            rusqlite::params![version, name],
        )
        .unwrap();
    }
    {
        let mut db = Db::new(&conn);
        let (a, _) = create_cmd("a");
        let (b, _) = create_cmd("b");
        run(&mut db, vec![a, b]);
        for i in 0..(PASS_SIZE + 10) {
            single(
                &mut db,
                said(["a", "b"][i as usize % 2], &format!("e{i}"), "old refund"),
            );
        }
    }
    let applied = super::super::migrations::migrate(&mut conn).unwrap();
    assert_eq!(
        applied,
        [
            "0006_search",
            "0007_search_after_write",
            "0008_checks_without_lists",
            "0009_session_stats",
            "0010_webhooks"
        ]
    );
    let mut db = Db::new(&conn);
    let searching = pass_with(&mut db, false).unwrap();
    assert_eq!(
        (searching.indexed, searching.backfilled),
        (0, false),
        "a search's pass does not backfill"
    );
    let first = pass(&mut db).unwrap();
    assert!(
        !first.backfilled,
        "one chunk looks at {PASS_SIZE} events at most"
    );
    single(&mut db, said("a", "new", "new refund"));
    assert_eq!(first.indexed + catch_up(&mut db), PASS_SIZE as u64 + 11);
    assert_eq!(found(&conn, "refund"), PASS_SIZE + 11);
    assert_eq!(found(&conn, "old"), PASS_SIZE + 10);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM search_rows WHERE id < 0"),
        PASS_SIZE + 10
    );
    // Within a session, a later event has the higher id (it is newer in newest order).
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM search_rows a JOIN search_rows b
                 ON a.session_id = b.session_id AND a.seq < b.seq AND a.id > b.id"
        ),
        0
    );
    let newest: String = conn
        .query_row(
            "SELECT e.event_id FROM search_rows r
                 JOIN events e ON e.session_id = r.session_id AND e.seq = r.seq
             ORDER BY r.id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(newest, "new");
    assert_eq!(catch_up(&mut db), 0);
}
