//! One live stream: a task that catches up from storage, then follows the session's
//! announcements, and hands frames to the connection through a small bounded channel.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::{Signal, StreamPermit, Subscription};
use crate::domain::{Event, Order, Session, SessionId, Timestamp};
use crate::repo::{EventRange, RepoError, Repositories};

/// Events per storage read while catching up.
const CATCH_UP_PAGE: u32 = 100;
/// Frames waiting for a slow connection, at most; then the follower waits (and, if it falls
/// further behind, reads storage again when the connection drains).
const FRAMES_BUFFERED: usize = 16;
/// A timer end is looked for this long after the deadline (clocks and rounding).
const DEADLINE_SLACK: Duration = Duration::from_millis(20);

/// Where a stream starts: after this seq (`0`: at the first event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    pub after_seq: u64,
    /// Whether the client is resuming (`Last-Event-ID`), for the metrics.
    pub resumed: bool,
}

/// What a live stream sends, in this order: events, `CaughtUp` once, more events, then at most
/// one of `Ended` / `Deleted` as the last frame. `Keepalive` whenever it has been idle.
#[derive(Debug, Clone)]
pub enum LiveFrame {
    Event(Arc<Event>),
    /// Everything stored when the stream opened has been sent; the last seq sent.
    CaughtUp(u64),
    /// The session ended after the last of its events was sent.
    Ended(Box<Session>),
    /// The session was erased.
    Deleted(SessionId),
    Keepalive,
}

/// A live stream's frames. Dropping it (the client went away) stops its task.
pub struct Follow {
    frames: mpsc::Receiver<LiveFrame>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Follow {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl futures_util::Stream for Follow {
    type Item = LiveFrame;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<LiveFrame>> {
        self.frames.poll_recv(cx)
    }
}

/// What woke a waiting follower.
enum Woke {
    Signal(Result<Signal, broadcast::error::RecvError>),
    Deadline,
    Idle,
}

/// Resolves once the process is shutting down.
async fn shutting_down(closing: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = closing.wait_for(|closing| *closing).await;
}

/// Why a follower stopped.
enum Stop {
    /// The client is gone, or the process is shutting down.
    Gone,
    /// The stream is complete (its last frame was sent), or storage failed (the client resumes).
    Done,
}

struct Follower {
    repos: Repositories,
    id: SessionId,
    subscription: Subscription,
    frames: mpsc::Sender<LiveFrame>,
    closing: tokio::sync::watch::Receiver<bool>,
    keepalive: Duration,
    /// The last seq sent.
    last: u64,
    /// When the session's timer would end it, as last read.
    deadline: Option<Instant>,
    /// The session, once a catch-up found it ended with every event sent.
    ended: Option<Box<Session>>,
    _permit: StreamPermit,
}

/// Starts a stream's task. `subscription` was taken before the session was read, so nothing
/// stored after that read can be missed.
pub(super) fn spawn(
    repos: Repositories,
    id: SessionId,
    subscription: Subscription,
    permit: StreamPermit,
    start: Start,
) -> Follow {
    let hub = subscription.hub.clone();
    let (tx, rx) = mpsc::channel(FRAMES_BUFFERED);
    if start.resumed {
        metrics::counter!("stream_resumes_total").increment(1);
    }
    let follower = Follower {
        repos,
        id,
        subscription,
        frames: tx,
        closing: hub.closing(),
        keepalive: hub.settings().keepalive,
        last: start.after_seq,
        deadline: None,
        ended: None,
        _permit: permit,
    };
    Follow {
        frames: rx,
        task: tokio::spawn(follower.run()),
    }
}

impl Follower {
    async fn run(mut self) {
        let _ = self.follow().await;
    }

    async fn follow(&mut self) -> Result<(), Stop> {
        self.catch_up().await?;
        self.send(LiveFrame::CaughtUp(self.last)).await?;
        self.end_if_over().await?;
        let mut idle = Box::pin(tokio::time::sleep(self.keepalive));
        loop {
            let woke = tokio::select! {
                biased;
                () = shutting_down(&mut self.closing) => return Err(Stop::Gone),
                () = self.frames.closed() => return Err(Stop::Gone),
                signal = self.subscription.recv() => Woke::Signal(signal),
                () = sleep_until(self.deadline) => Woke::Deadline,
                () = &mut idle => Woke::Idle,
            };
            match woke {
                Woke::Signal(Ok(Signal::Event(event))) if event.seq == self.last + 1 => {
                    self.last = event.seq;
                    self.send(LiveFrame::Event(event)).await?;
                }
                Woke::Signal(Ok(Signal::Event(event))) if event.seq <= self.last => continue,
                Woke::Signal(Err(broadcast::error::RecvError::Closed)) => return Err(Stop::Gone),
                // A gap, another change, lost announcements: storage knows.
                Woke::Signal(_) => {
                    self.catch_up().await?;
                    self.end_if_over().await?;
                }
                Woke::Deadline => {
                    self.record_timer_end().await;
                    self.catch_up().await?;
                    self.end_if_over().await?;
                }
                Woke::Idle => self.send(LiveFrame::Keepalive).await?,
            }
            idle.as_mut().reset(Instant::now() + self.keepalive);
        }
    }

    /// Sends every stored event after `last`, in order; remembers the session's state.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        loop {
            let range = EventRange {
                order: Order::Asc,
                start: crate::repo::Start::AfterSeq(self.last),
                limit: CATCH_UP_PAGE,
            };
            let page = match self.repos.events.page(&self.id, range).await {
                Ok(page) => page,
                Err(RepoError::Deleted | RepoError::NotFound) => {
                    self.send(LiveFrame::Deleted(self.id.clone())).await?;
                    return Err(Stop::Done);
                }
                Err(e) => {
                    tracing::warn!(error = %e, session_id = %self.id, "a live stream could not read storage; closing it (the client resumes)");
                    return Err(Stop::Done);
                }
            };
            for event in page.events {
                if event.seq != self.last + 1 {
                    tracing::error!(session_id = %self.id, seq = event.seq, after = self.last, "storage returned events out of order; closing the stream");
                    return Err(Stop::Done);
                }
                self.last = event.seq;
                self.send(LiveFrame::Event(Arc::new(event))).await?;
            }
            if !page.has_more {
                // Only a recorded end ends the stream: until the timer's end is written, an
                // append that arrived before the deadline may still commit after it.
                let session = page.session;
                self.deadline = session.deadline().map(|d| instant_of(d.at));
                self.ended = (session.status.is_terminal() && self.last >= session.event_count)
                    .then(|| Box::new(session));
                return Ok(());
            }
        }
    }

    /// At the session's deadline: records the timer's end, as the sweeper would (a conditional
    /// write: an append that got in first wins, and moves the deadline). Failures leave it to
    /// the sweeper; the next catch-up reads what is stored either way.
    async fn record_timer_end(&self) {
        let hub = &self.subscription.hub;
        if let Err(e) = crate::service::expire(&self.repos, hub, &self.id, Timestamp::now()).await {
            tracing::debug!(error = %e, session_id = %self.id, "a live stream could not record a timer end; the sweeper will");
        }
    }

    /// After a catch-up that found the session ended: its last frame.
    async fn end_if_over(&mut self) -> Result<(), Stop> {
        match self.ended.take() {
            Some(session) => {
                self.send(LiveFrame::Ended(session)).await?;
                Err(Stop::Done)
            }
            None => Ok(()),
        }
    }

    /// Hands a frame to the connection, waiting while it is full; gives up when the client is
    /// gone or the process shuts down.
    async fn send(&mut self, frame: LiveFrame) -> Result<(), Stop> {
        let is_event = matches!(frame, LiveFrame::Event(_));
        tokio::select! {
            biased;
            () = shutting_down(&mut self.closing) => return Err(Stop::Gone),
            sent = self.frames.send(frame) => sent.map_err(|_| Stop::Gone)?,
        }
        if is_event {
            metrics::counter!("stream_events_delivered_total").increment(1);
        }
        Ok(())
    }
}

/// The monotonic instant of a wall-clock deadline (a little after it).
fn instant_of(at: Timestamp) -> Instant {
    let wait = u64::try_from(at.millis() - Timestamp::now().millis()).unwrap_or(0);
    Instant::now() + Duration::from_millis(wait) + DEADLINE_SLACK
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
