//! What the delivery loop of this instance holds: the deliveries it claimed (or is claiming)
//! and has not yet logged an attempt for. The per-endpoint concurrency counts them, and
//! `Delivering::stop` releases their leases.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::domain::webhook::EndpointId;
use crate::repo::webhooks::DeliveryKey;

/// The deliveries this instance holds or is claiming (from the claim until the attempt is
/// logged), per endpoint.
#[derive(Default)]
pub struct InFlight {
    held: std::sync::Mutex<HashMap<EndpointId, HashSet<u64>>>,
    /// Set by `Delivering::stop`: from then on the keys stay, for it to release.
    stopping: AtomicBool,
}

impl InFlight {
    pub fn count(&self, id: &EndpointId) -> usize {
        self.held
            .lock()
            .map_or(0, |m| m.get(id).map_or(0, HashSet::len))
    }

    pub fn add(&self, key: &DeliveryKey) {
        if let Ok(mut m) = self.held.lock() {
            m.entry(key.endpoint.clone()).or_default().insert(key.order);
        }
    }

    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    pub fn remove(&self, key: &DeliveryKey) {
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(mut m) = self.held.lock()
            && let Some(orders) = m.get_mut(&key.endpoint)
        {
            orders.remove(&key.order);
            if orders.is_empty() {
                m.remove(&key.endpoint);
            }
        }
    }

    pub fn keys(&self) -> Vec<DeliveryKey> {
        self.held.lock().map_or_else(
            |_| Vec::new(),
            |m| {
                m.iter()
                    .flat_map(|(endpoint, orders)| {
                        orders.iter().map(|&order| DeliveryKey {
                            endpoint: endpoint.clone(),
                            order,
                        })
                    })
                    .collect()
            },
        )
    }
}

/// A delivery this instance holds, taken out of [`InFlight`] when its attempt's task ends
/// however it ends (a panic too), unless the instance is stopping.
pub struct Holding {
    pub in_flight: Arc<InFlight>,
    pub key: DeliveryKey,
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.in_flight.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(endpoint: &EndpointId, order: u64) -> DeliveryKey {
        DeliveryKey {
            endpoint: endpoint.clone(),
            order,
        }
    }

    #[test]
    fn a_key_leaves_when_its_holding_is_dropped_unless_the_instance_is_stopping() {
        let a = EndpointId::generate();
        let in_flight = Arc::new(InFlight::default());
        for order in [1, 2, 3] {
            in_flight.add(&key(&a, order));
        }
        assert_eq!(in_flight.count(&a), 3);
        // An attempt's task that ends in any way (here: its future dropped, as after a panic).
        drop(Holding {
            in_flight: in_flight.clone(),
            key: key(&a, 1),
        });
        assert_eq!(in_flight.count(&a), 2);
        in_flight.stopping();
        drop(Holding {
            in_flight: in_flight.clone(),
            key: key(&a, 2),
        });
        let mut kept: Vec<u64> = in_flight.keys().iter().map(|k| k.order).collect();
        kept.sort_unstable();
        assert_eq!(
            kept,
            [2, 3],
            "a stopping instance keeps every key it holds, to release"
        );
    }

    #[test]
    fn a_panicking_attempt_gives_its_key_back() {
        let a = EndpointId::generate();
        let in_flight = Arc::new(InFlight::default());
        in_flight.add(&key(&a, 7));
        let holding = Holding {
            in_flight: in_flight.clone(),
            key: key(&a, 7),
        };
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _holding = holding;
            panic!("an attempt that panics");
        }));
        assert!(panicked.is_err());
        assert_eq!(in_flight.count(&a), 0);
    }
}
