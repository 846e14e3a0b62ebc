//! Metadata patches: read the session, decide ([`decide::plan_patch`]), then one `updateOne`
//! conditional on what was read (revision, event count, status), so a concurrent patch, append
//! or end in between makes it match nothing, and it runs again on what is stored now. No
//! transaction: one document changes.

use bson::{Bson, doc};

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
            let updated = self
                .sessions
                .update_one(
                    doc! {
                        "sessionId": id.as_str(),
                        "metadataRevision": revision,
                        "eventCount": session.event_count as i64,
                        "status": session.status.as_str(),
                    },
                    doc! {
                        "$set": { "metadata": to_document(&metadata) },
                        "$inc": { "metadataRevision": 1_i64 },
                    },
                )
                .await
                .map_err(map_err)?;
            if updated.matched_count == 1 {
                return Ok(decide::patched(session, metadata, patch.at));
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
