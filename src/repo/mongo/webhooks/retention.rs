//! Retention of the webhook log on MongoDB: finished deliveries of old messages, then the old
//! messages no delivery names.

use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;

use super::super::{MongoStore, map_err};
use crate::domain::Timestamp;
use crate::repo::RepoError;

/// Removes up to `max` finished deliveries made before `before`, then up to `max` messages made
/// before it that no delivery names; how many deliveries it removed.
pub(super) async fn trim(
    store: &MongoStore,
    before: Timestamp,
    max: u32,
) -> Result<u64, RepoError> {
    let deliveries = store.hooks("webhook_deliveries");
    let old: Vec<Document> = deliveries
        .find(doc! { "createdAt": { "$lt": before.millis() }, "status": { "$ne": "pending" } })
        .sort(doc! { "createdAt": 1 })
        .limit(i64::from(max))
        .projection(doc! { "_id": 1 })
        .await
        .map_err(map_err)?
        .try_collect()
        .await
        .map_err(map_err)?;
    let ids: Vec<Bson> = old.iter().filter_map(|d| d.get("_id").cloned()).collect();
    let removed = if ids.is_empty() {
        0
    } else {
        deliveries
            .delete_many(doc! { "_id": { "$in": ids } })
            .await
            .map_err(map_err)?
            .deleted_count
    };
    trim_messages(store, before, max).await?;
    Ok(removed)
}

/// Removes up to `max` messages made before `before` that no delivery names (their deliveries
/// trimmed, or their endpoint gone), oldest first. The server looks for them: the oldest old
/// messages may all be named still (an endpoint disabled for longer than the retention keeps its
/// deliveries pending), and the ones after them must go all the same. Each old message costs it
/// one lookup by the deliveries' `order` index, as SQLite's `NOT EXISTS` does.
async fn trim_messages(store: &MongoStore, before: Timestamp, max: u32) -> Result<(), RepoError> {
    let messages = store.hooks("webhook_messages");
    let unnamed: Vec<Document> = messages
        .aggregate(vec![
            doc! { "$match": { "createdAt": { "$lt": before.millis() } } },
            doc! { "$sort": { "createdAt": 1 } },
            doc! { "$project": { "_id": 1 } },
            doc! { "$lookup": {
                "from": "webhook_deliveries",
                "localField": "_id",
                "foreignField": "order",
                "as": "named",
            } },
            doc! { "$match": { "named": { "$size": 0 } } },
            doc! { "$limit": i64::from(max) },
            doc! { "$project": { "_id": 1 } },
        ])
        .await
        .map_err(map_err)?
        .try_collect()
        .await
        .map_err(map_err)?;
    let orders: Vec<Bson> = unnamed
        .iter()
        .filter_map(|m| m.get("_id").cloned())
        .collect();
    if !orders.is_empty() {
        messages
            .delete_many(doc! { "_id": { "$in": orders } })
            .await
            .map_err(map_err)?;
    }
    Ok(())
}
