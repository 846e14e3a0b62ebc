//! Claims and logged attempts on the embedded store: the statements behind `claim`, `record`
//! and `settle`, which runs both in one writer transaction.

use rusqlite::{Connection, OptionalExtension, params};

use super::super::map_err;
use super::to_json;
use crate::domain::Timestamp;
use crate::repo::RepoError;
use crate::repo::webhooks::{
    AfterAttempt, Attempt, Claimed, DeliveryKey, DeliveryStatus, MAX_LOGGED_ATTEMPTS,
};

/// Takes those of `keys` still pending and unheld for `token` until `until`; the ones it took,
/// with what they send.
pub(super) fn claim(
    conn: &Connection,
    keys: &[DeliveryKey],
    token: &str,
    now: Timestamp,
    until: Timestamp,
) -> Result<Vec<Claimed>, RepoError> {
    let mut claimed = Vec::new();
    for key in keys {
        let row = conn
            .prepare_cached(
                "UPDATE webhook_deliveries SET lease_token = ?3, lease_until = ?5
                 WHERE endpoint_id = ?1 AND ord = ?2 AND status = 'pending'
                   AND (lease_until IS NULL OR lease_until <= ?4)
                 RETURNING step,
                   (SELECT id FROM webhook_messages m WHERE m.ord = ?2),
                   (SELECT body FROM webhook_messages m WHERE m.ord = ?2)",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        key.endpoint.as_str(),
                        key.order as i64,
                        token,
                        now.millis(),
                        until.millis()
                    ],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, Option<String>>(1)?,
                            r.get::<_, Option<String>>(2)?,
                        ))
                    },
                )
                .optional()
            })
            .map_err(map_err)?;
        if let Some((step, Some(message_id), Some(body))) = row {
            claimed.push(Claimed {
                key: key.clone(),
                message_id,
                body,
                step: u32::try_from(step).unwrap_or(u32::MAX),
            });
        }
    }
    Ok(claimed)
}

/// An attempt to log, ready for the statement (its JSON made before the writer runs it).
pub(super) struct Log {
    endpoint: String,
    ord: i64,
    status: DeliveryStatus,
    next: Option<i64>,
    attempt: String,
}

impl Log {
    pub(super) fn new(
        key: &DeliveryKey,
        attempt: &Attempt,
        after: AfterAttempt,
    ) -> Result<Self, RepoError> {
        let (status, next) = after.leaves();
        Ok(Log {
            endpoint: key.endpoint.as_str().to_owned(),
            ord: key.order as i64,
            status,
            next,
            attempt: to_json(attempt)?,
        })
    }
}

/// Logs the attempt and releases the lease, if `token` still holds it; whether it did.
pub(super) fn log(conn: &Connection, log: &Log, token: &str) -> Result<bool, RepoError> {
    // The log keeps the newest MAX_LOGGED_ATTEMPTS: the oldest goes as one comes.
    let changed = conn
        .prepare_cached(
            "UPDATE webhook_deliveries SET status = ?4, next_attempt_at = ?5,
                 step = step + 1, attempted = 1, lease_token = NULL, lease_until = NULL,
                 attempts = json_insert(
                     CASE WHEN json_array_length(attempts) >= ?7
                          THEN json_remove(attempts, '$[0]') ELSE attempts END,
                     '$[#]', json(?6))
             WHERE endpoint_id = ?1 AND ord = ?2 AND lease_token = ?3",
        )
        .and_then(|mut s| {
            s.execute(params![
                log.endpoint,
                log.ord,
                token,
                log.status.as_str(),
                log.next,
                log.attempt,
                MAX_LOGGED_ATTEMPTS as i64
            ])
        })
        .map_err(map_err)?;
    Ok(changed == 1)
}
