//! The counters every append touches, which the service keeps handles to rather than looking
//! them up in the recorder on every event.

use metrics::{Counter, Recorder};

/// `events_stored_total` and `event_replays_total`. Made with [`ServiceMetrics::new`] from the
/// recorder the application passes in, they are registered once and count from then on,
/// whatever was installed when. The default looks each one up in the global recorder as it
/// counts: slower, and right in any start-up order too.
#[derive(Clone, Default)]
pub struct ServiceMetrics(Option<Handles>);

#[derive(Clone)]
struct Handles {
    events_stored: Counter,
    event_replays: Counter,
}

impl ServiceMetrics {
    /// Handles registered with `recorder`.
    pub fn new(recorder: &dyn Recorder) -> Self {
        metrics::with_local_recorder(recorder, || {
            Self(Some(Handles {
                events_stored: metrics::counter!("events_stored_total"),
                event_replays: metrics::counter!("event_replays_total"),
            }))
        })
    }

    /// `n` new events stored.
    pub(super) fn stored(&self, n: u64) {
        match &self.0 {
            Some(handles) => handles.events_stored.increment(n),
            None => metrics::counter!("events_stored_total").increment(n),
        }
    }

    /// `n` events found already stored (retries).
    pub(super) fn replayed(&self, n: u64) {
        match &self.0 {
            Some(handles) => handles.event_replays.increment(n),
            None => metrics::counter!("event_replays_total").increment(n),
        }
    }
}
