//! What is open on one HTTP/2 connection, and the two decisions its timer makes from it: `next`
//! (while it serves) and `wound_down` (once a `GOAWAY` went out).
//!
//! - A request is *waiting* while its handler runs (handlers are bounded by the request timeout,
//!   so no timer here cuts them), then it is an *answer* being sent, or a *live stream*.
//! - Each answer has its own clock, moved whenever a frame of its body is taken: one answer
//!   that the client does not take (a window left at zero) is seen however busy the rest of the
//!   connection is. Live streams may stay quiet for as long as they like.
//! - A request that begins once the connection winds down is *late*: a client that keeps opening
//!   requests after a `GOAWAY` does not hold the connection (or a shutdown) open.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Bytes;
use hyper::body::{Frame, SizeHint};
use pin_project_lite::pin_project;

use super::super::{ConnectionLimits, STREAM_CLOSE_GRACE, Stamp, later};

/// The requests open on one connection.
pub(super) struct Open {
    opened: Instant,
    /// Every request open, from its head until its answer is sent or dropped.
    requests: AtomicUsize,
    /// Requests begun before the connection began to wind down whose handler has not answered.
    waiting: AtomicUsize,
    live: AtomicUsize,
    /// Whether a request has come (before the first, the header timeout applies).
    served: AtomicBool,
    /// Set when the connection begins to wind down: the requests begun from then on are late.
    winding: AtomicBool,
    /// When a request last began or ended.
    moved: Stamp,
    /// When a request begun before the wind-down last ended.
    ended: Stamp,
    /// The answers being sent (live streams aside): when each last moved, and whether its
    /// request was late. At most `HTTP2_MAX_STREAMS` entries.
    answers: Mutex<HashMap<u64, (Arc<Stamp>, bool)>>,
    next_answer: AtomicU64,
}

/// The answers being sent, as the timer sees them.
struct Answers {
    /// When the one that has waited longest for the client last moved.
    stalest: Option<Instant>,
    /// How many of them were asked for before the wind-down.
    early: usize,
}

impl Open {
    pub(super) fn new(opened: Instant) -> Self {
        Self {
            opened,
            requests: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            winding: AtomicBool::new(false),
            moved: Stamp::new(opened),
            ended: Stamp::new(opened),
            answers: Mutex::new(HashMap::new()),
            next_answer: AtomicU64::new(0),
        }
    }

    /// From now on, requests are late.
    pub(super) fn wind_down(&self) {
        self.winding.store(true, Ordering::SeqCst);
    }

    fn answers(&self) -> Answers {
        let answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        Answers {
            stalest: answers.values().map(|(moved, _)| moved.at()).min(),
            early: answers.values().filter(|(_, late)| !late).count(),
        }
    }
}

/// What the connection's timer does next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Look again then.
    At(Instant),
    /// Idle (or silent) too long: `GOAWAY`, then `wound_down` decides.
    WindDown,
    /// An answer that has not moved for too long: drop the connection.
    Drop,
}

/// The timer's decision at `now`, before any wind-down.
pub(super) fn next(
    open: &Open,
    accepted: Instant,
    limits: &ConnectionLimits,
    now: Instant,
) -> Next {
    let keepalive = limits.keepalive_timeout;
    if open.requests.load(Ordering::SeqCst) == 0 {
        let due = if open.served.load(Ordering::SeqCst) {
            later(open.moved.at(), keepalive)
        } else {
            later(accepted, limits.header_read_timeout)
        };
        return if now >= due {
            Next::WindDown
        } else {
            Next::At(due)
        };
    }
    // Any answer begun from now on is due later than `now + keepalive`.
    let look = later(now, keepalive);
    match open.answers().stalest.map(|at| later(at, keepalive)) {
        Some(due) if now >= due => Next::Drop,
        Some(due) => Next::At(due.min(look)),
        None => Next::At(look),
    }
}

/// Whether a connection winding down since `since` (its `GOAWAY` sent; looked at every
/// `STREAM_CLOSE_GRACE`) is to be dropped now:
/// - an answer the client has not taken for `keepalive_timeout` drops it, as before;
/// - requests asked for before the `GOAWAY` may finish (their handlers are bounded by the
///   request timeout, a shutdown by its drain limit);
/// - then live streams, which end by themselves on shutdown, have had `STREAM_CLOSE_GRACE` (a
///   client that stopped reading would hold the drain);
/// - then what was sent has `STREAM_CLOSE_GRACE` from the last of those requests to go out. Late
///   requests are not waited for.
pub(super) fn wound_down(
    open: &Open,
    since: Instant,
    limits: &ConnectionLimits,
    now: Instant,
) -> bool {
    let answers = open.answers();
    if answers
        .stalest
        .is_some_and(|at| now >= later(at, limits.keepalive_timeout))
    {
        return true;
    }
    if open.waiting.load(Ordering::SeqCst) > 0 || answers.early > 0 {
        return false;
    }
    open.live.load(Ordering::SeqCst) > 0
        || now >= later(since.max(open.ended.at()), STREAM_CLOSE_GRACE)
}

/// Where one request is.
enum State {
    Waiting,
    Answer(u64),
    Live,
}

/// One open request: from its head until its answer's body is sent or dropped.
pub(super) struct Request {
    open: Arc<Open>,
    late: bool,
    state: State,
}

impl Request {
    pub(super) fn new(open: &Arc<Open>) -> Self {
        open.served.store(true, Ordering::SeqCst);
        open.requests.fetch_add(1, Ordering::SeqCst);
        let late = open.winding.load(Ordering::SeqCst);
        if !late {
            open.waiting.fetch_add(1, Ordering::SeqCst);
        }
        open.moved.touch();
        Self {
            open: Arc::clone(open),
            late,
            state: State::Waiting,
        }
    }

    /// Answered, with a live stream or not: its body, holding the request open.
    pub(super) fn answer(mut self, body: axum::body::Body, live: bool) -> Held {
        let open = Arc::clone(&self.open);
        let mut clock = None;
        if live {
            open.live.fetch_add(1, Ordering::SeqCst);
            self.state = State::Live;
        } else {
            let moved = Arc::new(Stamp::new(open.opened));
            moved.touch();
            let key = open.next_answer.fetch_add(1, Ordering::SeqCst);
            open.answers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key, (Arc::clone(&moved), self.late));
            self.state = State::Answer(key);
            clock = Some(moved);
        }
        if !self.late {
            open.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        Held {
            body,
            clock,
            _request: self,
        }
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        // The times first: a timer that sees nothing open must see them.
        self.open.moved.touch();
        if !self.late {
            self.open.ended.touch();
        }
        match self.state {
            State::Waiting if !self.late => {
                self.open.waiting.fetch_sub(1, Ordering::SeqCst);
            }
            State::Waiting => {}
            State::Answer(key) => {
                self.open
                    .answers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&key);
            }
            State::Live => {
                self.open.live.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.open.requests.fetch_sub(1, Ordering::SeqCst);
    }
}

pin_project! {
    /// An answer's body, holding its request open until it is sent or dropped, and moving the
    /// answer's clock (live streams have none) whenever a frame of it is taken.
    pub(super) struct Held {
        #[pin]
        body: axum::body::Body,
        clock: Option<Arc<Stamp>>,
        _request: Request,
    }
}

impl hyper::body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        let polled = this.body.poll_frame(cx);
        if let (true, Some(clock)) = (polled.is_ready(), this.clock.as_ref()) {
            clock.touch();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use super::{ConnectionLimits, Next, Open, Request, next, wound_down};

    const LIMITS: ConnectionLimits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(10),
        keepalive_timeout: Duration::from_secs(75),
        max_connections: 10,
        http2_max_streams: 200,
    };

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn body() -> axum::body::Body {
        axum::body::Body::empty()
    }

    #[test]
    fn a_connection_without_a_request_winds_down_after_the_header_timeout_and_goes_at_once() {
        let accepted = Instant::now();
        let open = Open::new(accepted);
        assert_eq!(
            next(&open, accepted, &LIMITS, accepted + secs(1)),
            Next::At(accepted + secs(10))
        );
        assert_eq!(
            next(&open, accepted, &LIMITS, accepted + secs(10)),
            Next::WindDown
        );
        // Nothing was asked for: the GOAWAY has its grace to go out, not an idle timeout.
        let since = accepted + secs(10);
        open.wind_down();
        assert!(!wound_down(&open, since, &LIMITS, since + ms(100)));
        assert!(wound_down(&open, since, &LIMITS, since + ms(500)));
    }

    #[test]
    fn an_idle_connection_winds_down_after_the_keepalive_timeout_from_its_last_request() {
        let accepted = Instant::now();
        let open = Arc::new(Open::new(accepted));
        drop(Request::new(&open).answer(body(), false));
        let idle_from = open.moved.at();
        assert!(idle_from >= accepted);
        assert_eq!(
            next(&open, accepted, &LIMITS, idle_from + secs(74)),
            Next::At(idle_from + secs(75))
        );
        assert_eq!(
            next(&open, accepted, &LIMITS, idle_from + secs(75)),
            Next::WindDown
        );
    }

    #[test]
    fn a_handler_at_work_and_a_quiet_stream_keep_a_connection_and_one_stalled_answer_drops_it() {
        let accepted = Instant::now();
        let open = Arc::new(Open::new(accepted));
        let stream = Request::new(&open).answer(body(), true);
        let handler = Request::new(&open);
        let far = accepted + secs(3600);
        assert_eq!(
            next(&open, accepted, &LIMITS, far),
            Next::At(far + secs(75))
        );
        // An answer beside them that the client does not take.
        let stalled = Request::new(&open).answer(body(), false);
        let at = stalled.clock.as_ref().map(|c| c.at()).unwrap_or(accepted);
        assert_eq!(
            next(&open, accepted, &LIMITS, at + secs(1)),
            Next::At(at + secs(75))
        );
        // Others that come and go do not hide it.
        drop(Request::new(&open).answer(body(), false));
        assert_eq!(next(&open, accepted, &LIMITS, at + secs(75)), Next::Drop);
        drop(stalled);
        drop(handler);
        assert_eq!(open.requests.load(Ordering::SeqCst), 1);
        assert_eq!(open.waiting.load(Ordering::SeqCst), 0);
        drop(stream);
        assert_eq!(open.live.load(Ordering::SeqCst), 0);
        assert_eq!(open.requests.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn winding_down_waits_for_what_was_asked_before_then_gives_streams_and_bytes_the_grace() {
        let accepted = Instant::now();
        let open = Arc::new(Open::new(accepted));
        let stream = Request::new(&open).answer(body(), true);
        let handler = Request::new(&open);
        let since = Instant::now();
        open.wind_down();
        // A handler at work: waited for, however long (the request timeout bounds it).
        assert!(!wound_down(&open, since, &LIMITS, since + secs(600)));
        let answer = handler.answer(body(), false);
        // Its answer: waited for, unless it stops moving.
        let at = answer.clock.as_ref().map(|c| c.at()).unwrap_or(since);
        assert!(!wound_down(&open, since, &LIMITS, at + secs(1)));
        assert!(wound_down(&open, since, &LIMITS, at + secs(75)));
        drop(answer);
        // Only a live stream left: it has had its grace.
        assert!(wound_down(&open, since, &LIMITS, since + ms(500)));
        drop(stream);
        // Nothing open: what was sent has the grace from the last answer's end to go out.
        let ended = open.ended.at();
        assert!(!wound_down(&open, since, &LIMITS, ended + ms(100)));
        assert!(wound_down(&open, since, &LIMITS, ended + ms(500)));
    }

    #[test]
    fn requests_begun_after_the_goaway_do_not_hold_the_connection() {
        let accepted = Instant::now();
        let open = Arc::new(Open::new(accepted));
        let since = Instant::now();
        open.wind_down();
        let late = Request::new(&open);
        let late_answer = Request::new(&open).answer(body(), false);
        assert_eq!(open.waiting.load(Ordering::SeqCst), 0);
        assert!(wound_down(&open, since, &LIMITS, since + ms(500)));
        drop(late);
        drop(late_answer);
        // Their ends do not move the grace either.
        assert!(wound_down(&open, since, &LIMITS, since + ms(500)));
    }
}
