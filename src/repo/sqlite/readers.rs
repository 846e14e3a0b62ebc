//! A fixed set of reader threads, each owning one read-only connection, fed by one queue.
//!
//! A read is a short synchronous SQLite call. Running each on `spawn_blocking` woke a thread of
//! Tokio's blocking pool per read and, under concurrent reads, grew that pool to dozens of threads
//! contending on its queue. Here a few long-lived threads take reads from a bounded queue and
//! answer through a oneshot channel. A read stuck on a slow disk holds only its own reader thread,
//! never a runtime worker.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use super::closing::StillOpen;
use super::map_err;
use crate::repo::RepoError;

/// One read: runs on a reader thread with its connection, or with the error opening it gave.
type Job = Box<dyn FnOnce(Result<&mut Connection, RepoError>) + Send>;

/// Reads waiting for a reader; callers wait (asynchronously) for room beyond this.
const QUEUE_DEPTH: usize = 1024;

#[derive(Clone)]
pub struct Readers {
    queue: mpsc::Sender<Job>,
    threads: usize,
    /// Reads sent and not yet answered (queued or running).
    in_flight: Arc<AtomicUsize>,
}

/// Counts one read in flight for as long as it lives (so a read whose caller went away is
/// still counted until it is over).
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Readers {
    /// Starts `threads` readers on the database at `path`. They stop once every clone is dropped;
    /// each holds `open` until its connection is closed.
    pub fn spawn(path: &Path, threads: usize, open: &StillOpen) -> std::io::Result<Readers> {
        let (queue, rx) = mpsc::channel::<Job>(QUEUE_DEPTH);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let (rx, path, open) = (rx.clone(), path.to_path_buf(), open.clone());
            std::thread::Builder::new()
                .name(format!("sqlite-reader-{i}"))
                .spawn(move || {
                    run(&path, &rx);
                    drop(open);
                })?;
        }
        Ok(Readers {
            queue,
            threads: threads.max(1),
            in_flight: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// How many reader threads have no read to run now (a moment's view: by the time the
    /// caller acts on it, it may have changed).
    pub fn idle(&self) -> usize {
        self.threads
            .saturating_sub(self.in_flight.load(Ordering::Relaxed))
    }

    /// Runs `f` on a reader thread and returns its result.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, RepoError> + Send + 'static,
    ) -> Result<T, RepoError> {
        let (reply, answer) = oneshot::channel();
        let in_flight = InFlight::new(&self.in_flight);
        let job: Job = Box::new(move |conn| {
            let answer = conn.and_then(f);
            drop(in_flight);
            // The caller may have gone away; then nobody wants the answer.
            let _ = reply.send(answer);
        });
        self.queue
            .send(job)
            .await
            .map_err(|_| RepoError::Unavailable("the sqlite readers have stopped".into()))?;
        answer
            .await
            .map_err(|_| RepoError::Backend("the sqlite read failed without an answer".into()))?
    }
}

fn run(path: &Path, rx: &Mutex<mpsc::Receiver<Job>>) {
    let mut conn: Option<Connection> = None;
    loop {
        // One thread waits on the queue at a time; the others wait for the lock. Nothing panics
        // while holding it, but a poisoned lock is still a usable queue.
        let job = {
            let mut rx = rx.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            rx.blocking_recv()
        };
        // `None`: every sender is gone, the store was dropped.
        let Some(job) = job else { break };
        if conn.is_none() {
            match open_reader(path) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    job(Err(map_err(e)));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        // A panicking read drops its reply (its caller gets an error) and its connection, which
        // may be mid-transaction; the thread carries on with a fresh one.
        if catch_unwind(AssertUnwindSafe(|| job(Ok(c)))).is_err() {
            conn = None;
        }
    }
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    super::index::attach(&conn, path)?;
    // Plans must not depend on bound values: otherwise SQLite marks a statement whose `LIMIT ?` (or
    // a range bound, with STAT4) takes a parameter as expired on every bind and re-prepares it on
    // the next step, which defeats the statement cache. Our plans are fixed primary-key seeks.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::{Readers, StillOpen};

    /// A read counts as busy from the moment it is sent until it is over, whether it runs, waits
    /// in the queue or its caller went away.
    #[tokio::test]
    async fn idle_counts_the_readers_without_a_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        Connection::open(&path).unwrap();
        super::super::index::open(&path).unwrap();
        let readers = Readers::spawn(&path, 2, &StillOpen::default()).unwrap();
        assert_eq!(readers.idle(), 2);
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel();
        let blocked = tokio::spawn({
            let readers = readers.clone();
            async move {
                readers
                    .read(move |_| {
                        let _ = started.send(());
                        held.recv().map_err(|_| crate::repo::RepoError::NotFound)
                    })
                    .await
            }
        });
        running.await.unwrap();
        assert_eq!(readers.idle(), 1);
        // A read whose caller gave up is still counted until it has run.
        let (release2, held2) = std::sync::mpsc::channel::<()>();
        let dropped =
            readers.read(move |_| held2.recv().map_err(|_| crate::repo::RepoError::NotFound));
        let gave_up = tokio::time::timeout(std::time::Duration::from_millis(1), dropped).await;
        assert!(gave_up.is_err());
        assert_eq!(readers.idle(), 0);
        release.send(()).unwrap();
        blocked.await.unwrap().unwrap();
        release2.send(()).unwrap();
        for _ in 0..1_000 {
            if readers.idle() == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(readers.idle(), 2);
        readers.read(|_| Ok(())).await.unwrap();
        assert_eq!(readers.idle(), 2);
    }

    /// Reader threads run side by side only if SQLite does not put every page fetch and every
    /// allocation behind a process-wide mutex: `.cargo/config.toml` builds it that way
    /// (DESIGN.md, "Transcript search"). A build that lost those flags fails here.
    #[test]
    fn the_bundled_sqlite_shares_no_lock_between_connections() {
        let conn = Connection::open_in_memory().unwrap();
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(options.contains(&"ENABLE_FTS5".to_owned()), "{options:?}");
        assert!(
            !options.contains(&"ENABLE_MEMORY_MANAGEMENT".to_owned()),
            "{options:?}"
        );
        assert!(
            options.contains(&"DEFAULT_MEMSTATUS=0".to_owned()),
            "{options:?}"
        );
    }
}
