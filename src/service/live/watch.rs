//! How a process hears of other writers: the store's change feed when it has one (one per
//! process), and a poller of the watched sessions whenever the feed is not up.

use std::time::Duration;

use futures_util::StreamExt;

use super::Hub;
use crate::repo::{Change, RepoError, Repositories};

/// How long a broken change feed waits before it is opened again.
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// The background tasks that feed a [`Hub`]; stopped when dropped.
pub struct Watchers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Watchers {
    pub fn start(hub: Hub, repos: Repositories) -> Self {
        let mut tasks = vec![tokio::spawn(poll(hub.clone(), repos.clone()))];
        if let Some(feed) = repos.changes.clone() {
            tasks.push(tokio::spawn(async move {
                let mut was_up = true;
                loop {
                    match feed.open().await {
                        Ok(mut changes) => {
                            hub.set_feed_up(true);
                            // Whatever happened while it was closed: followers read storage.
                            hub.poke_all();
                            if !was_up {
                                tracing::info!("the change feed is up again");
                            }
                            was_up = true;
                            while let Some(change) = changes.next().await {
                                match change {
                                    Ok(Change::Event(event)) => hub.publish(&event),
                                    Ok(Change::SessionEnded(id)) => hub.poke(&id),
                                    Err(e) => {
                                        tracing::warn!(error = %e, "the change feed failed; polling the watched sessions until it reopens");
                                        break;
                                    }
                                }
                            }
                        }
                        Err(e) if was_up => {
                            tracing::warn!(error = %e, "the change feed cannot be opened; polling the watched sessions until it can");
                            was_up = false;
                        }
                        Err(_) => {}
                    }
                    hub.set_feed_up(false);
                    tokio::time::sleep(REOPEN_AFTER).await;
                }
            }));
        }
        Self { tasks }
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Every `poll_interval`, unless the change feed is up: reads each watched session and tells its
/// followers to read storage when it has events not yet announced here, or its end is stored, or
/// it is gone.
async fn poll(hub: Hub, repos: Repositories) {
    let mut ticks = tokio::time::interval(hub.settings().poll_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if hub.feed_up() {
            continue;
        }
        for (id, _) in hub.watched() {
            match repos.sessions.get(&id).await {
                Ok(session) => {
                    let news = hub.announce_up_to(&id, session.event_count);
                    // A timer end that is not yet stored is the followers' own to record, at
                    // their deadline: only a stored end is news here.
                    if news || session.status.is_terminal() {
                        hub.poke(&id);
                    }
                }
                Err(RepoError::Deleted | RepoError::NotFound) => hub.poke(&id),
                // Storage trouble: the next tick tries again.
                Err(_) => {}
            }
        }
    }
}
