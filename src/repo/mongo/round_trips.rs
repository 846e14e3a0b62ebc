//! Round trips to MongoDB, counted by the driver's command monitoring: each command the driver
//! sends is one round trip (on a replica set with `w: majority`, a write's is a replication
//! wait), so latency and throughput follow this count more than CPU. Exported as
//! `mongodb_commands_total{command}` and kept per store for the tests that pin each operation's
//! count (`tests/round_trips.rs`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;

/// Commands sent by one store's client, by name. Kept for the life of the store; a handful of
/// names (the commands this service sends), so it does not grow with traffic.
#[derive(Debug, Default)]
pub struct RoundTrips(Mutex<BTreeMap<String, u64>>);

impl RoundTrips {
    /// The handler to install as the client's `command_event_handler`.
    pub(super) fn handler(self: &Arc<Self>) -> EventHandler<CommandEvent> {
        let counts = Arc::clone(self);
        EventHandler::callback(move |event| {
            if let CommandEvent::Started(started) = event {
                counts.record(&started.command_name);
            }
        })
    }

    fn record(&self, command: &str) {
        metrics::counter!("mongodb_commands_total", "command" => command.to_owned()).increment(1);
        // A poisoned lock only means another thread panicked while counting: the counts stay
        // usable.
        let mut counts = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.entry(command.to_owned()).or_default() += 1;
    }

    /// The commands sent so far, by name.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
