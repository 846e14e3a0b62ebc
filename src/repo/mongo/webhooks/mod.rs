//! Webhooks on MongoDB (migration 0004): the same records as the embedded store, one document
//! each. Every compare-and-set is one conditional write; a fan-out batch and the move of the
//! fan-out state are one transaction, so a batch made from a stale state leaves nothing behind.
//! Retention is in [`retention`].

use std::collections::HashMap;

use async_trait::async_trait;
use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;
use mongodb::error::TRANSIENT_TRANSACTION_ERROR;
use mongodb::{ClientSession, Collection};

mod create;
mod retention;

use super::errors::{backoff, commit, is_unreachable};
use super::{MongoStore, TRANSACTION_RETRY_BUDGET, corrupt, is_duplicate_key, map_err};
use crate::domain::Timestamp;
use crate::domain::webhook::EndpointId;
use crate::repo::RepoError;
use crate::repo::webhooks::{
    AfterAttempt, Attempt, Backlog, Claimed, Delivery, DeliveryKey, DeliveryStatus, Due, Endpoint,
    FanoutState, MAX_LOGGED_ATTEMPTS, NewMessage, StoredMessage, WebhookRepository,
};

const FANOUT_ID: i32 = 1;

impl MongoStore {
    fn hooks(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }
}

fn key_id(key: &DeliveryKey) -> Document {
    doc! { "e": key.endpoint.as_str(), "o": key.order as i64 }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, RepoError> {
    serde_json::to_string(value).map_err(|e| RepoError::Backend(Box::new(e)))
}

fn endpoint_of(doc: &Document) -> Result<Endpoint, RepoError> {
    let record = doc
        .get_str("record")
        .map_err(|_| corrupt("webhook_endpoints.record"))?;
    serde_json::from_str(record).map_err(|e| corrupt(format!("webhook_endpoints.record: {e}")))
}

fn int(doc: &Document, field: &str) -> Result<i64, RepoError> {
    match doc.get(field) {
        Some(Bson::Int64(n)) => Ok(*n),
        Some(Bson::Int32(n)) => Ok(i64::from(*n)),
        _ => Err(corrupt(format!("webhooks: {field}"))),
    }
}

fn optional_int(doc: &Document, field: &str) -> Result<Option<i64>, RepoError> {
    match doc.get(field) {
        None | Some(Bson::Null) => Ok(None),
        Some(_) => int(doc, field).map(Some),
    }
}

fn timestamp(millis: i64) -> Result<Timestamp, RepoError> {
    Timestamp::from_millis(millis).map_err(|e| corrupt(e.0))
}

fn text(doc: &Document, field: &str) -> Option<String> {
    doc.get_str(field).ok().map(str::to_owned)
}

fn delivery_key(doc: &Document) -> Result<DeliveryKey, RepoError> {
    let endpoint = doc
        .get_str("endpointId")
        .ok()
        .and_then(|e| EndpointId::parse(e).ok())
        .ok_or_else(|| corrupt("webhook_deliveries.endpointId"))?;
    Ok(DeliveryKey {
        endpoint,
        order: int(doc, "order")?.max(0) as u64,
    })
}

impl MongoStore {
    /// The messages these deliveries name, by order, with `projection`.
    async fn messages_of_deliveries(
        &self,
        deliveries: &[Document],
        projection: Document,
    ) -> Result<HashMap<i64, Document>, RepoError> {
        let orders: Vec<Bson> = deliveries
            .iter()
            .filter_map(|d| d.get("order").cloned())
            .collect();
        let found: Vec<Document> = self
            .hooks("webhook_messages")
            .find(doc! { "_id": { "$in": orders } })
            .projection(projection)
            .await
            .map_err(map_err)?
            .try_collect()
            .await
            .map_err(map_err)?;
        Ok(found
            .into_iter()
            .filter_map(|m| Some((int(&m, "_id").ok()?, m)))
            .collect())
    }

    /// In one transaction: the fan-out state moved from `expected` (compared and set first, so
    /// a concurrent batch conflicts here), then the batch's messages and deliveries inserted.
    async fn enqueue_in(
        &self,
        session: &mut ClientSession,
        expected: &FanoutState,
        position: Option<String>,
        messages: &[NewMessage],
    ) -> Result<bool, mongodb::error::Error> {
        let next_order = messages
            .last()
            .map_or(expected.next_order, |m| m.order + 1)
            .max(expected.next_order);
        let state = doc! { "position": &position, "nextOrder": next_order as i64 };
        let fanout = self.hooks("webhook_fanout");
        if expected.position.is_none() && expected.next_order == 0 {
            let mut first = state;
            first.insert("_id", FANOUT_ID);
            fanout.insert_one(first).session(&mut *session).await?;
        } else {
            let moved = fanout
                .update_one(
                    doc! {
                        "_id": FANOUT_ID,
                        "position": &expected.position,
                        "nextOrder": expected.next_order as i64,
                    },
                    doc! { "$set": state },
                )
                .session(&mut *session)
                .await?;
            if moved.matched_count == 0 {
                return Ok(false);
            }
        }
        let mut bodies = Vec::with_capacity(messages.len());
        let mut deliveries = Vec::new();
        for m in messages {
            let order = m.order as i64;
            bodies.push(doc! {
                "_id": order, "messageId": &m.id, "kind": &m.kind, "sessionId": &m.session_id,
                "body": &m.body, "createdAt": m.created_at.millis(),
            });
            for endpoint in &m.endpoints {
                deliveries.push(doc! {
                    "_id": { "e": endpoint.as_str(), "o": order },
                    "endpointId": endpoint.as_str(), "order": order, "sessionId": &m.session_id,
                    "status": "pending", "step": 0, "attempted": false,
                    "nextAttemptAt": m.due_at.millis(), "leaseToken": Bson::Null,
                    "leaseUntil": Bson::Null, "attempts": [], "createdAt": m.created_at.millis(),
                });
            }
        }
        for (name, docs) in [
            ("webhook_messages", bodies),
            ("webhook_deliveries", deliveries),
        ] {
            if !docs.is_empty() {
                self.hooks(name)
                    .insert_many(docs)
                    .session(&mut *session)
                    .await?;
            }
        }
        Ok(true)
    }
}

#[async_trait]
impl WebhookRepository for MongoStore {
    async fn create_endpoint(&self, endpoint: &Endpoint, max: usize) -> Result<bool, RepoError> {
        let stored = doc! {
            "_id": endpoint.id.as_str(),
            "revision": endpoint.revision as i64,
            "createdAt": endpoint.created_at,
            "record": json(endpoint)?,
        };
        self.create_counted(stored, max).await
    }

    async fn endpoint(&self, id: &EndpointId) -> Result<Endpoint, RepoError> {
        let found = self
            .hooks("webhook_endpoints")
            .find_one(doc! { "_id": id.as_str() })
            .await
            .map_err(map_err)?;
        endpoint_of(&found.ok_or(RepoError::NotFound)?)
    }

    async fn endpoints(&self) -> Result<Vec<Endpoint>, RepoError> {
        let docs: Vec<Document> = self
            .hooks("webhook_endpoints")
            .find(doc! {})
            .sort(doc! { "createdAt": 1, "_id": 1 })
            .await
            .map_err(map_err)?
            .try_collect()
            .await
            .map_err(map_err)?;
        docs.iter().map(endpoint_of).collect()
    }

    async fn replace_endpoint(
        &self,
        endpoint: &Endpoint,
        revision: u64,
    ) -> Result<bool, RepoError> {
        let mut next = endpoint.clone();
        next.revision = revision + 1;
        let result = self
            .hooks("webhook_endpoints")
            .update_one(
                doc! { "_id": endpoint.id.as_str(), "revision": revision as i64 },
                doc! { "$set": { "revision": next.revision as i64, "record": json(&next)? } },
            )
            .await
            .map_err(map_err)?;
        if result.matched_count == 0 {
            self.endpoint(&endpoint.id).await?;
        }
        Ok(result.matched_count == 1)
    }

    async fn delete_endpoint(&self, id: &EndpointId) -> Result<bool, RepoError> {
        let removed = self
            .hooks("webhook_endpoints")
            .delete_one(doc! { "_id": id.as_str() })
            .await
            .map_err(map_err)?;
        self.hooks("webhook_deliveries")
            .delete_many(doc! { "endpointId": id.as_str() })
            .await
            .map_err(map_err)?;
        Ok(removed.deleted_count == 1)
    }

    async fn fanout_state(&self) -> Result<FanoutState, RepoError> {
        let found = self
            .hooks("webhook_fanout")
            .find_one(doc! { "_id": FANOUT_ID })
            .await
            .map_err(map_err)?;
        let Some(found) = found else {
            return Ok(FanoutState::default());
        };
        Ok(FanoutState {
            position: text(&found, "position"),
            next_order: int(&found, "nextOrder")?.max(0) as u64,
        })
    }

    async fn enqueue(
        &self,
        expected: &FanoutState,
        position: Option<String>,
        messages: Vec<NewMessage>,
    ) -> Result<bool, RepoError> {
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut session = self.client.start_session().await.map_err(map_err)?;
            session
                .start_transaction()
                .write_concern(self.write_concern.clone())
                .await
                .map_err(map_err)?;
            let done = match self
                .enqueue_in(&mut session, expected, position.clone(), &messages)
                .await
            {
                Ok(true) => commit(&mut session).await.map(|()| true),
                other => {
                    let _ = session.abort_transaction().await;
                    other
                }
            };
            match done {
                Ok(moved) => return Ok(moved),
                // A write conflict with a concurrent batch: again, and the state tells who won.
                Err(e)
                    if e.contains_label(TRANSIENT_TRANSACTION_ERROR)
                        && !is_unreachable(&e)
                        && started.elapsed() < TRANSACTION_RETRY_BUDGET =>
                {
                    backoff(attempt).await;
                }
                // The first batch ever, made by another instance at the same moment.
                Err(e) if is_duplicate_key(&e) => return Ok(false),
                Err(e) => return Err(map_err(e)),
            }
        }
    }

    async fn due(
        &self,
        now: Timestamp,
        enabled: &[EndpointId],
        limit: u32,
    ) -> Result<Vec<Due>, RepoError> {
        let enabled: Vec<&str> = enabled.iter().map(EndpointId::as_str).collect();
        let docs: Vec<Document> = self
            .hooks("webhook_deliveries")
            .find(doc! {
                "status": "pending",
                "nextAttemptAt": { "$lte": now.millis() },
                "endpointId": { "$in": enabled },
            })
            .sort(doc! { "order": 1 })
            .limit(i64::from(limit))
            .projection(doc! { "endpointId": 1, "order": 1, "sessionId": 1, "attempted": 1, "leaseUntil": 1 })
            .await
            .map_err(map_err)?
            .try_collect()
            .await
            .map_err(map_err)?;
        docs.iter()
            .map(|d| {
                Ok(Due {
                    key: delivery_key(d)?,
                    session_id: text(d, "sessionId"),
                    attempted: d.get_bool("attempted").unwrap_or(false),
                    leased: optional_int(d, "leaseUntil")?.is_some_and(|u| u > now.millis()),
                })
            })
            .collect()
    }

    async fn claim(
        &self,
        keys: &[DeliveryKey],
        token: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<Claimed>, RepoError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let deliveries = self.hooks("webhook_deliveries");
        let ids: Vec<Document> = keys.iter().map(key_id).collect();
        // What this call took is told from what the token held before by a mark of its own.
        let claim = uuid::Uuid::new_v4().to_string();
        deliveries
            .update_many(
                doc! {
                    "_id": { "$in": ids.clone() },
                    "status": "pending",
                    "$or": [{ "leaseUntil": Bson::Null }, { "leaseUntil": { "$lte": now.millis() } }],
                },
                doc! { "$set": { "leaseToken": token, "leaseUntil": until.millis(), "claim": &claim } },
            )
            .await
            .map_err(map_err)?;
        let taken: Vec<Document> = deliveries
            .find(doc! { "_id": { "$in": ids }, "leaseToken": token, "claim": &claim })
            .sort(doc! { "order": 1 })
            .await
            .map_err(map_err)?
            .try_collect()
            .await
            .map_err(map_err)?;
        let messages = self.messages_of_deliveries(&taken, doc! {}).await?;
        let mut claimed = Vec::with_capacity(taken.len());
        for d in &taken {
            let key = delivery_key(d)?;
            let Some(message) = messages.get(&(key.order as i64)) else {
                continue;
            };
            claimed.push(Claimed {
                message_id: text(message, "messageId").ok_or_else(|| corrupt("messageId"))?,
                body: text(message, "body").ok_or_else(|| corrupt("body"))?,
                step: u32::try_from(int(d, "step")?).unwrap_or(u32::MAX),
                key,
            });
        }
        Ok(claimed)
    }

    async fn release(&self, keys: &[DeliveryKey], token: &str) -> Result<u64, RepoError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Document> = keys.iter().map(key_id).collect();
        let result = self
            .hooks("webhook_deliveries")
            .update_many(
                doc! { "_id": { "$in": ids }, "leaseToken": token },
                doc! { "$set": { "leaseToken": Bson::Null, "leaseUntil": Bson::Null } },
            )
            .await
            .map_err(map_err)?;
        Ok(result.modified_count)
    }

    async fn record(
        &self,
        key: &DeliveryKey,
        token: &str,
        attempt: &Attempt,
        after: AfterAttempt,
    ) -> Result<bool, RepoError> {
        let (status, next) = after.leaves();
        let attempt = bson::to_document(attempt).map_err(|e| RepoError::Backend(Box::new(e)))?;
        let result = self
            .hooks("webhook_deliveries")
            .update_one(
                doc! { "_id": key_id(key), "leaseToken": token },
                doc! {
                    "$set": {
                        "status": status.as_str(), "nextAttemptAt": next, "attempted": true,
                        "leaseToken": Bson::Null, "leaseUntil": Bson::Null,
                    },
                    "$inc": { "step": 1 },
                    "$push": { "attempts": { "$each": [attempt], "$slice": -(MAX_LOGGED_ATTEMPTS as i32) } },
                },
            )
            .await
            .map_err(map_err)?;
        Ok(result.matched_count == 1)
    }

    async fn deliveries(
        &self,
        endpoint: &EndpointId,
        status: Option<DeliveryStatus>,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Delivery>, RepoError> {
        let mut filter = doc! { "endpointId": endpoint.as_str() };
        if let Some(status) = status {
            filter.insert("status", status.as_str());
        }
        if let Some(before) = before {
            filter.insert("order", doc! { "$lt": before.min(i64::MAX as u64) as i64 });
        }
        let docs: Vec<Document> = self
            .hooks("webhook_deliveries")
            .find(filter)
            .sort(doc! { "order": -1 })
            .limit(i64::from(limit))
            .await
            .map_err(map_err)?
            .try_collect()
            .await
            .map_err(map_err)?;
        let messages = self
            .messages_of_deliveries(&docs, doc! { "body": 0 })
            .await?;
        let mut found = Vec::with_capacity(docs.len());
        for d in &docs {
            let order = int(d, "order")?;
            let Some(message) = messages.get(&order) else {
                continue;
            };
            let attempts = d
                .get_array("attempts")
                .map_err(|_| corrupt("webhook_deliveries.attempts"))?
                .iter()
                .map(|a| bson::from_bson::<Attempt>(a.clone()).map_err(|e| corrupt(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            found.push(Delivery {
                order: order.max(0) as u64,
                message_id: text(message, "messageId").ok_or_else(|| corrupt("messageId"))?,
                kind: text(message, "kind").ok_or_else(|| corrupt("kind"))?,
                session_id: text(d, "sessionId"),
                status: d
                    .get_str("status")
                    .ok()
                    .and_then(DeliveryStatus::parse)
                    .ok_or_else(|| corrupt("webhook_deliveries.status"))?,
                attempts,
                next_attempt_at: optional_int(d, "nextAttemptAt")?
                    .map(timestamp)
                    .transpose()?,
                created_at: timestamp(int(d, "createdAt")?)?,
            });
        }
        Ok(found)
    }

    async fn requeue(
        &self,
        endpoint: &EndpointId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, RepoError> {
        let result = self
            .hooks("webhook_deliveries")
            .update_many(
                doc! {
                    "endpointId": endpoint.as_str(),
                    "createdAt": { "$gte": since.millis() },
                    "status": { "$ne": "pending" },
                },
                doc! { "$set": {
                    "status": "pending", "step": 0, "attempted": false, "nextAttemptAt": now.millis(),
                } },
            )
            .await
            .map_err(map_err)?;
        Ok(result.modified_count)
    }

    async fn messages_of(&self, session_id: &str) -> Result<Vec<StoredMessage>, RepoError> {
        let docs: Vec<Document> = self
            .hooks("webhook_messages")
            .find(doc! { "sessionId": session_id })
            .sort(doc! { "_id": 1 })
            .projection(doc! { "kind": 1, "createdAt": 1 })
            .await
            .map_err(map_err)?
            .try_collect()
            .await
            .map_err(map_err)?;
        docs.iter()
            .map(|d| {
                Ok(StoredMessage {
                    order: int(d, "_id")?.max(0) as u64,
                    kind: text(d, "kind").ok_or_else(|| corrupt("kind"))?,
                    created_at: timestamp(int(d, "createdAt")?)?,
                })
            })
            .collect()
    }

    async fn replace_bodies(&self, bodies: Vec<(u64, String)>) -> Result<(), RepoError> {
        let messages = self.hooks("webhook_messages");
        for (order, body) in bodies {
            messages
                .update_one(
                    doc! { "_id": order as i64 },
                    doc! { "$set": { "body": body } },
                )
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    async fn backlog(&self) -> Result<Backlog, RepoError> {
        let deliveries = self.hooks("webhook_deliveries");
        let pending = deliveries
            .count_documents(doc! { "status": "pending" })
            .await
            .map_err(map_err)?;
        let oldest = deliveries
            .find_one(doc! { "status": "pending" })
            .sort(doc! { "createdAt": 1 })
            .await
            .map_err(map_err)?;
        Ok(Backlog {
            pending,
            oldest: oldest
                .map(|d| int(&d, "createdAt").and_then(timestamp))
                .transpose()?,
        })
    }

    async fn trim(&self, before: Timestamp, max: u32) -> Result<u64, RepoError> {
        retention::trim(self, before, max).await
    }
}
