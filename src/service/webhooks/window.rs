//! What the delivery loop knows of the due deliveries between reads of storage: the enabled
//! endpoints and up to [`WINDOW`] due deliveries, in order.
//!
//! A pass used to read both every time, though most passes start one attempt: after each attempt
//! the loop looked again, and a call's messages go one after another. Now the window is read once
//! and kept up to date with what this instance does to it: a delivery it claims is marked held,
//! and one whose attempt is logged leaves it, which lets the call's next message start.
//!
//! **When it is forgotten** (and read again at the next pass), in one place, [`Window::stale`]:
//! - [`REFRESH`] after it was read: claims by other instances, retries that came due, endpoints
//!   changed on other instances;
//! - when this instance changed an endpoint (a `PATCH`, a rotation, a 410), requeued deliveries or
//!   queued a test message (`Webhooks::revision` moved);
//! - when the fan-out queued messages and the window held fewer than [`WINDOW`] rows (the new ones
//!   belong in it);
//! - by the loop, after a storage call of a pass failed.
//!
//! A stale window costs nothing but a wasted claim: claims are conditional writes, so a delivery
//! another instance holds or has finished is not taken again.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::Webhooks;
use crate::domain::Timestamp;
use crate::domain::webhook::EndpointId;
use crate::repo::RepoError;
use crate::repo::webhooks::{DeliveryKey, Due, Endpoint};

/// Deliveries looked at per read, at most.
pub const WINDOW: u32 = 2000;
/// How long a window is used before it is read again.
pub const REFRESH: Duration = Duration::from_millis(250);

pub struct Window {
    /// The enabled endpoints, by id.
    pub endpoints: HashMap<EndpointId, Endpoint>,
    due: Vec<Due>,
    read_at: Instant,
    /// `Webhooks::revision` when it was read.
    revision: u64,
}

impl Window {
    /// Reads the enabled endpoints and their due deliveries.
    pub async fn read(webhooks: &Webhooks) -> Result<Window, RepoError> {
        let revision = webhooks.revision();
        let repo = &webhooks.0.repos.webhooks;
        let endpoints: HashMap<EndpointId, Endpoint> = repo
            .endpoints()
            .await
            .inspect_err(
                |e| tracing::warn!(error = %e, "webhook delivery cannot read the endpoints"),
            )?
            .into_iter()
            .filter(|e| e.enabled)
            .map(|e| (e.id.clone(), e))
            .collect();
        let due = if endpoints.is_empty() {
            Vec::new()
        } else {
            let ids: Vec<EndpointId> = endpoints.keys().cloned().collect();
            repo.due(Timestamp::now(), &ids, WINDOW).await?
        };
        Ok(Window {
            endpoints,
            due,
            read_at: Instant::now(),
            revision,
        })
    }

    /// Whether it must be read again before it is used (see the module's documentation).
    pub fn stale(&self, webhooks: &Webhooks) -> bool {
        self.read_at.elapsed() >= REFRESH || self.revision != webhooks.revision()
    }

    /// Whether it holds as many rows as a read returns: then messages queued since come after
    /// every row in it.
    pub fn full(&self) -> bool {
        self.due.len() >= WINDOW as usize
    }

    /// Which deliveries start now: in order, at most `free`, at most `per_endpoint` in flight per
    /// endpoint (`busy` says how many are), and a first attempt only once the session's earlier
    /// messages have had theirs.
    pub fn choose(
        &self,
        free: usize,
        per_endpoint: usize,
        busy: impl Fn(&EndpointId) -> usize,
    ) -> Vec<DeliveryKey> {
        let mut waiting: HashSet<(&EndpointId, Option<&str>)> = HashSet::new();
        let mut taken: HashMap<&EndpointId, usize> = HashMap::new();
        let mut chosen = Vec::new();
        for d in &self.due {
            let session = (&d.key.endpoint, d.session_id.as_deref());
            let first = !d.attempted;
            let held_back = first && d.session_id.is_some() && waiting.contains(&session);
            if first && d.session_id.is_some() {
                waiting.insert(session);
            }
            if d.leased || held_back {
                continue;
            }
            let starting = taken.get(&d.key.endpoint).copied().unwrap_or(0);
            if busy(&d.key.endpoint) + starting >= per_endpoint {
                continue;
            }
            *taken.entry(&d.key.endpoint).or_default() += 1;
            chosen.push(d.key.clone());
            if chosen.len() >= free {
                break;
            }
        }
        chosen
    }

    /// Marks `keys` held: this instance claimed them (or tried to; one it did not get is held by
    /// another instance, or done).
    pub fn hold(&mut self, keys: &[DeliveryKey]) {
        let keys: HashSet<&DeliveryKey> = keys.iter().collect();
        for d in &mut self.due {
            if keys.contains(&d.key) {
                d.leased = true;
            }
        }
    }

    /// An attempt on `key` was logged (or given up): it leaves the window, and the session's next
    /// message may start.
    pub fn finished(&mut self, key: &DeliveryKey) {
        self.due.retain(|d| d.key != *key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(endpoint: &EndpointId, order: u64, session: Option<&str>, attempted: bool) -> Due {
        Due {
            key: DeliveryKey {
                endpoint: endpoint.clone(),
                order,
            },
            session_id: session.map(str::to_owned),
            attempted,
            leased: false,
        }
    }

    fn window(due: Vec<Due>) -> Window {
        Window {
            endpoints: HashMap::new(),
            due,
            read_at: Instant::now(),
            revision: 0,
        }
    }

    fn orders(keys: &[DeliveryKey]) -> Vec<u64> {
        keys.iter().map(|k| k.order).collect()
    }

    #[test]
    fn a_sessions_next_message_starts_only_once_the_one_before_has_finished_its_attempt() {
        let a = EndpointId::generate();
        let mut w = window(vec![
            due(&a, 1, Some("s"), false),
            due(&a, 2, Some("s"), false),
            due(&a, 3, Some("t"), false),
            due(&a, 4, Some("s"), true),
            due(&a, 5, None, false),
        ]);
        // The head of each session, a retry (it holds nothing back) and a message of no session.
        assert_eq!(orders(&w.choose(10, 10, |_| 0)), [1, 3, 4, 5]);
        w.hold(&w.choose(10, 10, |_| 0));
        // Held while in flight: nothing more starts, not even the session's next.
        assert!(w.choose(10, 10, |_| 0).is_empty());
        w.finished(&DeliveryKey {
            endpoint: a.clone(),
            order: 1,
        });
        assert_eq!(orders(&w.choose(10, 10, |_| 0)), [2]);
    }

    #[test]
    fn at_most_free_start_and_at_most_per_endpoint_are_in_flight() {
        let (a, b) = (EndpointId::generate(), EndpointId::generate());
        let w = window(vec![
            due(&a, 1, None, false),
            due(&a, 2, None, false),
            due(&a, 3, None, false),
            due(&b, 4, None, false),
            due(&b, 5, None, false),
        ]);
        assert_eq!(orders(&w.choose(3, 10, |_| 0)), [1, 2, 3]);
        assert_eq!(orders(&w.choose(10, 2, |_| 0)), [1, 2, 4, 5]);
        // One already in flight to `a`.
        let busy = |id: &EndpointId| usize::from(*id == a);
        assert_eq!(orders(&w.choose(10, 2, busy)), [1, 4, 5]);
    }
}
