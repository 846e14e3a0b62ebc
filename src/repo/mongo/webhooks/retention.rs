//! Retention of the webhook log on MongoDB: finished deliveries of old messages, then the old
//! messages no delivery names.

use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;

use super::super::{MongoStore, map_err};
use crate::domain::Timestamp;
use crate::repo::RepoError;

/// Removes up to `max` finished deliveries made before `before`, then, of the `max` oldest
/// messages made before it, those no delivery names; how many deliveries it removed.
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
    // Messages no delivery names any more (their deliveries trimmed, or their endpoint gone).
    let messages = store.hooks("webhook_messages");
    let candidates: Vec<Document> = messages
        .find(doc! { "createdAt": { "$lt": before.millis() } })
        .sort(doc! { "createdAt": 1 })
        .limit(i64::from(max))
        .projection(doc! { "_id": 1 })
        .await
        .map_err(map_err)?
        .try_collect()
        .await
        .map_err(map_err)?;
    let orders: Vec<Bson> = candidates
        .iter()
        .filter_map(|d| d.get("_id").cloned())
        .collect();
    if !orders.is_empty() {
        let named: Vec<Bson> = deliveries
            .distinct("order", doc! { "order": { "$in": orders.clone() } })
            .await
            .map_err(map_err)?;
        let orphans: Vec<Bson> = orders.into_iter().filter(|o| !named.contains(o)).collect();
        messages
            .delete_many(doc! { "_id": { "$in": orphans } })
            .await
            .map_err(map_err)?;
    }
    Ok(removed)
}
