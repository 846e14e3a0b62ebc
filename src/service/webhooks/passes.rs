//! The delivery loop's passes. A pass logs the attempts that ended and claims what may start
//! now, in one write (`WebhookRepository::settle`, logs first): a call's next message is claimed
//! in the transaction that logs the one before, one write per attempt instead of a claim and a log.
//!
//! An attempt's task puts what it ended with in [`Unlogged`], where it stays, with its holding,
//! until a write has logged it. If that write fails, each attempt is logged on its own (so that
//! one that cannot be logged holds back no other) and leaves the list however that goes: one not
//! logged is tried again when its lease ends, as it always was. `Delivering::stop` logs what is
//! still there before it releases the leases.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::Webhooks;
use super::attempt::attempt;
use super::in_flight::{Holding, InFlight};
use super::window::Window;
use crate::domain::Timestamp;
use crate::domain::webhook::EndpointId;
use crate::repo::RepoError;
use crate::repo::webhooks::{DeliveryKey, Ended};

/// How often the loop looks for due deliveries when nothing tells it to.
const POLL: Duration = Duration::from_millis(250);
/// How often the loops look again when no endpoint is enabled.
pub(super) const IDLE: Duration = Duration::from_secs(1);
/// How much longer than the timeout a lease lasts (after that, another instance may try).
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// Attempts that ended and are not yet logged, each with its holding (so the lease stays this
/// instance's until the log is written).
#[derive(Clone, Default)]
pub struct Unlogged(Arc<Mutex<Vec<(Ended, Holding)>>>);

impl Unlogged {
    pub(super) fn push(&self, ended: Ended, holding: Holding) {
        if let Ok(mut list) = self.0.lock() {
            list.push((ended, holding));
        }
    }

    /// What is waiting to be logged, in the order the attempts ended.
    pub fn waiting(&self) -> Vec<Ended> {
        self.0.lock().map_or_else(
            |_| Vec::new(),
            |list| list.iter().map(|(e, _)| e.clone()).collect(),
        )
    }

    fn is_empty(&self) -> bool {
        self.0.lock().map_or(true, |list| list.is_empty())
    }

    /// The first `n` are logged (or given up): they leave, and their holdings go.
    fn logged(&self, n: usize) {
        let gone: Vec<(Ended, Holding)> = match self.0.lock() {
            Ok(mut list) => {
                let n = n.min(list.len());
                list.drain(..n).collect()
            }
            Err(_) => Vec::new(),
        };
        drop(gone);
    }
}

/// The delivery loop of one instance.
pub(super) async fn deliver(
    webhooks: Webhooks,
    client: reqwest::Client,
    token: String,
    in_flight: Arc<InFlight>,
    unlogged: Unlogged,
) {
    let permits = Arc::new(Semaphore::new(webhooks.settings().max_in_flight.max(1)));
    // Owned here, so that stopping this loop stops the attempts too.
    let mut attempts = tokio::task::JoinSet::new();
    let mut window: Option<Window> = None;
    // Whether anything a pass looks at may have changed since the last one chose nothing.
    let mut look = true;
    let passes = Loop {
        webhooks: &webhooks,
        client: &client,
        permits: &permits,
        in_flight: &in_flight,
        token: &token,
        unlogged: &unlogged,
    };
    loop {
        while attempts.try_join_next().is_some() {
            look = true;
        }
        if look || !unlogged.is_empty() {
            let started = passes
                .pass(&mut attempts, &mut window)
                .await
                .unwrap_or_else(|_| {
                    window = None;
                    0
                });
            if started > 0 {
                continue;
            }
        }
        look = true;
        tokio::select! {
            Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
            () = webhooks.0.queued.notified() => match &window {
                // Queued messages come after every row of a window read full: nothing to do.
                Some(w) if !w.complete() && !w.stale(&webhooks) => look = false,
                _ => window = None,
            },
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// What a pass of the delivery loop works with.
struct Loop<'a> {
    webhooks: &'a Webhooks,
    client: &'a reqwest::Client,
    permits: &'a Arc<Semaphore>,
    in_flight: &'a Arc<InFlight>,
    token: &'a str,
    unlogged: &'a Unlogged,
}

impl Loop<'_> {
    /// Logs the attempts that ended and claims what may start now, in one write; starts what it
    /// claimed, and says how many.
    async fn pass(
        &self,
        attempts: &mut tokio::task::JoinSet<()>,
        window: &mut Option<Window>,
    ) -> Result<usize, RepoError> {
        let ended = self.unlogged.waiting();
        // A window that cannot be read claims nothing, but what ended is still logged.
        let chosen = self.choose(window, &ended).await;
        let keys = chosen.as_deref().unwrap_or_default();
        if keys.is_empty() && ended.is_empty() {
            return chosen.map(|_| 0);
        }
        let (in_flight, token) = (self.in_flight, self.token);
        let repo = &self.webhooks.0.repos.webhooks;
        let now = Timestamp::now();
        let lease = self.webhooks.settings().timeout + LEASE_MARGIN;
        let until = Timestamp::from_millis(now.millis() + lease.as_millis() as i64).unwrap_or(now);
        // Held from the claim until the attempt is logged: if the loop stops in between, even
        // while the claim is being written, `Delivering::stop` releases them.
        for key in keys {
            in_flight.add(key);
        }
        let (held, claimed) = match repo.settle(&ended, keys, token, now, until).await {
            Ok(settled) => settled,
            Err(e) => {
                keys.iter().for_each(|key| in_flight.remove(key));
                self.log_each(&ended).await;
                return Err(e);
            }
        };
        for (e, held) in ended.iter().zip(held) {
            if !held {
                tracing::warn!(
                    endpoint = e.key.endpoint.as_str(),
                    order = e.key.order,
                    "a webhook attempt outlived its lease; another instance may have tried it too"
                );
            }
        }
        self.unlogged.logged(ended.len());
        for key in keys
            .iter()
            .filter(|key| !claimed.iter().any(|c| c.key == **key))
        {
            in_flight.remove(key);
        }
        let started = claimed.len();
        for claimed in claimed {
            let holding = Holding {
                in_flight: in_flight.clone(),
                key: claimed.key.clone(),
            };
            let Some(endpoint) = window
                .as_ref()
                .and_then(|w| w.endpoints.get(&claimed.key.endpoint))
                .cloned()
            else {
                continue;
            };
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                continue;
            };
            let (webhooks, client) = (self.webhooks.clone(), self.client.clone());
            let unlogged = self.unlogged.clone();
            attempts.spawn(async move {
                let ended = attempt(&webhooks, &client, &endpoint, &claimed).await;
                drop(permit);
                unlogged.push(ended, holding);
            });
        }
        chosen.map(|_| started)
    }

    /// After a write that failed: each attempt logged on its own, and gone from the list.
    async fn log_each(&self, ended: &[Ended]) {
        let repo = &self.webhooks.0.repos.webhooks;
        for e in ended {
            if let Err(error) = repo.record(&e.key, self.token, &e.attempt, e.after).await {
                tracing::warn!(
                    %error,
                    endpoint = e.key.endpoint.as_str(),
                    order = e.key.order,
                    "cannot log a webhook attempt; it is tried again when its lease ends"
                );
            }
        }
        self.unlogged.logged(ended.len());
    }

    /// The deliveries that may start now, marked held in the window: none when no permit is
    /// free or no endpoint is enabled.
    async fn choose(
        &self,
        window: &mut Option<Window>,
        ended: &[Ended],
    ) -> Result<Vec<DeliveryKey>, RepoError> {
        // An attempt that ended leaves the window now, though it is logged only with this pass's
        // claims (ahead of them, in one write): the call's next message may be among them. A
        // window read before that write still shows it; it leaves that one too.
        let forget = |w: &mut Window| ended.iter().for_each(|e| w.finished(&e.key));
        if let Some(w) = window.as_mut() {
            forget(w);
        }
        let free = self.permits.available_permits();
        if free == 0 {
            // The loop waits for an attempt to finish.
            return Ok(Vec::new());
        }
        let w = match window {
            Some(w) if !w.stale(self.webhooks) => w,
            _ => window.insert(Window::read(self.webhooks).await?),
        };
        forget(w);
        if w.endpoints.is_empty() {
            *window = None;
            if ended.is_empty() {
                // The loop waits: queued messages (none can be, without an endpoint) or an
                // endpoint created here wake it; one created on another instance is seen within
                // `IDLE`.
                tokio::select! {
                    () = tokio::time::sleep(IDLE) => {}
                    () = self.webhooks.0.queued.notified() => {}
                }
            }
            return Ok(Vec::new());
        }
        // Attempts that ended are not in flight any more, though still held until logged.
        let busy = |id: &EndpointId| {
            let done = ended.iter().filter(|e| e.key.endpoint == *id).count();
            self.in_flight.count(id).saturating_sub(done)
        };
        let chosen = w.choose(free, self.webhooks.settings().per_endpoint, busy);
        w.hold(&chosen);
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::webhooks::{AfterAttempt, Attempt};

    fn ended(in_flight: &Arc<InFlight>, endpoint: &EndpointId, order: u64) -> (Ended, Holding) {
        let key = DeliveryKey {
            endpoint: endpoint.clone(),
            order,
        };
        in_flight.add(&key);
        let attempt = Attempt {
            at: 0,
            response_status: Some(204),
            duration_ms: 1,
            error: None,
        };
        let holding = Holding {
            in_flight: in_flight.clone(),
            key: key.clone(),
        };
        (
            Ended {
                key,
                attempt,
                after: AfterAttempt::Succeeded,
            },
            holding,
        )
    }

    /// A pass logs what was waiting when it began; an attempt that ends during its write stays,
    /// held, for the next pass. What is logged leaves, and its holding with it.
    #[test]
    fn a_pass_takes_out_only_what_it_logged() {
        let in_flight = Arc::new(InFlight::default());
        let unlogged = Unlogged::default();
        let endpoint = EndpointId::generate();
        let (a, held_a) = ended(&in_flight, &endpoint, 1);
        unlogged.push(a, held_a);
        let snapshot = unlogged.waiting();
        // Ends while the pass's write is under way.
        let (b, held_b) = ended(&in_flight, &endpoint, 2);
        unlogged.push(b, held_b);
        assert_eq!(in_flight.count(&endpoint), 2);
        unlogged.logged(snapshot.len());
        let left: Vec<u64> = unlogged.waiting().iter().map(|e| e.key.order).collect();
        assert_eq!(left, [2]);
        assert_eq!(
            in_flight.count(&endpoint),
            1,
            "the logged one is no longer held"
        );
    }
}
