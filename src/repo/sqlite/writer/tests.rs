//! The writer after failures: a transaction that fails in any way (a statement, the COMMIT, a
//! rolled-back command) leaves no trace in what later appends see: seqs stay dense and
//! `event_count` exact.

use std::collections::VecDeque;

use proptest::prelude::*;
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{Command, Db, Touches, append, append_batch, commit_batch, create};
use crate::domain::{
    EventId, EventType, JsonObject, Language, NewEvent, NewEvents, NewSession, SessionId, Timers,
    Timestamp,
};
use crate::repo::{Appended, BatchAppended, BatchItem, CreateOutcome, RepoError};

/// How the next COMMIT fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `SQLITE_FULL`, after which SQLite has rolled the transaction back by itself: the
    /// connection is in autocommit (what a full disk does to a COMMIT in WAL mode).
    FullRolledBack,
    /// `SQLITE_IOERR`, with the transaction still open.
    IoErrorStillOpen,
}

/// COMMIT failures to inject, one per COMMIT, in order.
#[derive(Default)]
pub struct Faults(pub(super) VecDeque<Fault>);

impl Faults {
    pub fn at_commit(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let fail = |code, message: &str| {
            Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                Some(message.into()),
            ))
        };
        match self.0.pop_front() {
            None => Ok(()),
            Some(Fault::FullRolledBack) => {
                conn.execute_batch("ROLLBACK")?;
                fail(rusqlite::ffi::SQLITE_FULL, "database or disk is full")
            }
            Some(Fault::IoErrorStillOpen) => fail(rusqlite::ffi::SQLITE_IOERR, "disk I/O error"),
        }
    }
}

pub(crate) fn id(raw: &str) -> SessionId {
    SessionId::parse(raw).unwrap()
}

pub(crate) fn event(session: &str, event: &str, at: Timestamp) -> NewEvent {
    NewEvent {
        session_id: id(session),
        event_id: EventId::parse(event).unwrap(),
        event_type: EventType::System,
        payload: JsonObject::parse(serde_json::json!({"e": event})).unwrap(),
        client_timestamp: None,
        received_at: at,
        expected_seq: None,
        redact: None,
    }
}

pub(crate) fn open_db() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = Connection::open(dir.path().join("w.db")).unwrap();
    super::super::migrations::migrate(&mut conn).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    (dir, conn)
}

type Answer<T> = oneshot::Receiver<Result<T, RepoError>>;

pub(crate) fn create_cmd(session: &str) -> (Command, Answer<CreateOutcome>) {
    let new = NewSession {
        session_id: id(session),
        language: Language::parse("en").unwrap(),
        metadata: JsonObject::default(),
        started_at: Timestamp::now(),
        timers: Timers::default(),
        redact: None,
    };
    let (reply, rx) = oneshot::channel();
    let cmd = Command::new(Touches::Appends, move |db| create(db, &new, "{}"), reply);
    (cmd, rx)
}

pub(crate) fn append_cmd(new: NewEvent) -> (Command, Answer<Appended>) {
    let (reply, rx) = oneshot::channel();
    let cmd = Command::new(Touches::Appends, move |db| append(db, &new), reply);
    (cmd, rx)
}

pub(crate) fn batch_cmd(events: Vec<NewEvent>) -> (Command, Answer<BatchAppended>) {
    let batch = NewEvents::new(events).unwrap();
    let (reply, rx) = oneshot::channel();
    let cmd = Command::new(Touches::Appends, move |db| append_batch(db, &batch), reply);
    (cmd, rx)
}

pub(crate) fn run(db: &mut Db, commands: Vec<Command>) {
    let mut commands = commands;
    commit_batch(db, &mut commands);
}

/// What is stored of the session: its `event_count`, and its events' seqs in order.
fn stored(conn: &Connection, session: &str) -> (i64, Vec<i64>) {
    let count = conn
        .query_row(
            "SELECT event_count FROM sessions WHERE session_id = ?1",
            [session],
            |r| r.get(0),
        )
        .unwrap();
    let mut stmt = conn
        .prepare("SELECT seq FROM events WHERE session_id = ?1 ORDER BY seq")
        .unwrap();
    let seqs = stmt
        .query_map([session], |r| r.get(0))
        .unwrap()
        .collect::<Result<Vec<i64>, _>>()
        .unwrap();
    (count, seqs)
}

fn assert_dense(conn: &Connection, session: &str, expected: i64) {
    let (count, seqs) = stored(conn, session);
    assert_eq!(count, expected, "event_count");
    assert_eq!(seqs, (1..=expected).collect::<Vec<_>>(), "seqs");
}

fn new_seq(answer: Result<Appended, RepoError>) -> u64 {
    match answer {
        Ok(Appended::New(e)) => e.seq,
        other => panic!("expected a new event, got {other:?}"),
    }
}

fn batch_seqs(answer: Result<BatchAppended, RepoError>) -> Vec<u64> {
    match answer {
        Ok(BatchAppended::Stored(items)) => items
            .iter()
            .filter(|i| matches!(i, BatchItem::New(_)))
            .map(|i| i.event().seq)
            .collect(),
        other => panic!("expected a stored batch, got {other:?}"),
    }
}

/// The feed's waiting reads are woken by the commits that may have added changes, and not by
/// webhook bookkeeping: each logged attempt is a transaction of its own, and used to send the
/// fan-out back to read the feed for nothing.
#[tokio::test]
async fn only_commits_that_may_add_changes_wake_the_feed() {
    let (_dir, conn) = open_db();
    let committed = std::sync::Arc::new(tokio::sync::Notify::new());
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let _writer = super::spawn(conn, rx, committed.clone(), || {}).unwrap();
    let write = |touches| {
        let tx = tx.clone();
        async move {
            let (reply, answer) = oneshot::channel();
            let cmd = Command::new(touches, |_: &mut Db<'_>| Ok(()), reply);
            assert!(tx.send(cmd).await.is_ok());
            answer.await.unwrap().unwrap();
        }
    };
    let woken = committed.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    // The writer answers a command, then tells the readers, then takes the next command: once
    // the second is answered, whatever the first would have woken is awake.
    write(Touches::Neither).await;
    write(Touches::Neither).await;
    assert!(
        futures_util::FutureExt::now_or_never(woken.as_mut()).is_none(),
        "webhook bookkeeping woke the feed's readers"
    );
    for touches in [Touches::Appends, Touches::Sessions] {
        write(touches).await;
        tokio::time::timeout(std::time::Duration::from_secs(30), woken.as_mut())
            .await
            .expect("a commit that may add changes wakes the feed's readers");
        woken.set(committed.notified());
        woken.as_mut().enable();
    }
}

/// One batch runs without savepoints; a failing command sends it back to run each command in
/// its own. Either way the others commit and only the failed one's writes are undone.
#[test]
fn a_failing_command_in_a_batch_fails_alone() {
    let (_dir, conn) = open_db();
    let now = Timestamp::now();
    let mut db = Db::new(&conn);
    let (create, created) = create_cmd("s1");
    run(&mut db, vec![create]);
    assert!(created.blocking_recv().unwrap().unwrap().created);

    // All succeed: the optimistic pass commits them.
    let (a, a_rx) = append_cmd(event("s1", "e1", now));
    let (b, b_rx) = append_cmd(event("s1", "e2", now));
    run(&mut db, vec![a, b]);
    assert_eq!(new_seq(a_rx.blocking_recv().unwrap()), 1);
    assert_eq!(new_seq(b_rx.blocking_recv().unwrap()), 2);
    // One fails (an unknown session) between two that succeed.
    let (c, c_rx) = append_cmd(event("s1", "e3", now));
    let (d, d_rx) = append_cmd(event("nobody", "e1", now));
    let (e, e_rx) = append_cmd(event("s1", "e4", now));
    run(&mut db, vec![c, d, e]);
    assert!(matches!(
        d_rx.blocking_recv().unwrap(),
        Err(RepoError::NotFound)
    ));
    assert_eq!(new_seq(c_rx.blocking_recv().unwrap()), 3);
    assert_eq!(new_seq(e_rx.blocking_recv().unwrap()), 4);
    let events: i64 = conn
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events, 4);
    assert_dense(&conn, "s1", 4);
    assert!(conn.is_autocommit(), "no transaction is left open");
}

/// A batch whose COMMIT fails for lack of space answers every caller `storage_full`, and a
/// failing disk `storage_unavailable`, never a plain backend error (which would be a 500).
#[test]
fn a_failed_commit_keeps_what_sqlite_said() {
    let failed = |code| super::CommitFailed {
        message: "commit failed".into(),
        code: Some(code),
    };
    assert!(failed(rusqlite::ErrorCode::DiskFull).error().is_full());
    assert!(matches!(
        failed(rusqlite::ErrorCode::SystemIoFailure).error(),
        RepoError::Unavailable(_)
    ));
    assert!(matches!(
        failed(rusqlite::ErrorCode::ConstraintViolation).error(),
        RepoError::Backend(_)
    ));
}

/// The operator's report: appends whose COMMIT failed (disk full) must not be counted. After the
/// failure, single and batch appends get the next dense seqs and the count stays exact.
#[test]
fn after_a_failed_commit_the_next_events_get_the_next_dense_seqs() {
    for fault in [Fault::FullRolledBack, Fault::IoErrorStillOpen] {
        let (_dir, conn) = open_db();
        let now = Timestamp::now();
        let mut db = Db::new(&conn);
        let (create, _) = create_cmd("s");
        let (a, a_rx) = append_cmd(event("s", "a", now));
        run(&mut db, vec![create, a]);
        assert_eq!(new_seq(a_rx.blocking_recv().unwrap()), 1);

        // Two appends and a batch in one transaction whose COMMIT fails.
        db.faults.0.push_back(fault);
        let (b, b_rx) = append_cmd(event("s", "b", now));
        let (c, c_rx) = append_cmd(event("s", "c", now));
        let (d, d_rx) = batch_cmd(vec![event("s", "d1", now), event("s", "d2", now)]);
        run(&mut db, vec![b, c, d]);
        let refused = b_rx.blocking_recv().unwrap().unwrap_err();
        match fault {
            Fault::FullRolledBack => assert!(refused.is_full(), "{refused:?}"),
            Fault::IoErrorStillOpen => assert!(matches!(refused, RepoError::Unavailable(_))),
        }
        assert!(c_rx.blocking_recv().unwrap().is_err());
        assert!(d_rx.blocking_recv().unwrap().is_err());
        assert!(conn.is_autocommit(), "no transaction is left open");
        assert_dense(&conn, "s", 1);

        // Space again: a single append, then a batch, then a retry of a refused event.
        let (e, e_rx) = append_cmd(event("s", "e", now));
        run(&mut db, vec![e]);
        assert_eq!(new_seq(e_rx.blocking_recv().unwrap()), 2, "{fault:?}");
        let (f, f_rx) = batch_cmd(vec![event("s", "f1", now), event("s", "f2", now)]);
        run(&mut db, vec![f]);
        assert_eq!(batch_seqs(f_rx.blocking_recv().unwrap()), [3, 4]);
        let (b, b_rx) = append_cmd(event("s", "b", now));
        run(&mut db, vec![b]);
        assert_eq!(new_seq(b_rx.blocking_recv().unwrap()), 5);
        assert_dense(&conn, "s", 5);
    }
}

/// A real `SQLITE_FULL` from SQLite (the database may not grow past `max_page_count`), then room
/// again: the refused events are not counted.
#[test]
fn a_full_database_refuses_appends_and_counts_none_of_them() {
    let (_dir, conn) = open_db();
    let now = Timestamp::now();
    let mut db = Db::new(&conn);
    let (create, _) = create_cmd("s");
    run(&mut db, vec![create]);
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    conn.pragma_update(None, "max_page_count", pages + 2)
        .unwrap();
    let big = |n: usize| {
        let mut e = event("s", &format!("e{n}"), now);
        e.payload = JsonObject::parse(serde_json::json!({ "text": "x".repeat(3000) })).unwrap();
        e
    };
    let (mut accepted, mut full) = (0, 0);
    for n in 0..40 {
        let (cmd, rx) = append_cmd(big(n));
        run(&mut db, vec![cmd]);
        match rx.blocking_recv().unwrap() {
            Ok(Appended::New(e)) => {
                accepted += 1;
                assert_eq!(e.seq, accepted);
            }
            Err(e) if e.is_full() => full += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(full > 0 && accepted > 0, "{accepted} accepted, {full} full");
    conn.pragma_update(None, "max_page_count", 1_000_000)
        .unwrap();
    let (single, single_rx) = append_cmd(event("s", "after-grow", now));
    let (batch, batch_rx) = batch_cmd(vec![event("s", "b1", now), event("s", "b2", now)]);
    run(&mut db, vec![single, batch]);
    assert_eq!(new_seq(single_rx.blocking_recv().unwrap()), accepted + 1);
    assert_eq!(
        batch_seqs(batch_rx.blocking_recv().unwrap()),
        [accepted + 2, accepted + 3]
    );
    assert_dense(&conn, "s", accepted as i64 + 3);
}

/// One step of the interleaving below.
#[derive(Debug, Clone)]
enum Step {
    /// A transaction of these appends (true: a batch of two), whose COMMIT fails if `fault`.
    Commit {
        appends: Vec<bool>,
        fault: Option<Fault>,
    },
    /// An append of an id already stored with other content, next to a good one.
    Conflict,
}

fn step() -> impl Strategy<Value = Step> {
    let fault = prop_oneof![
        3 => Just(None),
        1 => Just(Some(Fault::FullRolledBack)),
        1 => Just(Some(Fault::IoErrorStillOpen)),
    ];
    prop_oneof![
        4 => (prop::collection::vec(any::<bool>(), 1..4), fault)
            .prop_map(|(appends, fault)| Step::Commit { appends, fault }),
        1 => Just(Step::Conflict),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Failing and succeeding writes interleaved: after every transaction the stored seqs are
    /// 1..=n, `event_count` is n, and n counts exactly the events acknowledged as new.
    #[test]
    fn seqs_stay_dense_whatever_fails_in_between(steps in prop::collection::vec(step(), 1..12)) {
        let (_dir, conn) = open_db();
        let now = Timestamp::now();
        let mut db = Db::new(&conn);
        let (create, _) = create_cmd("s");
        run(&mut db, vec![create]);
        let mut acknowledged: u64 = 0;
        let mut next = 0;
        let fresh = |next: &mut u32| { *next += 1; format!("e{next}") };
        for step in steps {
            match step {
                Step::Commit { appends, fault } => {
                    if let Some(fault) = fault {
                        db.faults.0.push_back(fault);
                    }
                    let mut singles = Vec::new();
                    let mut batches = Vec::new();
                    let mut commands = Vec::new();
                    for is_batch in appends {
                        if is_batch {
                            let (cmd, rx) = batch_cmd(vec![event("s", &fresh(&mut next), now), event("s", &fresh(&mut next), now)]);
                            commands.push(cmd);
                            batches.push(rx);
                        } else {
                            let (cmd, rx) = append_cmd(event("s", &fresh(&mut next), now));
                            commands.push(cmd);
                            singles.push(rx);
                        }
                    }
                    run(&mut db, commands);
                    for rx in singles {
                        match rx.blocking_recv().unwrap() {
                            Ok(Appended::New(_)) => acknowledged += 1,
                            Ok(other) => prop_assert!(false, "unexpected {:?}", other),
                            Err(_) => prop_assert!(fault.is_some()),
                        }
                    }
                    for rx in batches {
                        match rx.blocking_recv().unwrap() {
                            Ok(BatchAppended::Stored(items)) => acknowledged += batch_seqs(Ok(BatchAppended::Stored(items))).len() as u64,
                            Ok(other) => prop_assert!(false, "unexpected {:?}", other),
                            Err(_) => prop_assert!(fault.is_some()),
                        }
                    }
                }
                Step::Conflict if next == 0 => continue,
                Step::Conflict => {
                    // "e1" exists once anything was acknowledged; with other content it is refused.
                    let mut clash = event("s", "e1", now);
                    clash.payload = JsonObject::parse(serde_json::json!({"other": true})).unwrap();
                    let (bad, bad_rx) = batch_cmd(vec![clash, event("s", &fresh(&mut next), now)]);
                    let (good, good_rx) = append_cmd(event("s", &fresh(&mut next), now));
                    run(&mut db, vec![bad, good]);
                    let bad = bad_rx.blocking_recv().unwrap();
                    prop_assert!(matches!(bad, Ok(BatchAppended::Conflicts(_)) | Ok(BatchAppended::Stored(_))), "{:?}", bad);
                    if let Ok(BatchAppended::Stored(items)) = bad {
                        acknowledged += items.iter().filter(|i| matches!(i, BatchItem::New(_))).count() as u64;
                    }
                    acknowledged += 1;
                    prop_assert_eq!(new_seq(good_rx.blocking_recv().unwrap()), acknowledged);
                }
            }
            let (count, seqs) = stored(&conn, "s");
            prop_assert_eq!(count as u64, acknowledged);
            prop_assert_eq!(seqs, (1..=acknowledged as i64).collect::<Vec<_>>());
            prop_assert!(conn.is_autocommit());
        }
    }
}
