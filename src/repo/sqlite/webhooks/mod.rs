//! Webhooks on the embedded store (migrations 0010, 0012): every write goes through the writer,
//! so each compare-and-set below is one statement in one serialized transaction. Retention is in
//! [`retention`].

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

mod attempts;
mod retention;

use super::writer::Touches;
use super::{SqliteStore, map_err, rows};
use crate::domain::Timestamp;
use crate::domain::webhook::EndpointId;
use crate::repo::RepoError;
use crate::repo::webhooks::{
    AfterAttempt, Attempt, Backlog, Claimed, Delivery, DeliveryKey, DeliveryStatus, Due, Ended,
    Endpoint, FanoutState, NewMessage, StoredMessage, WebhookRepository,
};

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, RepoError> {
    serde_json::to_string(value).map_err(|e| RepoError::Backend(Box::new(e)))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, RepoError> {
    serde_json::from_str(text).map_err(|e| rows::corrupt(format!("{what}: {e}")))
}

fn timestamp(millis: i64) -> Result<Timestamp, RepoError> {
    Timestamp::from_millis(millis).map_err(|e| rows::corrupt(e.0))
}

fn order(value: i64) -> u64 {
    value.max(0) as u64
}

#[async_trait]
impl WebhookRepository for SqliteStore {
    async fn create_endpoint(&self, endpoint: &Endpoint, max: usize) -> Result<bool, RepoError> {
        let record = to_json(endpoint)?;
        let (id, revision, created_at) = (
            endpoint.id.as_str().to_owned(),
            endpoint.revision as i64,
            endpoint.created_at,
        );
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        // One statement of a write transaction (which holds the file's write lock): the count
        // is the count the insert lands on.
        self.write(Touches::Neither, move |db| {
            db.conn
                .prepare_cached(
                    "INSERT INTO webhook_endpoints SELECT ?1, ?2, ?3, ?4
                     WHERE (SELECT count(*) FROM webhook_endpoints) < ?5",
                )
                .and_then(|mut s| s.execute(params![id, revision, created_at, record, max]))
                .map_err(map_err)
                .map(|inserted| inserted == 1)
        })
        .await
    }

    async fn endpoint(&self, id: &EndpointId) -> Result<Endpoint, RepoError> {
        let id = id.as_str().to_owned();
        self.read(move |conn| {
            let record: Option<String> = conn
                .prepare_cached("SELECT record FROM webhook_endpoints WHERE id = ?1")
                .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
                .map_err(map_err)?;
            from_json(
                &record.ok_or(RepoError::NotFound)?,
                "webhook_endpoints.record",
            )
        })
        .await
    }

    async fn endpoints(&self) -> Result<Vec<Endpoint>, RepoError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT record FROM webhook_endpoints ORDER BY created_at, id")
                .map_err(map_err)?;
            let records = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(map_err)?;
            records
                .iter()
                .map(|r| from_json(r, "webhook_endpoints.record"))
                .collect()
        })
        .await
    }

    async fn replace_endpoint(
        &self,
        endpoint: &Endpoint,
        revision: u64,
    ) -> Result<bool, RepoError> {
        let mut next = endpoint.clone();
        next.revision = revision + 1;
        let record = to_json(&next)?;
        let id = endpoint.id.as_str().to_owned();
        self.write(Touches::Neither, move |db| {
            let changed = db
                .conn
                .prepare_cached(
                    "UPDATE webhook_endpoints SET revision = ?3, record = ?4
                     WHERE id = ?1 AND revision = ?2",
                )
                .and_then(|mut s| {
                    s.execute(params![id, revision as i64, revision as i64 + 1, record])
                })
                .map_err(map_err)?;
            if changed == 0 && !exists(db.conn, &id)? {
                return Err(RepoError::NotFound);
            }
            Ok(changed == 1)
        })
        .await
    }

    async fn delete_endpoint(&self, id: &EndpointId) -> Result<bool, RepoError> {
        let id = id.as_str().to_owned();
        self.write(Touches::Neither, move |db| {
            let removed = db
                .conn
                .prepare_cached("DELETE FROM webhook_endpoints WHERE id = ?1")
                .and_then(|mut s| s.execute([&id]))
                .map_err(map_err)?;
            db.conn
                .prepare_cached("DELETE FROM webhook_deliveries WHERE endpoint_id = ?1")
                .and_then(|mut s| s.execute([&id]))
                .map_err(map_err)?;
            Ok(removed == 1)
        })
        .await
    }

    async fn fanout_state(&self) -> Result<FanoutState, RepoError> {
        self.read(|conn| fanout_state(conn)).await
    }

    async fn enqueue(
        &self,
        expected: &FanoutState,
        position: Option<String>,
        messages: Vec<NewMessage>,
    ) -> Result<bool, RepoError> {
        let expected = expected.clone();
        self.write(Touches::Neither, move |db| {
            if fanout_state(db.conn)? != expected {
                return Ok(false);
            }
            let next_order = messages
                .last()
                .map_or(expected.next_order, |m| m.order + 1)
                .max(expected.next_order);
            db.conn
                .prepare_cached(
                    "INSERT INTO webhook_fanout (id, position, next_order) VALUES (1, ?1, ?2)
                     ON CONFLICT (id) DO UPDATE SET position = ?1, next_order = ?2",
                )
                .and_then(|mut s| s.execute(params![position, next_order as i64]))
                .map_err(map_err)?;
            for message in &messages {
                insert_message(db.conn, message)?;
            }
            Ok(true)
        })
        .await
    }

    async fn due(
        &self,
        now: Timestamp,
        enabled: &[EndpointId],
        limit: u32,
    ) -> Result<Vec<Due>, RepoError> {
        let enabled = to_json(&enabled)?;
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT endpoint_id, ord, session_id, attempted, lease_until
                     FROM webhook_deliveries
                     WHERE status = 'pending' AND next_attempt_at <= ?1
                       AND endpoint_id IN (SELECT value FROM json_each(?2))
                     ORDER BY ord LIMIT ?3",
                )
                .map_err(map_err)?;
            let rows = stmt
                .query_map(params![now.millis(), enabled, i64::from(limit)], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, bool>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                    ))
                })
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(map_err)?;
            rows.into_iter()
                .map(|(endpoint, ord, session_id, attempted, lease_until)| {
                    Ok(Due {
                        key: DeliveryKey {
                            endpoint: endpoint_id(endpoint)?,
                            order: order(ord),
                        },
                        session_id,
                        attempted,
                        leased: lease_until.is_some_and(|until| until > now.millis()),
                    })
                })
                .collect()
        })
        .await
    }

    async fn claim(
        &self,
        keys: &[DeliveryKey],
        token: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<Claimed>, RepoError> {
        let keys = keys.to_vec();
        let token = token.to_owned();
        self.write(Touches::Neither, move |db| {
            attempts::claim(db.conn, &keys, &token, now, until)
        })
        .await
    }

    async fn release(&self, keys: &[DeliveryKey], token: &str) -> Result<u64, RepoError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let keys = keys.to_vec();
        let token = token.to_owned();
        self.write(Touches::Neither, move |db| {
            let mut released = 0;
            for key in &keys {
                released += db
                    .conn
                    .prepare_cached(
                        "UPDATE webhook_deliveries SET lease_token = NULL, lease_until = NULL
                         WHERE endpoint_id = ?1 AND ord = ?2 AND lease_token = ?3",
                    )
                    .and_then(|mut s| {
                        s.execute(params![key.endpoint.as_str(), key.order as i64, token])
                    })
                    .map_err(map_err)? as u64;
            }
            Ok(released)
        })
        .await
    }

    async fn record(
        &self,
        key: &DeliveryKey,
        token: &str,
        attempt: &Attempt,
        after: AfterAttempt,
    ) -> Result<bool, RepoError> {
        let log = attempts::Log::new(key, attempt, after)?;
        let token = token.to_owned();
        self.write(Touches::Neither, move |db| {
            attempts::log(db.conn, &log, &token)
        })
        .await
    }

    async fn settle(
        &self,
        ended: &[Ended],
        keys: &[DeliveryKey],
        token: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<(Vec<bool>, Vec<Claimed>), RepoError> {
        let logs = ended
            .iter()
            .map(|e| attempts::Log::new(&e.key, &e.attempt, e.after))
            .collect::<Result<Vec<_>, _>>()?;
        let keys = keys.to_vec();
        let token = token.to_owned();
        self.write(Touches::Neither, move |db| {
            let held = logs
                .iter()
                .map(|log| attempts::log(db.conn, log, &token))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((held, attempts::claim(db.conn, &keys, &token, now, until)?))
        })
        .await
    }

    async fn deliveries(
        &self,
        endpoint: &EndpointId,
        status: Option<DeliveryStatus>,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Delivery>, RepoError> {
        let endpoint = endpoint.as_str().to_owned();
        let status = status.map(DeliveryStatus::as_str);
        let before = before.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT d.ord, m.id, m.kind, d.session_id, d.status, d.attempts,
                            d.next_attempt_at, d.created_at
                     FROM webhook_deliveries d JOIN webhook_messages m ON m.ord = d.ord
                     WHERE d.endpoint_id = ?1 AND d.ord < ?2 AND (?3 IS NULL OR d.status = ?3)
                     ORDER BY d.ord DESC LIMIT ?4",
                )
                .map_err(map_err)?;
            let rows = stmt
                .query_map(params![endpoint, before, status, i64::from(limit)], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<i64>>(6)?,
                        r.get::<_, i64>(7)?,
                    ))
                })
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(map_err)?;
            rows.into_iter()
                .map(
                    |(ord, id, kind, session_id, status, attempts, next, created)| {
                        Ok(Delivery {
                            order: order(ord),
                            message_id: id,
                            kind,
                            session_id,
                            status: DeliveryStatus::parse(&status)
                                .ok_or_else(|| rows::corrupt("webhook_deliveries.status"))?,
                            attempts: from_json(&attempts, "webhook_deliveries.attempts")?,
                            next_attempt_at: next.map(timestamp).transpose()?,
                            created_at: timestamp(created)?,
                        })
                    },
                )
                .collect()
        })
        .await
    }

    async fn requeue(
        &self,
        endpoint: &EndpointId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, RepoError> {
        let endpoint = endpoint.as_str().to_owned();
        self.write(Touches::Neither, move |db| {
            db.conn
                .prepare_cached(
                    "UPDATE webhook_deliveries
                     SET status = 'pending', step = 0, attempted = 0, next_attempt_at = ?3
                     WHERE endpoint_id = ?1 AND status <> 'pending'
                       AND ord IN (SELECT ord FROM webhook_messages WHERE created_at >= ?2)",
                )
                .and_then(|mut s| s.execute(params![endpoint, since.millis(), now.millis()]))
                .map_err(map_err)
                .map(|n| n as u64)
        })
        .await
    }

    async fn messages_of(&self, session_id: &str) -> Result<Vec<StoredMessage>, RepoError> {
        let session_id = session_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT ord, kind, created_at FROM webhook_messages
                     WHERE session_id = ?1 ORDER BY ord",
                )
                .map_err(map_err)?;
            let rows = stmt
                .query_map([session_id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(map_err)?;
            rows.into_iter()
                .map(|(ord, kind, created)| {
                    Ok(StoredMessage {
                        order: order(ord),
                        kind,
                        created_at: timestamp(created)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn replace_bodies(&self, bodies: Vec<(u64, String)>) -> Result<(), RepoError> {
        self.write(Touches::Neither, move |db| {
            for (ord, body) in &bodies {
                db.conn
                    .prepare_cached("UPDATE webhook_messages SET body = ?2 WHERE ord = ?1")
                    .and_then(|mut s| s.execute(params![*ord as i64, body]))
                    .map_err(map_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn backlog(&self) -> Result<Backlog, RepoError> {
        self.read(|conn| {
            let (pending, oldest): (i64, Option<i64>) = conn
                .prepare_cached(
                    "SELECT count(*), min(created_at) FROM webhook_deliveries
                     WHERE status = 'pending'",
                )
                .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
                .map_err(map_err)?;
            Ok(Backlog {
                pending: order(pending),
                oldest: oldest.map(timestamp).transpose()?,
            })
        })
        .await
    }

    async fn trim(&self, before: Timestamp, max: u32) -> Result<u64, RepoError> {
        self.write(Touches::Neither, move |db| {
            retention::trim(db.conn, before, max)
        })
        .await
    }
}

fn exists(conn: &Connection, id: &str) -> Result<bool, RepoError> {
    conn.prepare_cached("SELECT 1 FROM webhook_endpoints WHERE id = ?1")
        .and_then(|mut s| s.exists([id]))
        .map_err(map_err)
}

fn endpoint_id(raw: String) -> Result<EndpointId, RepoError> {
    EndpointId::parse(&raw).map_err(|e| rows::corrupt(e.0))
}

fn fanout_state(conn: &Connection) -> Result<FanoutState, RepoError> {
    let row: Option<(Option<String>, i64)> = conn
        .prepare_cached("SELECT position, next_order FROM webhook_fanout WHERE id = 1")
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(map_err)?;
    Ok(
        row.map_or_else(FanoutState::default, |(position, next)| FanoutState {
            position,
            next_order: order(next),
        }),
    )
}

fn insert_message(conn: &Connection, message: &NewMessage) -> Result<(), RepoError> {
    let ord = message.order as i64;
    let created = message.created_at.millis();
    conn.prepare_cached(
        "INSERT INTO webhook_messages (ord, id, kind, session_id, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (ord) DO NOTHING",
    )
    .and_then(|mut s| {
        s.execute(params![
            ord,
            message.id,
            message.kind,
            message.session_id,
            message.body,
            created
        ])
    })
    .map_err(map_err)?;
    for endpoint in &message.endpoints {
        conn.prepare_cached(
            "INSERT INTO webhook_deliveries
                 (endpoint_id, ord, session_id, status, next_attempt_at, created_at)
             VALUES (?1, ?2, ?3, 'pending', ?4, ?5) ON CONFLICT DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![
                endpoint.as_str(),
                ord,
                message.session_id,
                message.due_at.millis(),
                created
            ])
        })
        .map_err(map_err)?;
    }
    Ok(())
}
