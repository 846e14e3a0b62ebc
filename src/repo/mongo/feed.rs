//! The change feed: one MongoDB change stream on the database, filtered on the server to what a
//! live transcript needs (stored events, sessions ending, sessions erased), resumed with its
//! resume token when it is reopened.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bson::{Document, doc};
use futures_util::StreamExt;
use mongodb::Database;
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType, ResumeToken};
use mongodb::options::FullDocumentType;

use super::{TOMBSTONE, event_from, map_err};
use crate::domain::SessionId;
use crate::repo::{Change, ChangeFeed, ChangeStream, RepoError};

pub struct MongoFeed {
    db: Database,
    /// Where the last stream stopped: the token of the last change it delivered.
    resume: Arc<Mutex<Option<ResumeToken>>>,
}

impl MongoFeed {
    pub fn new(db: Database) -> Self {
        Self {
            db,
            resume: Arc::default(),
        }
    }

    /// Only the changes that matter, chosen by the server: inserted events, sessions whose status
    /// became terminal, and sessions replaced by their tombstone.
    fn pipeline() -> Vec<Document> {
        vec![doc! { "$match": { "$or": [
            { "operationType": "insert", "ns.coll": "events" },
            {
                "operationType": "update",
                "ns.coll": "sessions",
                "updateDescription.updatedFields.status": { "$in": ["completed", "failed"] },
            },
            { "operationType": "replace", "ns.coll": "sessions", "fullDocument.status": TOMBSTONE },
        ] } }]
    }

    async fn watch(
        &self,
        resume: Option<ResumeToken>,
    ) -> mongodb::error::Result<mongodb::change_stream::ChangeStream<ChangeStreamEvent<Document>>>
    {
        self.db
            .watch()
            .pipeline(Self::pipeline())
            // A session's end is an update without its id: the server adds the document.
            .full_document(FullDocumentType::UpdateLookup)
            .resume_after(resume)
            .await
    }
}

#[async_trait]
impl ChangeFeed for MongoFeed {
    async fn open(&self) -> Result<ChangeStream, RepoError> {
        let token = self
            .resume
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let stream = match token {
            Some(token) => match self.watch(Some(token)).await {
                Ok(stream) => stream,
                // The server no longer has that point (or refuses the token): start from now;
                // the caller re-reads what it follows after every open.
                Err(e) => {
                    tracing::info!(error = %e, "the change stream cannot resume; starting from now");
                    self.watch(None).await.map_err(map_err)?
                }
            },
            None => self.watch(None).await.map_err(map_err)?,
        };
        let resume = self.resume.clone();
        let changes = stream.filter_map(move |item| {
            let resume = resume.clone();
            async move {
                let event = match item {
                    Ok(event) => event,
                    Err(e) => return Some(Err(map_err(e))),
                };
                *resume.lock().unwrap_or_else(PoisonError::into_inner) = Some(event.id.clone());
                change_of(&event).transpose()
            }
        });
        Ok(Box::pin(changes))
    }
}

/// The change an event reports; `None` for one that needs no action (a session document that is
/// gone by the time the server looked it up).
fn change_of(event: &ChangeStreamEvent<Document>) -> Result<Option<Change>, RepoError> {
    let Some(doc) = event.full_document.as_ref() else {
        return Ok(None);
    };
    let collection = event.ns.as_ref().and_then(|ns| ns.coll.as_deref());
    match (&event.operation_type, collection) {
        (OperationType::Insert, Some("events")) => event_from(doc).map(|e| Some(Change::Event(e))),
        (OperationType::Update | OperationType::Replace, Some("sessions")) => {
            let id = doc
                .get_str("sessionId")
                .ok()
                .and_then(|id| SessionId::parse(id).ok());
            Ok(id.map(Change::SessionEnded))
        }
        _ => Ok(None),
    }
}
