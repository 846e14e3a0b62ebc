//! A new endpoint, counted: the count of endpoints and the insert in one transaction that also
//! writes one guard document, so two creates at once conflict and the one retried counts again
//! (a snapshot's count alone would let both in). Only creates write the guard: endpoints are
//! few and made by hand, and nothing else touches it.

use std::time::Instant;

use bson::{Document, doc};
use mongodb::ClientSession;
use mongodb::error::TRANSIENT_TRANSACTION_ERROR;

use super::super::errors::{backoff, commit, is_unreachable};
use super::super::{MongoStore, TRANSACTION_RETRY_BUDGET, map_err};
use crate::repo::RepoError;

/// The guard's id, in the fan-out's collection (which holds one state document besides it).
const CREATES_GUARD: &str = "endpoint-creates";

impl MongoStore {
    /// Inserts `stored` into `webhook_endpoints` unless `max` are there already (`false`).
    pub(super) async fn create_counted(
        &self,
        stored: Document,
        max: usize,
    ) -> Result<bool, RepoError> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut session = self.client.start_session().await.map_err(map_err)?;
            match self.try_create(&mut session, &stored, max).await {
                Err(e)
                    if e.contains_label(TRANSIENT_TRANSACTION_ERROR)
                        && !is_unreachable(&e)
                        && started.elapsed() < TRANSACTION_RETRY_BUDGET =>
                {
                    let _ = session.abort_transaction().await;
                    backoff(attempt).await;
                }
                other => return other.map_err(map_err),
            }
        }
    }

    async fn try_create(
        &self,
        session: &mut ClientSession,
        stored: &Document,
        max: usize,
    ) -> Result<bool, mongodb::error::Error> {
        session
            .start_transaction()
            .write_concern(self.write_concern.clone())
            .await?;
        // The first write: a concurrent create conflicts here, before it has counted.
        self.hooks("webhook_fanout")
            .update_one(
                doc! { "_id": CREATES_GUARD },
                doc! { "$inc": { "creates": 1_i64 } },
            )
            .upsert(true)
            .session(&mut *session)
            .await?;
        let endpoints = self.hooks("webhook_endpoints");
        let count = endpoints
            .count_documents(doc! {})
            .session(&mut *session)
            .await?;
        if count >= max as u64 {
            session.abort_transaction().await?;
            return Ok(false);
        }
        endpoints.insert_one(stored).session(&mut *session).await?;
        commit(session).await?;
        Ok(true)
    }
}
