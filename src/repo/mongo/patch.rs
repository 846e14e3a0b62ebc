//! Metadata patches: read the session, decide ([`decide::plan_patch`]), then one
//! `findOneAndUpdate` conditional on the metadata revision read, so a concurrent patch (or an
//! erasure) in between makes it match nothing, and it runs again on what is stored now. Appends
//! and ends in between do not: the merge does not depend on them, and the answer is the document
//! as the update left it. With `If-Match` the condition is the whole version read (revision,
//! event count, status), since that is what the client named; a change in between then answers
//! 412 on the next read. No transaction: one document changes.

use bson::{Bson, doc};
use mongodb::options::ReturnDocument;

use super::convert::to_document;
use super::documents::session_from;
use super::errors::{backoff, map_err};
use super::{MongoStore, TRANSACTION_RETRY_BUDGET};
use crate::domain::SessionId;
use crate::repo::decide::{self, PatchPlan};
use crate::repo::{MetadataPatch, Patched, RepoError};

impl MongoStore {
    pub(super) async fn patch_session_metadata(
        &self,
        id: &SessionId,
        patch: &MetadataPatch,
    ) -> Result<Patched, RepoError> {
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let stored = self
                .sessions
                .find_one(doc! { "sessionId": id.as_str() })
                .await
                .map_err(map_err)?
                .ok_or(RepoError::NotFound)?;
            let session = session_from(&stored)?;
            let metadata = match decide::plan_patch(&session, patch) {
                PatchPlan::Answer(answer) => return Ok(answer),
                PatchPlan::Write(metadata) => metadata,
            };
            // A session stored before metadata updates has no revision field: 0.
            let revision = match session.revision {
                0 => Bson::Document(doc! { "$in": [0_i64, Bson::Null] }),
                n => Bson::Int64(n as i64),
            };
            let mut filter = doc! { "sessionId": id.as_str(), "metadataRevision": revision };
            if patch.if_match.is_some() {
                filter.insert("eventCount", session.event_count as i64);
                filter.insert("status", session.status.as_str());
            } else {
                filter.insert("status", doc! { "$ne": "deleted" });
            }
            let updated = self
                .sessions
                .find_one_and_update(
                    filter,
                    doc! {
                        "$set": { "metadata": to_document(&metadata) },
                        "$inc": { "metadataRevision": 1_i64 },
                    },
                )
                .return_document(ReturnDocument::After)
                .await
                .map_err(map_err)?;
            if let Some(stored) = updated {
                return Ok(Patched::Done(session_from(&stored)?.as_of(patch.at)));
            }
            if started.elapsed() >= TRANSACTION_RETRY_BUDGET {
                return Err(RepoError::Unavailable(
                    "the session kept changing during the metadata update".into(),
                ));
            }
            backoff(attempt).await;
        }
    }
}
