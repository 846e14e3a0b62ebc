//! The order in which the store's connections close. SQLite folds a WAL back into its database
//! file and removes the `-wal` and `-shm` files only when the last connection to that file
//! closes, and only if that connection may write. The reader threads' connections are read-only
//! (and attach the search index's file), so the writer closes last: it waits until the
//! readers, the indexer and the checkpointer have closed theirs (each holds a [`StillOpen`]
//! until then), tidies the index file (`index::tidy`), then checkpoints and closes the store.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Held by a thread for as long as its connection is open.
#[derive(Clone, Default)]
pub struct StillOpen(Arc<()>);

/// What the writer waits on: every [`StillOpen`] made from one, dropped.
pub struct Others(Weak<()>);

impl StillOpen {
    /// The handle that tells when every clone of this one is gone (drop this one after
    /// handing out its clones).
    pub fn others(&self) -> Others {
        Others(Arc::downgrade(&self.0))
    }
}

impl Others {
    /// Waits (a thread's sleep, polling) until every holder has closed, for at most `limit`;
    /// whether they all did.
    pub fn wait_closed(&self, limit: Duration) -> bool {
        let started = Instant::now();
        while self.0.strong_count() > 0 {
            if started.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::StillOpen;

    #[test]
    fn the_wait_ends_when_the_last_holder_lets_go_and_not_before() {
        let open = StillOpen::default();
        let others = open.others();
        let held = open.clone();
        drop(open);
        assert!(
            !others.wait_closed(Duration::from_millis(20)),
            "one is still held"
        );
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(held);
        });
        assert!(others.wait_closed(Duration::from_secs(10)));
        thread.join().unwrap();
    }
}
