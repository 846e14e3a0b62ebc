//! One attempt: a claimed message sent signed to its endpoint, what the answer means for it
//! (done, tried again on the schedule but not before a `Retry-After`, failed), and the
//! endpoint's health (disabled on 410, or when failing too long). The delivery loop
//! (`passes.rs`) logs what the attempt ended with.

use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

use super::Webhooks;
use crate::domain::Timestamp;
use crate::domain::webhook::{
    Secret, Verdict, WebhookUrl, parse_retry_after, signature_header, verdict,
};
use crate::repo::webhooks::{AfterAttempt, Attempt, Claimed, Ended, Endpoint};

/// How much of a receiver's answer is read (and thrown away) to keep its connection.
const MAX_DRAINED_BYTES: usize = 64 * 1024;
/// The longest error text an attempt logs.
const MAX_ERROR_CHARS: usize = 300;

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
pub(super) async fn attempt(
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
