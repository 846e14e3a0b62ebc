//! An instance's webhook loops, started and stopped together: the fan-out, the housekeeping and
//! the delivery loop (`passes.rs`): due deliveries claimed with a lease (so one instance attempts
//! each), sent signed (`attempt.rs`), and logged with what comes next.
//!
//! A session's messages to one endpoint start in change order: a first attempt waits until every
//! earlier message of the session has had its first. A message being retried holds nothing back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Webhooks;
use super::fanout::{PACE, Pass};
use super::in_flight::InFlight;
use super::passes::{IDLE, Unlogged, deliver};
use crate::domain::Timestamp;

/// How often the fan-out moves to the newest change when there is no endpoint.
const SKIP_INTERVAL: Duration = Duration::from_secs(60);
/// How often the backlog's gauges are refreshed and old deliveries trimmed.
const HOUSEKEEPING: Duration = Duration::from_secs(5);
const TRIM_PER_PASS: u32 = 10_000;

/// How long a stopping instance tries to let go of the leases of its unfinished attempts.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// The loops of one instance; stopped when dropped.
pub struct Delivering {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    webhooks: Webhooks,
    /// Marks this instance's leases.
    token: String,
    in_flight: Arc<InFlight>,
    unlogged: Unlogged,
}

impl Delivering {
    /// Stops the loops and the attempts in flight (their tasks are aborted: a request already
    /// sent may still reach its receiver, the at-least-once copy a stop can cause), waits until
    /// the loops have let go of storage, logs the attempts that ended but were not logged yet,
    /// then lets go of the leases this instance still holds or was taking, so that another
    /// instance, or this one restarted, sends those messages at once rather than when the lease
    /// ends.
    pub async fn stop(mut self) {
        self.in_flight.stopping();
        for task in std::mem::take(&mut self.tasks) {
            task.abort();
            let _ = task.await;
        }
        let repo = &self.webhooks.0.repos.webhooks;
        let ended = self.unlogged.waiting();
        if !ended.is_empty() {
            let now = Timestamp::now();
            let logged = repo.settle(&ended, &[], &self.token, now, now);
            if !matches!(
                tokio::time::timeout(RELEASE_TIMEOUT, logged).await,
                Ok(Ok(_))
            ) {
                tracing::warn!(
                    "cannot log the webhook attempts that ended before the stop; they are sent again"
                );
            }
        }
        // Those just logged hold no lease any more: releasing them changes nothing.
        let unfinished = self.in_flight.keys();
        if unfinished.is_empty() {
            return;
        }
        match tokio::time::timeout(RELEASE_TIMEOUT, repo.release(&unfinished, &self.token)).await {
            Ok(Ok(released)) => {
                tracing::info!(
                    released,
                    "released the leases of unfinished webhook attempts"
                )
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot release webhook leases; they are sent again when their leases end")
            }
            Err(_) => tracing::warn!(
                "releasing webhook leases timed out; they are sent again when their leases end"
            ),
        }
    }
}

impl Drop for Delivering {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The HTTP client: no redirects, the attempt's timeout, and a resolver that refuses names that
/// resolve to a forbidden address (so the address checked is the address dialled).
fn client(webhooks: &Webhooks) -> Result<reqwest::Client, reqwest::Error> {
    let settings = webhooks.settings();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
        .user_agent(concat!(
            "session-service-webhooks/",
            env!("CARGO_PKG_VERSION")
        ))
        .dns_resolver(Arc::new(Guarded {
            allow_private: settings.allow_private_networks,
        }))
        .build()
}

struct Guarded {
    allow_private: bool,
}

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if !allow_private
                && let Some(bad) = found
                    .iter()
                    .find(|a| crate::domain::webhook::forbidden_address(a.ip()))
            {
                return Err(format!("refused: {} resolves to {}", name.as_str(), bad.ip()).into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl Delivering {
    pub(super) fn start(webhooks: Webhooks) -> Self {
        let fan = webhooks.clone();
        let fanout = tokio::spawn(async move {
            let mut skipped: Option<Instant> = None;
            loop {
                match fan.fan_out().await {
                    Ok(Pass::Moved { busy: true }) => tokio::time::sleep(PACE).await,
                    Ok(Pass::Moved { busy: false } | Pass::Raced | Pass::Idle) => {}
                    Ok(Pass::NoEndpoints) => {
                        if skipped.is_none_or(|at| at.elapsed() >= SKIP_INTERVAL) {
                            skipped = Some(Instant::now());
                            if let Err(e) = fan.skip_to_head().await {
                                tracing::warn!(error = %e, "webhook fan-out cannot move to the newest change");
                            }
                        }
                        // An endpoint created here wakes it at once; one created on another
                        // instance is seen within `IDLE`.
                        tokio::select! {
                            () = tokio::time::sleep(IDLE) => {}
                            () = fan.0.endpoints_changed.notified() => {}
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook fan-out failed; retrying in a second");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        let housekeeping = tokio::spawn(housekeeping(webhooks.clone()));
        let mut tasks = vec![fanout, housekeeping];
        let token = uuid::Uuid::new_v4().to_string();
        let in_flight = Arc::new(InFlight::default());
        let unlogged = Unlogged::default();
        match client(&webhooks) {
            Ok(client) => tasks.push(tokio::spawn(deliver(
                webhooks.clone(),
                client,
                token.clone(),
                in_flight.clone(),
                unlogged.clone(),
            ))),
            Err(e) => {
                tracing::error!(error = %e, "cannot build the webhook HTTP client; no webhook is sent")
            }
        }
        Self {
            tasks,
            webhooks,
            token,
            in_flight,
            unlogged,
        }
    }
}

async fn housekeeping(webhooks: Webhooks) {
    let repo = &webhooks.0.repos.webhooks;
    loop {
        match repo.backlog().await {
            Ok(backlog) => {
                metrics::gauge!("webhook_pending_messages").set(backlog.pending as f64);
                let age = backlog
                    .oldest
                    .map_or(0, |t| (Timestamp::now().millis() - t.millis()).max(0));
                metrics::gauge!("webhook_oldest_pending_age_seconds").set(age as f64 / 1000.0);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the webhook backlog"),
        }
        let before = Timestamp::now().minus_seconds(webhooks.settings().retention_seconds);
        if let Err(e) = repo.trim(before, TRIM_PER_PASS).await {
            tracing::warn!(error = %e, "cannot trim the webhook log");
        }
        tokio::time::sleep(HOUSEKEEPING).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::sqlite::{SqliteConfig, SqliteStore, Synchronous};
    use crate::repo::webhooks::{
        AfterAttempt, Attempt, DeliveryKey, DeliveryStatus, Ended, NewMessage,
    };
    use crate::service::webhooks::{NewEndpoint, WebhookSettings};

    /// An attempt that ended just before a stop, not yet logged by the loop's next pass, is
    /// logged by the stop: its lease is not released, so its message is not sent again.
    #[tokio::test]
    async fn a_stop_logs_an_attempt_that_ended_before_its_pass_instead_of_sending_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let config = SqliteConfig::new(dir.path().join("s.db"), Synchronous::Normal);
        let repos = SqliteStore::open(&config).unwrap().store.repositories();
        let settings = WebhookSettings {
            allow_private_networks: true,
            ..WebhookSettings::default()
        };
        let webhooks = Webhooks::new(repos.clone(), settings, |_| String::new());
        let endpoint = webhooks
            .create(NewEndpoint {
                url: Some("http://127.0.0.1:9/hook".into()),
                types: None,
                description: None,
                metadata_filter: None,
            })
            .await
            .unwrap();
        let now = Timestamp::now();
        let state = repos.webhooks.fanout_state().await.unwrap();
        let message = NewMessage {
            id: "msg_1".into(),
            order: state.next_order,
            kind: "session.created".into(),
            session_id: Some("s".into()),
            body: "{}".into(),
            created_at: now,
            due_at: now,
            endpoints: vec![endpoint.id.clone()],
        };
        assert!(
            repos
                .webhooks
                .enqueue(&state, None, vec![message])
                .await
                .unwrap()
        );
        let key = DeliveryKey {
            endpoint: endpoint.id.clone(),
            order: state.next_order,
        };
        let token = "this-instance".to_owned();
        let until = Timestamp::from_millis(now.millis() + 60_000).unwrap();
        let claimed = repos
            .webhooks
            .claim(std::slice::from_ref(&key), &token, now, until)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);

        // The attempt ended (delivered); its task handed it over and the loop stopped before
        // its next pass.
        let in_flight = Arc::new(InFlight::default());
        in_flight.add(&key);
        let unlogged = Unlogged::default();
        let attempt = Attempt {
            at: now.millis(),
            response_status: Some(204),
            duration_ms: 3,
            error: None,
        };
        unlogged.push(
            Ended {
                key: key.clone(),
                attempt: attempt.clone(),
                after: AfterAttempt::Succeeded,
            },
            super::super::in_flight::Holding {
                in_flight: in_flight.clone(),
                key: key.clone(),
            },
        );
        let delivering = Delivering {
            tasks: Vec::new(),
            webhooks,
            token,
            in_flight,
            unlogged,
        };
        delivering.stop().await;

        let logged = repos
            .webhooks
            .deliveries(&endpoint.id, None, None, 10)
            .await
            .unwrap();
        assert_eq!(logged.len(), 1);
        assert_eq!(
            (logged[0].status, logged[0].attempts.clone()),
            (DeliveryStatus::Succeeded, vec![attempt]),
            "logged, not released to be sent again"
        );
    }
}
