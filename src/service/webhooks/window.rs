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
//! - when the fan-out queued messages and the read that made the window found fewer than
//!   [`WINDOW`] rows (it held every due delivery, so the new ones belong in it; after a full read
//!   they come after every row in it);
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
    rows: Vec<Row>,
    read_at: Instant,
    /// `Webhooks::revision` when it was read.
    revision: u64,
    /// Whether the read found every due delivery (fewer than [`WINDOW`]).
    complete: bool,
}

/// A due delivery, and whether it waits for an earlier message of its session.
struct Row {
    due: Due,
    /// A first attempt with an earlier first attempt of the same session to the same endpoint
    /// in the window: it starts once that one has left the window.
    blocked: bool,
}

/// Whether `d` is a first attempt that keeps later messages of its session waiting.
fn in_line(d: &Due) -> bool {
    !d.attempted && d.session_id.is_some()
}

/// Whether `a` and `b` are messages of one session to one endpoint.
fn same_line(a: &Due, b: &Due) -> bool {
    a.session_id == b.session_id && a.key.endpoint == b.key.endpoint
}

/// The window's rows, in order, each blocked behind an earlier first attempt of its session.
fn rows(due: Vec<Due>) -> Vec<Row> {
    let mut heads: HashSet<(EndpointId, String)> = HashSet::new();
    due.into_iter()
        .map(|d| {
            let blocked = match (&d.session_id, in_line(&d)) {
                (Some(session), true) => !heads.insert((d.key.endpoint.clone(), session.clone())),
                _ => false,
            };
            Row { due: d, blocked }
        })
        .collect()
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
            complete: due.len() < WINDOW as usize,
            endpoints,
            rows: rows(due),
            read_at: Instant::now(),
            revision,
        })
    }

    /// Whether it must be read again before it is used (see the module's documentation).
    pub fn stale(&self, webhooks: &Webhooks) -> bool {
        self.read_at.elapsed() >= REFRESH || self.revision != webhooks.revision()
    }

    /// Whether the read found every due delivery, so that messages queued since belong in it.
    pub fn complete(&self) -> bool {
        self.complete
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
        // Endpoints are few (`MAX_ENDPOINTS`): a list is cheaper than a map.
        let mut taken: Vec<(&EndpointId, usize)> = Vec::new();
        let mut chosen = Vec::new();
        for row in &self.rows {
            let d = &row.due;
            if d.leased || row.blocked {
                continue;
            }
            let endpoint = &d.key.endpoint;
            let i = match taken.iter().position(|(e, _)| *e == endpoint) {
                Some(i) => i,
                None => {
                    taken.push((endpoint, busy(endpoint)));
                    taken.len() - 1
                }
            };
            if taken[i].1 >= per_endpoint {
                continue;
            }
            taken[i].1 += 1;
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
        for row in &mut self.rows {
            if keys
                .iter()
                .any(|k| k.order == row.due.key.order && *k == row.due.key)
            {
                row.due.leased = true;
            }
        }
    }

    /// An attempt on `key` was logged (or given up): it leaves the window, and the session's next
    /// message may start.
    pub fn finished(&mut self, key: &DeliveryKey) {
        let Some(at) = self.rows.iter().position(|r| r.due.key == *key) else {
            return;
        };
        let gone = self.rows.remove(at).due;
        if in_line(&gone)
            && let Some(next) = self.rows[at..]
                .iter_mut()
                .find(|r| in_line(&r.due) && same_line(&r.due, &gone))
        {
            next.blocked = false;
        }
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
            rows: rows(due),
            read_at: Instant::now(),
            revision: 0,
            complete: true,
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
    fn a_finished_first_attempt_lets_only_its_own_sessions_next_message_start() {
        let (a, b) = (EndpointId::generate(), EndpointId::generate());
        let mut w = window(vec![
            due(&a, 1, Some("s"), false),
            due(&b, 1, Some("s"), false),
            due(&a, 2, Some("t"), false),
            due(&a, 3, Some("s"), false),
            due(&b, 3, Some("s"), false),
            due(&a, 4, Some("t"), false),
        ]);
        let first = w.choose(10, 10, |_| 0);
        assert_eq!(orders(&first), [1, 1, 2]);
        w.hold(&first);
        w.finished(&first[0]);
        // `a`'s session `s` goes on; `b`'s waits for its own first one, `t` for its own.
        assert_eq!(
            w.choose(10, 10, |_| 0),
            [DeliveryKey {
                endpoint: a.clone(),
                order: 3
            }]
        );
        w.finished(&first[2]);
        assert_eq!(orders(&w.choose(10, 10, |_| 0)), [3, 4]);
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
