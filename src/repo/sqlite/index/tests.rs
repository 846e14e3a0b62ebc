//! Index passes on their own thread and file: they follow the store's change log after its
//! writes, so a failed COMMIT, a pass cut short, an erasure in between or events older than the
//! log must each leave every searchable event indexed exactly once, and an erased session's rows
//! gone.

use std::path::Path;

use rusqlite::Connection;

use super::pass::{self, FORGET_SIZE, PASS_SIZE, Progress};
use crate::domain::{EventType, JsonObject, NewEvent, Timestamp};
use crate::repo::RepoError;
use crate::repo::sqlite::writer::tests::{
    append_cmd, batch_cmd, create_cmd, event, id, open_db, run,
};
use crate::repo::sqlite::writer::{Db, delete, purge};

fn said(session: &str, event_id: &str, text: &str) -> NewEvent {
    said_at(session, event_id, text, Timestamp::now())
}

fn said_at(session: &str, event_id: &str, text: &str, at: Timestamp) -> NewEvent {
    let mut new = event(session, event_id, at);
    new.event_type = EventType::UserSpeech;
    new.payload = JsonObject::parse(serde_json::json!({ "text": text })).unwrap();
    new
}

/// The index file of the store whose writer connection is `store`, opened as the indexer does.
fn index_of(store: &Connection) -> Connection {
    super::open(Path::new(store.path().unwrap())).unwrap()
}

fn pass(index: &Connection) -> Result<Progress, RepoError> {
    pass::pass(index, true)
}

/// Passes until the log is followed to its end and the backfill is done; the index's position.
fn catch_up_to(index: &Connection) -> i64 {
    catch_up(index);
    pass(index).unwrap().pos
}

/// Passes until the log is followed to its end and the backfill is done; events indexed.
fn catch_up(index: &Connection) -> u64 {
    let mut indexed = 0;
    loop {
        let progress = pass(index).unwrap();
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
fn found(index: &Connection, query: &str) -> i64 {
    index
        .query_row(
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

/// A COMMIT that fails as a full disk makes it fail (SQLite has rolled back by itself), or as
/// an I/O error does (the transaction is still open).
fn failing_commit(rolled_back: bool) -> impl FnOnce(&Connection) -> rusqlite::Result<()> {
    move |conn| {
        let code = if rolled_back {
            conn.execute_batch("ROLLBACK")?;
            rusqlite::ffi::SQLITE_FULL
        } else {
            rusqlite::ffi::SQLITE_IOERR
        };
        Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }
}

#[test]
fn an_index_pass_whose_commit_fails_leaves_nothing_and_the_next_indexes_each_event_once() {
    for rolled_back in [true, false] {
        let (_dir, conn) = open_db();
        let mut db = Db::new(&conn);
        let (create, _) = create_cmd("s");
        run(&mut db, vec![create]);
        for i in 0..3 {
            single(&mut db, said("s", &format!("e{i}"), "I want a refund"));
        }
        single(&mut db, event("s", "not-speech", Timestamp::now()));
        let index = index_of(&conn);

        let failed = pass::pass_committed_by(&index, true, failing_commit(rolled_back));
        assert!(failed.is_err(), "{rolled_back}");
        assert!(index.is_autocommit(), "no transaction is left open");
        assert_eq!(count(&index, "SELECT count(*) FROM search_rows"), 0);
        assert_eq!(count(&index, "SELECT pos FROM search_progress"), 0);

        // The writer went on meanwhile: the index never held it up.
        single(&mut db, said("s", "e3", "refund please"));
        assert_eq!(catch_up(&index), 4, "{rolled_back}");
        assert_eq!(catch_up(&index), 0, "a pass again indexes nothing again");
        assert_eq!(found(&index, "refund"), 4);
        assert_eq!(count(&index, "SELECT count(*) FROM search_rows"), 4);
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

    let index = index_of(&conn);
    let first = pass(&index).unwrap();
    assert!(
        first.pos < first.head,
        "one pass reads at most {PASS_SIZE} changes"
    );
    assert!(first.indexed > 0 && first.indexed <= PASS_SIZE as u64);
    assert_eq!(first.indexed + catch_up(&index), 2_000);
    assert_eq!(found(&index, "order"), 2_000);
    assert_eq!(found(&index, "\"number 7 3\""), 1);
    // Each row's id is the position of the change that stored its event.
    assert_eq!(
        count(
            &index,
            "SELECT count(*) FROM search_rows r JOIN store.changes c
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
    let index = index_of(&conn);
    assert_eq!(catch_up(&index), 0);
    assert_eq!(found(&index, "charged"), 0);
}

/// An erasure after its events were indexed: the pass that meets its `session.deleted` change
/// removes the session's rows, a chunk at a time when there are many, and keeps the others'.
#[test]
fn an_erased_sessions_rows_leave_the_index_when_the_pass_meets_its_deletion() {
    let (_dir, conn) = open_db();
    let mut db = Db::new(&conn);
    let (gone, _) = create_cmd("gone");
    let (kept, _) = create_cmd("kept");
    run(&mut db, vec![gone, kept]);
    let many = FORGET_SIZE as usize + 10;
    let batches = (0..many.div_ceil(100))
        .map(|b| {
            let now = Timestamp::now();
            let events = (0..100.min(many - b * 100))
                .map(|i| {
                    said_at(
                        "gone",
                        &format!("g{b}-{i}"),
                        "my card was charged twice",
                        now,
                    )
                })
                .collect();
            batch_cmd(events).0
        })
        .collect();
    run(&mut db, batches);
    single(&mut db, said("kept", "k", "charged again"));
    let index = index_of(&conn);
    catch_up(&index);
    assert_eq!(found(&index, "charged"), many as i64 + 1);

    delete(&mut db, &id("gone"), Timestamp::now()).unwrap();
    let cut = pass(&index).unwrap();
    assert!(
        cut.pos < cut.head,
        "a pass removes {FORGET_SIZE} rows at most"
    );
    assert_eq!(found(&index, "charged"), 11);
    catch_up(&index);
    assert_eq!(
        found(&index, "charged"),
        1,
        "only the kept session's event is left"
    );
    assert_eq!(
        count(
            &index,
            "SELECT count(*) FROM search_rows WHERE session_id = 'gone'"
        ),
        0
    );
}

#[test]
fn the_log_keeps_every_change_the_index_has_yet_to_follow() {
    let (_dir, conn) = open_db();
    let mut db = Db::new(&conn);
    let (create, _) = create_cmd("s");
    run(&mut db, vec![create]);
    single(&mut db, said("s", "e1", "hello"));
    let later = Timestamp::from_millis(Timestamp::now().millis() + 3_600_000).unwrap();
    let trim = |indexed| super::super::feed::trim(&conn, later, 100, indexed).unwrap();
    assert_eq!(trim(0), 0, "nothing is indexed yet");
    let index = index_of(&conn);
    let indexed = catch_up_to(&index);
    assert_eq!(
        trim(indexed - 1),
        1,
        "the change the index has yet to follow is kept"
    );
    assert_eq!(trim(indexed), 1);
    assert_eq!(
        found(&index, "hello"),
        1,
        "trimming the log keeps the index"
    );
}

/// An indexer started on an index file that has followed the log starts from its position, so
/// the log's trim is not held back until this process's first pass (an idle instance after a
/// restart kept every change past its retention).
#[test]
fn an_indexer_starts_from_the_position_its_file_has_reached() {
    let (_dir, conn) = open_db();
    let mut db = Db::new(&conn);
    let (create, _) = create_cmd("s");
    run(&mut db, vec![create]);
    single(&mut db, said("s", "e1", "hello"));
    let reached = catch_up_to(&index_of(&conn));
    assert!(reached > 0);
    let restarted = super::Indexer::spawn(
        index_of(&conn),
        crate::repo::sqlite::closing::StillOpen::default(),
    )
    .unwrap();
    assert_eq!(restarted.indexed(), reached);
}

/// A store whose log no longer holds its events' changes (trimmed before this index file was
/// made): once the log is followed, the backfill indexes them under ids below every other, so
/// newest order puts them last; an event stored after them comes first.
#[test]
fn events_the_log_no_longer_holds_are_backfilled_once_the_log_is_followed() {
    let (_dir, conn) = open_db();
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
    conn.execute_batch("DELETE FROM changes").unwrap();
    let index = index_of(&conn);
    let searching = pass::pass(&index, false).unwrap();
    assert_eq!(
        (searching.indexed, searching.backfilled),
        (0, false),
        "a search's pass does not backfill"
    );
    let first = pass(&index).unwrap();
    assert!(
        !first.backfilled,
        "one chunk looks at {PASS_SIZE} events at most"
    );
    single(&mut db, said("a", "new", "new refund"));
    assert_eq!(first.indexed + catch_up(&index), PASS_SIZE as u64 + 11);
    assert_eq!(found(&index, "refund"), PASS_SIZE + 11);
    assert_eq!(found(&index, "old"), PASS_SIZE + 10);
    assert_eq!(
        count(&index, "SELECT count(*) FROM search_rows WHERE id < 0"),
        PASS_SIZE + 10
    );
    // Within a session, a later event has the higher id (it is newer in newest order).
    assert_eq!(
        count(
            &index,
            "SELECT count(*) FROM search_rows a JOIN search_rows b
                 ON a.session_id = b.session_id AND a.seq < b.seq AND a.id > b.id"
        ),
        0
    );
    let newest: String = index
        .query_row(
            "SELECT e.event_id FROM search_rows r
                 JOIN store.events e ON e.session_id = r.session_id AND e.seq = r.seq
             ORDER BY r.id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(newest, "new");
    assert_eq!(catch_up(&index), 0);
}

/// A store upgraded from the index in its own tables (migrations 0006 and 0007) drops them; the
/// index file is built from the log.
#[test]
fn the_upgrade_drops_the_index_tables_of_the_store_and_the_file_rebuilds_it() {
    let (_dir, conn) = open_db();
    let tables = count(
        &conn,
        "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'search%'",
    );
    assert_eq!(tables, 0, "the store keeps no index of its own");
    let mut db = Db::new(&conn);
    let (create, _) = create_cmd("s");
    run(&mut db, vec![create]);
    single(&mut db, said("s", "e1", "where is my parcel"));
    let index = index_of(&conn);
    assert_eq!(catch_up(&index), 1);
    drop(index);
    std::fs::remove_file(super::path_of(Path::new(conn.path().unwrap()))).unwrap();
    let index = index_of(&conn);
    assert_eq!(catch_up(&index), 1, "a deleted index file is built again");
    assert_eq!(found(&index, "parcel"), 1);
}
