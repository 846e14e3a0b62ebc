//! The delivery loop: due deliveries claimed with a lease (so one instance attempts each), sent
//! signed, and logged with what comes next: done, tried again on the schedule (not before a
//! `Retry-After`), failed, or the endpoint disabled (410, or failing too long).
//!
//! A session's messages to one endpoint start in change order: a first attempt waits until every
//! earlier message of the session has had its first. A message being retried holds nothing back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use tokio::sync::Semaphore;

use super::Webhooks;
use super::fanout::{PACE, Pass};
use super::in_flight::{Holding, InFlight};
use super::window::Window;
use crate::domain::Timestamp;
use crate::domain::webhook::{
    EndpointId, Secret, Verdict, WebhookUrl, parse_retry_after, signature_header, verdict,
};
use crate::repo::RepoError;
use crate::repo::webhooks::{AfterAttempt, Attempt, Claimed, DeliveryKey, Ended, Endpoint};

/// How often the loop looks for due deliveries when nothing tells it to.
const POLL: Duration = Duration::from_millis(250);
/// How often the loops look again when no endpoint is enabled.
const IDLE: Duration = Duration::from_secs(1);
/// How often the fan-out moves to the newest change when there is no endpoint.
const SKIP_INTERVAL: Duration = Duration::from_secs(60);
/// How much longer than the timeout a lease lasts (after that, another instance may try).
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// How often the backlog's gauges are refreshed and old deliveries trimmed.
const HOUSEKEEPING: Duration = Duration::from_secs(5);
const TRIM_PER_PASS: u32 = 10_000;
/// How much of a receiver's answer is read (and thrown away) to keep its connection.
const MAX_DRAINED_BYTES: usize = 64 * 1024;
/// The longest error text an attempt logs.
const MAX_ERROR_CHARS: usize = 300;

/// How long a stopping instance tries to let go of the leases of its unfinished attempts.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// The loops of one instance; stopped when dropped.
pub struct Delivering {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    webhooks: Webhooks,
    /// Marks this instance's leases.
    token: String,
    in_flight: Arc<InFlight>,
}

impl Delivering {
    /// Stops the loops and the attempts in flight (their tasks are aborted: a request already
    /// sent may still reach its receiver, the at-least-once copy a stop can cause; so may an
    /// attempt that ended in the moment before the pass that logs it), waits until
    /// the loops have let go of storage, then lets go of the leases this instance still holds or
    /// was taking, so that another instance, or this one restarted, sends those messages at once
    /// rather than when the lease ends.
    pub async fn stop(mut self) {
        self.in_flight.stopping();
        for task in std::mem::take(&mut self.tasks) {
            task.abort();
            let _ = task.await;
        }
        let unfinished = self.in_flight.keys();
        if unfinished.is_empty() {
            return;
        }
        let repo = &self.webhooks.0.repos.webhooks;
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
        match client(&webhooks) {
            Ok(client) => tasks.push(tokio::spawn(deliver(
                webhooks.clone(),
                client,
                token.clone(),
                in_flight.clone(),
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

async fn deliver(
    webhooks: Webhooks,
    client: reqwest::Client,
    token: String,
    in_flight: Arc<InFlight>,
) {
    let permits = Arc::new(Semaphore::new(webhooks.settings().max_in_flight.max(1)));
    // Owned here, so that stopping this loop stops the attempts too. Each gives back what it
    // ended with, and its holding, kept until that is logged.
    let mut attempts = tokio::task::JoinSet::new();
    let mut unlogged: Vec<(Ended, Holding)> = Vec::new();
    let mut window: Option<Window> = None;
    // Whether anything a pass looks at may have changed since the last one chose nothing.
    let mut look = true;
    let passes = Loop {
        webhooks: &webhooks,
        client: &client,
        permits: &permits,
        in_flight: &in_flight,
        token: &token,
    };
    loop {
        while let Some(done) = attempts.try_join_next() {
            unlogged.extend(done.ok());
            look = true;
        }
        if look || !unlogged.is_empty() {
            let started = passes
                .pass(&mut attempts, &mut window, &mut unlogged)
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
            Some(done) = attempts.join_next(), if !attempts.is_empty() => unlogged.extend(done.ok()),
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
}

impl Loop<'_> {
    /// Logs the attempts that ended and claims what may start now, in one write; starts what it
    /// claimed, and says how many. A call's next message is thus claimed in the transaction that
    /// logs the attempt before it (one write per attempt, not a claim and a log). If the write
    /// fails the ended attempts stay, to be logged by the next pass.
    async fn pass(
        &self,
        attempts: &mut tokio::task::JoinSet<(Ended, Holding)>,
        window: &mut Option<Window>,
        unlogged: &mut Vec<(Ended, Holding)>,
    ) -> Result<usize, RepoError> {
        let chosen = self.choose(window, unlogged).await?;
        if chosen.is_empty() && unlogged.is_empty() {
            return Ok(0);
        }
        let (in_flight, token) = (self.in_flight, self.token);
        let repo = &self.webhooks.0.repos.webhooks;
        let now = Timestamp::now();
        let lease = self.webhooks.settings().timeout + LEASE_MARGIN;
        let until = Timestamp::from_millis(now.millis() + lease.as_millis() as i64).unwrap_or(now);
        // Held from the claim until the attempt is logged: if the loop stops in between, even
        // while the claim is being written, `Delivering::stop` releases them.
        for key in &chosen {
            in_flight.add(key);
        }
        let ended: Vec<Ended> = unlogged.iter().map(|(e, _)| e.clone()).collect();
        let (held, claimed) = repo
            .settle(&ended, &chosen, token, now, until)
            .await
            .inspect_err(|e| {
                chosen.iter().for_each(|key| in_flight.remove(key));
                if !ended.is_empty() {
                    tracing::warn!(error = %e, "cannot log webhook attempts; trying again");
                }
            })?;
        for ((e, _), held) in unlogged.iter().zip(held) {
            if !held {
                tracing::warn!(
                    endpoint = e.key.endpoint.as_str(),
                    order = e.key.order,
                    "a webhook attempt outlived its lease; another instance may have tried it too"
                );
            }
        }
        // Logged: their holdings go.
        unlogged.clear();
        for key in chosen
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
            attempts.spawn(async move {
                let ended = attempt(&webhooks, &client, &endpoint, &claimed).await;
                drop(permit);
                (ended, holding)
            });
        }
        Ok(started)
    }

    /// The deliveries that may start now, marked held in the window: none when no permit is
    /// free or no endpoint is enabled.
    async fn choose(
        &self,
        window: &mut Option<Window>,
        unlogged: &[(Ended, Holding)],
    ) -> Result<Vec<DeliveryKey>, RepoError> {
        // An attempt that ended leaves the window now, though it is logged only with this pass's
        // claims (ahead of them, in one write): the call's next message may be among them. A
        // window read before that write still shows it; it leaves that one too.
        let forget = |w: &mut Window| unlogged.iter().for_each(|(e, _)| w.finished(&e.key));
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
            if unlogged.is_empty() {
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
            let ended = unlogged
                .iter()
                .filter(|(e, _)| e.key.endpoint == *id)
                .count();
            self.in_flight.count(id).saturating_sub(ended)
        };
        let chosen = w.choose(free, self.webhooks.settings().per_endpoint, busy);
        w.hold(&chosen);
        Ok(chosen)
    }
}

/// The secrets that sign now: the current one, and the one before a rotation during its overlap.
fn secrets(endpoint: &Endpoint, now: Timestamp) -> Vec<&Secret> {
    let mut secrets = vec![&endpoint.secret];
    if let Some((old, until)) = &endpoint.previous_secret
        && *until > now.millis()
    {
        secrets.push(old);
    }
    secrets
}

/// One attempt, and what is to be logged of it; the endpoint's health updated.
async fn attempt(
    webhooks: &Webhooks,
    client: &reqwest::Client,
    endpoint: &Endpoint,
    claimed: &Claimed,
) -> Ended {
    let started = Instant::now();
    let now = Timestamp::now();
    let (status, retry_after, error) = send(webhooks, client, endpoint, claimed, now).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let outcome = verdict(status, retry_after);
    let settings = webhooks.settings();
    let after = match outcome {
        Verdict::Delivered => AfterAttempt::Succeeded,
        Verdict::Gone => AfterAttempt::Failed,
        Verdict::Retry { not_before } => {
            let jitter = (uuid::Uuid::new_v4().as_u128() % 2001) as f64 / 1000.0 - 1.0;
            let finished = Timestamp::now();
            match settings
                .schedule
                .next_at(claimed.step as usize + 1, finished, jitter)
            {
                None => AfterAttempt::Failed,
                Some(at) => {
                    let floor = not_before.map_or(at, |d| {
                        Timestamp::from_millis(finished.millis() + d.as_millis() as i64)
                            .unwrap_or(at)
                    });
                    AfterAttempt::RetryAt(at.max(floor))
                }
            }
        }
    };
    let label = match (outcome, status) {
        (Verdict::Delivered, _) => "delivered",
        (Verdict::Gone, _) => "gone",
        (_, Some(_)) => "http_error",
        (_, None) => "no_response",
    };
    metrics::counter!("webhook_attempts_total", "outcome" => label).increment(1);
    metrics::histogram!("webhook_attempt_duration_seconds").record(duration_ms as f64 / 1000.0);
    let logged = Attempt {
        at: now.millis(),
        response_status: status,
        duration_ms,
        error,
    };
    // The endpoint first: once the log shows a 410, the endpoint shows it disabled.
    health(webhooks, endpoint, outcome, now).await;
    Ended {
        key: claimed.key.clone(),
        attempt: logged,
        after,
    }
}

/// Sends one attempt: the receiver's status and `Retry-After`, or why there was no answer.
async fn send(
    webhooks: &Webhooks,
    client: &reqwest::Client,
    endpoint: &Endpoint,
    claimed: &Claimed,
    now: Timestamp,
) -> (Option<u16>, Option<Duration>, Option<String>) {
    let url = match WebhookUrl::parse(&endpoint.url) {
        Ok(url) => url,
        Err(e) => return (None, None, Some(format!("invalid URL: {}", e.0))),
    };
    // Names are checked by the resolver as they are dialled; an address written in the URL here.
    if matches!(url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)))
        && let Err(refused) = webhooks.check_host(&url).await
    {
        return (None, None, Some(format!("refused: {refused}")));
    }
    let seconds = now.millis().div_euclid(1000);
    let body = claimed.body.as_bytes();
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let signature = signature_header(&secrets(endpoint, now), &claimed.message_id, seconds, body);
    for (name, value) in [
        ("webhook-id", claimed.message_id.clone()),
        ("webhook-timestamp", seconds.to_string()),
        ("webhook-signature", signature),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    let sent = client
        .post(url.as_str())
        .headers(headers)
        .body(claimed.body.clone())
        .send()
        .await;
    match sent {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, Timestamp::now()));
            // Only the status counts. A short body is read to its end so that the connection
            // can carry the next message; a long one is left (and its connection closed).
            let mut read = 0;
            while read <= MAX_DRAINED_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => read += chunk.len(),
                    Ok(None) | Err(_) => break,
                }
            }
            (Some(status), retry_after, None)
        }
        Err(e) => {
            let mut text =
                std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(": ");
            if e.is_timeout() {
                text = format!(
                    "timed out after {} ms",
                    webhooks.settings().timeout.as_millis()
                );
            }
            (
                None,
                None,
                Some(text.chars().take(MAX_ERROR_CHARS).collect()),
            )
        }
    }
}

/// Disables the endpoint on 410, or when every attempt has failed for `disable_after_seconds`;
/// a success clears the failing streak.
async fn health(webhooks: &Webhooks, endpoint: &Endpoint, outcome: Verdict, now: Timestamp) {
    let disable_after = webhooks.settings().disable_after_seconds;
    let needed = match outcome {
        Verdict::Delivered => endpoint.failing_since.is_some(),
        Verdict::Gone => true,
        Verdict::Retry { .. } => endpoint
            .failing_since
            .is_none_or(|since| now.minus_seconds(disable_after).millis() >= since),
    };
    if !needed {
        return;
    }
    let changed = webhooks
        .change(endpoint.id.as_str(), |e| match outcome {
            Verdict::Delivered => e.failing_since = None,
            Verdict::Gone => {
                e.set_enabled(false, Some("the receiver answered 410 Gone".into()), now);
            }
            Verdict::Retry { .. } => match e.failing_since {
                None => e.failing_since = Some(now.millis()),
                Some(since) if now.minus_seconds(disable_after).millis() >= since => {
                    let reason = format!("every attempt failed for {disable_after} seconds");
                    e.set_enabled(false, Some(reason), now);
                }
                Some(_) => {}
            },
        })
        .await;
    match changed {
        Ok(e) if endpoint.enabled && !e.enabled => {
            tracing::warn!(endpoint = e.id.as_str(), reason = ?e.disabled_reason, "webhook endpoint disabled");
            metrics::counter!("webhook_endpoints_disabled_total").increment(1);
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot update a webhook endpoint's health"),
    }
}
