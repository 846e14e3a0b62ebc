//! Live transcripts: following a session's events as they are stored.
//!
//! Storage is the only source of truth. A follower remembers the last `seq` it sent and only ever
//! sends `last + 1`, read from storage or announced after its commit, so what it sends is every
//! event exactly once, in order, however it got to hear of it. The [`Hub`] only *announces*:
//! - writes through this process announce the stored event at once ([`Hub::publish`]);
//! - other processes' writes reach it through the store's change feed (MongoDB change streams,
//!   one per process, fanned out here), or, without one, through a poller that reads the watched
//!   sessions every `poll_interval` ([`watch`]).
//!
//! Announcements travel in a small bounded channel per watched session; a follower that falls
//! behind loses announcements (never events) and reads from storage again. Memory per stream is
//! therefore bounded whatever its consumer does.

mod follow;
mod watch;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::broadcast;

use super::{ServiceError, session_error};
use crate::domain::{Event, SessionId};
use crate::repo::Repositories;

pub use follow::{Follow, LiveFrame, Start};
pub use watch::Watchers;

/// Announcements kept per watched session for its slowest follower; one that falls further
/// behind reads storage instead.
const ANNOUNCEMENTS_PER_SESSION: usize = 64;

/// How live streams run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveSettings {
    /// Open streams at most; beyond it new ones are refused.
    pub max_streams: usize,
    /// A stream with nothing to send says so this often (an SSE comment keeps proxies from
    /// closing it).
    pub keepalive: Duration,
    /// How often the watched sessions are read when no change feed reports other writers.
    pub poll_interval: Duration,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            max_streams: 10_000,
            keepalive: Duration::from_secs(15),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// What a follower hears.
#[derive(Debug, Clone)]
enum Signal {
    /// This event is stored.
    Event(Arc<Event>),
    /// Something changed (events by another writer, the session's end or erasure): read storage.
    Changed,
}

/// One watched session's announcements.
struct Channel {
    signals: broadcast::Sender<Signal>,
    /// The highest seq announced here, so the poller announces only what is new.
    announced: AtomicU64,
}

struct Inner {
    channels: Mutex<HashMap<SessionId, Arc<Channel>>>,
    open: AtomicUsize,
    settings: LiveSettings,
    closing: tokio::sync::watch::Sender<bool>,
    /// Whether a change feed currently reports every writer's changes (the poller rests).
    feed_up: AtomicBool,
}

/// The announcements of one process, shared by its writers, its change feed and its streams.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Hub {
    pub fn new(settings: LiveSettings) -> Self {
        metrics::gauge!("streams_max").set(settings.max_streams as f64);
        Self {
            inner: Arc::new(Inner {
                channels: Mutex::default(),
                open: AtomicUsize::new(0),
                settings,
                closing: tokio::sync::watch::Sender::new(false),
                feed_up: AtomicBool::new(false),
            }),
        }
    }

    pub fn settings(&self) -> LiveSettings {
        self.inner.settings
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Arc<Channel>>> {
        self.inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn channel(&self, id: &SessionId) -> Option<Arc<Channel>> {
        self.channels().get(id).cloned()
    }

    /// Announces a stored event to the session's followers (nothing to do if it has none).
    pub fn publish(&self, event: &Event) {
        if let Some(channel) = self.channel(&event.session_id) {
            channel.announced.fetch_max(event.seq, Ordering::Relaxed);
            let _ = channel.signals.send(Signal::Event(Arc::new(event.clone())));
        }
    }

    /// Tells the session's followers to read storage: it ended, was erased, or another writer
    /// stored events.
    pub fn poke(&self, id: &SessionId) {
        if let Some(channel) = self.channel(id) {
            let _ = channel.signals.send(Signal::Changed);
        }
    }

    /// Tells every follower to read storage (after announcements may have been missed).
    fn poke_all(&self) {
        let channels: Vec<Arc<Channel>> = self.channels().values().cloned().collect();
        for channel in channels {
            let _ = channel.signals.send(Signal::Changed);
        }
    }

    /// The watched sessions with the highest seq announced for each.
    fn watched(&self) -> Vec<(SessionId, u64)> {
        self.channels()
            .iter()
            .map(|(id, c)| (id.clone(), c.announced.load(Ordering::Relaxed)))
            .collect()
    }

    /// Records that other writers' events up to `seq` exist; whether that is news.
    fn announce_up_to(&self, id: &SessionId, seq: u64) -> bool {
        self.channel(id)
            .is_some_and(|c| c.announced.fetch_max(seq, Ordering::Relaxed) < seq)
    }

    fn set_feed_up(&self, up: bool) {
        self.inner.feed_up.store(up, Ordering::Relaxed);
    }

    fn feed_up(&self) -> bool {
        self.inner.feed_up.load(Ordering::Relaxed)
    }

    /// A place among the open streams, or `None` when `max_streams` are open or the process is
    /// shutting down.
    pub fn try_open(&self) -> Option<StreamPermit> {
        if *self.inner.closing.borrow() {
            return None;
        }
        let max = self.inner.settings.max_streams;
        self.inner
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        metrics::gauge!("streams_open").increment(1.0);
        Some(StreamPermit { hub: self.clone() })
    }

    /// How many streams are open.
    pub fn open_streams(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }

    /// Listens to a session's announcements from now on.
    fn subscribe(&self, id: &SessionId) -> Subscription {
        let mut channels = self.channels();
        let channel = channels
            .entry(id.clone())
            .or_insert_with(|| {
                Arc::new(Channel {
                    signals: broadcast::Sender::new(ANNOUNCEMENTS_PER_SESSION),
                    announced: AtomicU64::new(0),
                })
            })
            .clone();
        Subscription {
            hub: self.clone(),
            id: id.clone(),
            signals: Some(channel.signals.subscribe()),
        }
    }

    /// Opens a live stream (see [`super::SessionService::follow`]).
    pub(super) async fn follow(
        &self,
        repos: &Repositories,
        id: &SessionId,
        start: Start,
    ) -> Result<Follow, ServiceError> {
        let Some(permit) = self.try_open() else {
            metrics::counter!("streams_refused_total").increment(1);
            return Err(ServiceError::TooManyStreams(self.settings().max_streams));
        };
        // Listening before reading: whatever is stored after the read is announced.
        let subscription = self.subscribe(id);
        let session = repos.sessions.get(id).await.map_err(session_error(id))?;
        if start.after_seq > session.event_count {
            return Err(ServiceError::StartAfterLastEvent {
                requested: start.after_seq,
                last: session.event_count,
            });
        }
        Ok(follow::spawn(
            repos.clone(),
            id.clone(),
            subscription,
            permit,
            start,
        ))
    }

    /// Ends every stream (graceful shutdown): clients resume elsewhere with `Last-Event-ID`.
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }

    fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    /// Resolves once the hub closes: what a stream that does not follow a session (the change
    /// feed's) waits for beside its reads, to end cleanly on shutdown.
    pub async fn closed(&self) {
        let _ = self.closing().wait_for(|closing| *closing).await;
    }
}

/// One open stream, counted until dropped.
pub struct StreamPermit {
    hub: Hub,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.hub.inner.open.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("streams_open").decrement(1.0);
    }
}

/// A follower's ear on one session; the session stops being watched with its last subscription.
struct Subscription {
    hub: Hub,
    id: SessionId,
    signals: Option<broadcast::Receiver<Signal>>,
}

impl Subscription {
    async fn recv(&mut self) -> Result<Signal, broadcast::error::RecvError> {
        match self.signals.as_mut() {
            Some(signals) => signals.recv().await,
            None => Err(broadcast::error::RecvError::Closed),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.signals.take());
        let mut channels = self.hub.channels();
        if channels
            .get(&self.id)
            .is_some_and(|c| c.signals.receiver_count() == 0)
        {
            channels.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventId, EventType, JsonObject, Timestamp};

    fn id(raw: &str) -> SessionId {
        SessionId::parse(raw).unwrap()
    }

    fn event(session: &str, seq: u64) -> Event {
        Event {
            session_id: id(session),
            event_id: EventId::parse(format!("e-{seq}")).unwrap(),
            seq,
            event_type: EventType::System,
            payload: JsonObject::default(),
            timestamp: Timestamp::now(),
        }
    }

    fn hub(max_streams: usize) -> Hub {
        Hub::new(LiveSettings {
            max_streams,
            ..LiveSettings::default()
        })
    }

    #[test]
    fn no_more_than_max_streams_are_open_and_a_closed_one_frees_its_place() {
        let hub = hub(2);
        let first = hub.try_open().unwrap();
        let _second = hub.try_open().unwrap();
        assert!(hub.try_open().is_none());
        assert_eq!(hub.open_streams(), 2);
        drop(first);
        assert!(hub.try_open().is_some());
    }

    #[test]
    fn no_stream_opens_once_the_hub_is_closing() {
        let hub = hub(10);
        hub.close();
        assert!(hub.try_open().is_none());
    }

    #[tokio::test]
    async fn a_session_is_watched_while_it_has_a_subscription_and_hears_its_own_events_only() {
        let hub = hub(10);
        let mut a = hub.subscribe(&id("a"));
        let second_a = hub.subscribe(&id("a"));
        assert_eq!(hub.watched().len(), 1);
        hub.publish(&event("b", 1));
        hub.publish(&event("a", 7));
        match a.recv().await.unwrap() {
            Signal::Event(e) => assert_eq!((e.session_id.as_str(), e.seq), ("a", 7)),
            other => panic!("expected the event, got {other:?}"),
        }
        drop(second_a);
        assert_eq!(hub.watched(), vec![(id("a"), 7)]);
        drop(a);
        assert!(hub.watched().is_empty());
        // Nobody listens: announcing costs nothing and creates nothing.
        hub.publish(&event("a", 8));
        assert!(hub.watched().is_empty());
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_it_lagged_instead_of_buffering_more() {
        let hub = hub(10);
        let mut slow = hub.subscribe(&id("a"));
        for seq in 1..=(ANNOUNCEMENTS_PER_SESSION as u64 + 10) {
            hub.publish(&event("a", seq));
        }
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(10))
        ));
    }

    #[test]
    fn the_poller_announces_only_what_is_new() {
        let hub = hub(10);
        let _sub = hub.subscribe(&id("a"));
        hub.publish(&event("a", 3));
        assert!(!hub.announce_up_to(&id("a"), 3));
        assert!(hub.announce_up_to(&id("a"), 5));
        assert!(!hub.announce_up_to(&id("a"), 5));
        assert!(!hub.announce_up_to(&id("unwatched"), 9));
    }
}
