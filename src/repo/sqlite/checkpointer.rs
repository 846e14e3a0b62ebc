//! Checkpoints beside the writer. A checkpoint copies the pages the WAL holds into the database
//! file and syncs that file; run by the writer after a commit (SQLite's `wal_autocheckpoint`), it
//! held back every write queued behind it, and under `synchronous=normal` it was where the tail
//! came from. Here a thread of its own runs a PASSIVE checkpoint every [`INTERVAL`]: it takes no
//! lock the writer waits for, and copies what was committed up to then while the writer goes on.
//!
//! The writer's own `wal_autocheckpoint` stays as the backstop. The WAL file starts over only when
//! a write begins with every frame copied; under continuous writes that seldom happens beside a
//! checkpointer, so the writer's checkpoint, once the WAL reaches its limit, is what restarts it,
//! and by then it has only the frames since this thread's last run to copy.
//!
//! A checkpoint that fails (a full disk, an I/O error) loses nothing: the frames stay in the WAL,
//! readers read them from there, and the next checkpoint copies them.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use super::closing::StillOpen;

use rusqlite::Connection;

use super::Synchronous;

/// How often the checkpointer runs: often enough that what it leaves to the writer's own
/// checkpoint is a few hundred milliseconds of commits at most.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// What one checkpoint found: the frames in the WAL and how many of them are in the database
/// file now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Another connection was checkpointing: this one did nothing.
    pub busy: bool,
    pub wal_frames: i64,
    pub copied_frames: i64,
}

/// Starts the checkpointer on its own connection to `path`, configured as the writer's (the same
/// sync level, which decides how a checkpoint syncs). It runs until `stop`'s sender is dropped,
/// and holds `open` until its connection is closed.
pub fn spawn(
    path: &Path,
    synchronous: Synchronous,
    stop: Receiver<()>,
    still_open: StillOpen,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("sqlite-checkpointer".into())
        .spawn(move || {
            let _still_open = still_open;
            let conn = match open(&path, synchronous) {
                Ok(conn) => conn,
                Err(e) => {
                    // The writer's own checkpoints still run: the service is slower, not wrong.
                    tracing::error!(error = %e, "the sqlite checkpointer could not open the database");
                    metrics::counter!("sqlite_checkpoint_failures_total").increment(1);
                    return;
                }
            };
            run(&conn, &stop);
        })
}

fn open(path: &Path, synchronous: Synchronous) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    super::configure(&conn, synchronous)?;
    Ok(conn)
}

fn run(conn: &Connection, stop: &Receiver<()>) {
    let frames = metrics::gauge!("sqlite_wal_frames");
    let failures = metrics::counter!("sqlite_checkpoint_failures_total");
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(INTERVAL) {
        match checkpoint(conn) {
            Ok(done) => frames.set(done.wal_frames as f64),
            Err(e) => {
                failures.increment(1);
                tracing::warn!(error = %e, "sqlite checkpoint failed; the WAL keeps the pages");
            }
        }
    }
}

/// One PASSIVE checkpoint: copies every frame no reader still needs, waiting for nobody.
pub fn checkpoint(conn: &Connection) -> rusqlite::Result<Checkpoint> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(Checkpoint {
            busy: r.get::<_, i64>(0)? != 0,
            wal_frames: r.get(1)?,
            copied_frames: r.get(2)?,
        })
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use rusqlite::{Connection, OpenFlags};

    use super::{StillOpen, Synchronous, checkpoint, spawn};

    /// A database in WAL mode whose writer never checkpoints by itself (unless `backstop`).
    fn writer(path: &Path, backstop: i64) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", backstop)
            .unwrap();
        conn.execute_batch("CREATE TABLE t (v BLOB)").unwrap();
        conn
    }

    fn write(conn: &Connection, rows: usize) {
        for _ in 0..rows {
            conn.execute("INSERT INTO t VALUES (randomblob(2000))", [])
                .unwrap();
        }
    }

    fn size(path: &Path) -> u64 {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }

    fn rows(path: &Path) -> i64 {
        let conn = Connection::open(path).unwrap();
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    /// Pages committed while the writer never checkpoints reach the database file through the
    /// checkpointer alone; it stops once its sender is dropped.
    #[test]
    fn the_checkpointer_copies_what_the_writer_committed_and_stops_with_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let conn = writer(&path, 0);
        let before = size(&path);
        write(&conn, 200);
        assert_eq!(size(&path), before, "the writer itself copied nothing");

        let (stop_tx, stop) = std::sync::mpsc::channel();
        let thread = spawn(&path, Synchronous::Full, stop, StillOpen::default()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while size(&path) < before + 200 * 2000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            size(&path) >= before + 200 * 2000,
            "the pages reached the database file"
        );
        drop(stop_tx);
        thread.join().unwrap();
        assert_eq!(rows(&path), 200);
    }

    /// A checkpoint that fails (here: its connection may not write) loses nothing: every row is
    /// still read from the WAL, and the next checkpoint copies them.
    #[test]
    fn a_failed_checkpoint_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let conn = writer(&path, 0);
        write(&conn, 50);
        let read_only =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        assert!(
            checkpoint(&read_only).is_err(),
            "a read-only connection cannot checkpoint"
        );
        assert_eq!(rows(&path), 50);
        let done = checkpoint(&Connection::open(&path).unwrap()).unwrap();
        assert!(!done.busy);
        assert!(done.wal_frames > 0);
        assert_eq!(done.copied_frames, done.wal_frames);
        assert_eq!(rows(&path), 50);
    }

    /// Under continuous writes beside the checkpointer, the WAL file stays bounded: the writer's
    /// own checkpoint (the backstop, here at 100 pages) still restarts it.
    #[test]
    fn the_wal_stays_bounded_under_continuous_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let conn = writer(&path, 100);
        let (stop_tx, stop) = std::sync::mpsc::channel();
        let thread = spawn(&path, Synchronous::Normal, stop, StillOpen::default()).unwrap();
        let wal = dir.path().join("c.db-wal");
        let mut largest = 0;
        for _ in 0..40 {
            write(&conn, 100);
            largest = largest.max(size(&wal));
        }
        drop(stop_tx);
        thread.join().unwrap();
        // 4,000 rows of 2 KB are about 4,000 frames; a WAL never restarted would hold them all.
        let page = 4096 + 24;
        assert!(largest < 1000 * page, "the WAL grew to {largest} bytes");
        assert_eq!(rows(&path), 4000);
    }
}
