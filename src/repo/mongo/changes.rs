//! The public change feed on MongoDB: read from a change stream on the database, so nothing is
//! written for it and no document is touched by every write. The stream gives changes in commit
//! order (on a sharded cluster, mongos merges the shards' streams by cluster time), and a
//! position is a resume token: `m.<seconds>.<increment>.<token>` after a change (its cluster time
//! and the token, BSON in base64url), or `m.<seconds>.<increment>` for "from this cluster time
//! on". How far back a reader can go is the oplog's window, and at most `CHANGES_RETENTION_SECONDS`.
//! An erased session's changes are still in the oplog: each page is checked against the sessions
//! it names, and an erased one's changes carry no data.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bson::{Document, Timestamp as BsonTimestamp, doc};
use futures_util::TryStreamExt;
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType, ResumeToken};
use mongodb::options::FullDocumentType;

use super::{MongoStore, TOMBSTONE, event_from, map_err, session_from};
use crate::domain::{SessionId, Timestamp};
use crate::repo::RepoError;
use crate::repo::feed::{
    ChangeData, ChangeKind, ChangeKinds, FeedChange, FeedError, FeedRead, FeedRepository, FeedStart,
};

/// How long one wait for more changes lasts on the server before the read looks at its clock.
const AWAIT: Duration = Duration::from_millis(50);

/// The position "the oldest change kept, whenever it is read": what a refusal hands out as the
/// earliest, since a time would fall out of the retention a second later.
const OLDEST: &str = "m.oldest";

/// Where a read starts.
enum Point {
    After {
        at: BsonTimestamp,
        token: ResumeToken,
    },
    From(BsonTimestamp),
}

impl Point {
    fn parse(text: &str) -> Result<Point, FeedError> {
        let mut parts = text.split('.');
        let (Some("m"), Some(secs), Some(inc)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(FeedError::InvalidPosition);
        };
        let at = BsonTimestamp {
            time: secs.parse().map_err(|_| FeedError::InvalidPosition)?,
            increment: inc.parse().map_err(|_| FeedError::InvalidPosition)?,
        };
        let point = match parts.next() {
            None => Point::From(at),
            Some(token) => {
                let bytes = URL_SAFE_NO_PAD
                    .decode(token)
                    .map_err(|_| FeedError::InvalidPosition)?;
                let token: ResumeToken =
                    bson::from_slice(&bytes).map_err(|_| FeedError::InvalidPosition)?;
                Point::After { at, token }
            }
        };
        if parts.next().is_some() {
            return Err(FeedError::InvalidPosition);
        }
        Ok(point)
    }

    fn at(&self) -> BsonTimestamp {
        match self {
            Point::After { at, .. } | Point::From(at) => *at,
        }
    }
}

fn from_text(at: BsonTimestamp) -> String {
    format!("m.{}.{}", at.time, at.increment)
}

fn after_text(at: BsonTimestamp, token: &ResumeToken) -> Result<String, RepoError> {
    let bytes = bson::to_vec(token).map_err(|e| RepoError::Backend(Box::new(e)))?;
    Ok(format!(
        "m.{}.{}.{}",
        at.time,
        at.increment,
        URL_SAFE_NO_PAD.encode(bytes)
    ))
}

fn cluster_time(at: Timestamp) -> BsonTimestamp {
    BsonTimestamp {
        time: u32::try_from(at.millis().max(0) / 1000).unwrap_or(u32::MAX),
        increment: 0,
    }
}

/// The server-side filter: the changes of `kinds`, recognised by what each write does.
fn pipeline(kinds: ChangeKinds) -> Vec<Document> {
    let clause = |kind: ChangeKind| match kind {
        ChangeKind::SessionCreated => doc! { "operationType": "insert", "ns.coll": "sessions" },
        ChangeKind::EventAppended => doc! { "operationType": "insert", "ns.coll": "events" },
        ChangeKind::SessionUpdated => doc! {
            "operationType": "update", "ns.coll": "sessions",
            "updateDescription.updatedFields.metadata": { "$exists": true },
        },
        ChangeKind::SessionEnded => doc! {
            "operationType": "update", "ns.coll": "sessions",
            "updateDescription.updatedFields.status": { "$in": ["completed", "failed"] },
        },
        ChangeKind::SessionDeleted => doc! {
            "operationType": "replace", "ns.coll": "sessions", "fullDocument.status": TOMBSTONE,
        },
    };
    let clauses: Vec<Document> = kinds.iter().map(clause).collect();
    vec![doc! { "$match": { "$or": clauses } }]
}

/// The kind of a change the pipeline let through.
fn kind_of(event: &ChangeStreamEvent<Document>) -> Option<ChangeKind> {
    let collection = event.ns.as_ref().and_then(|ns| ns.coll.as_deref());
    let updated = |field: &str| {
        event
            .update_description
            .as_ref()
            .is_some_and(|u| u.updated_fields.contains_key(field))
    };
    match (&event.operation_type, collection) {
        (OperationType::Insert, Some("sessions")) => Some(ChangeKind::SessionCreated),
        (OperationType::Insert, Some("events")) => Some(ChangeKind::EventAppended),
        (OperationType::Replace, Some("sessions")) => Some(ChangeKind::SessionDeleted),
        (OperationType::Update, Some("sessions")) if updated("status") => {
            Some(ChangeKind::SessionEnded)
        }
        (OperationType::Update, Some("sessions")) if updated("metadata") => {
            Some(ChangeKind::SessionUpdated)
        }
        _ => None,
    }
}

fn change_of(
    event: &ChangeStreamEvent<Document>,
    kind: ChangeKind,
) -> Result<FeedChange, RepoError> {
    let at = event.cluster_time.unwrap_or(BsonTimestamp {
        time: 0,
        increment: 0,
    });
    let when = match event.wall_time {
        Some(wall) => Timestamp::from_millis(wall.timestamp_millis()),
        None => Timestamp::from_millis(i64::from(at.time) * 1000),
    }
    .map_err(|e| super::corrupt(e.0))?;
    let doc = event.full_document.as_ref();
    let session_id = doc
        .and_then(|d| d.get_str("sessionId").ok())
        .or_else(|| {
            event
                .document_key
                .as_ref()
                .and_then(|k| k.get_str("sessionId").ok())
        })
        .ok_or_else(|| super::corrupt("a change without its sessionId"))?;
    let session_id = SessionId::parse(session_id).map_err(|e| super::corrupt(e.0))?;
    let data = match (kind, doc) {
        (ChangeKind::SessionDeleted, _) | (_, None) => ChangeData::None,
        (ChangeKind::EventAppended, Some(doc)) => ChangeData::Event(event_from(doc)?),
        (_, Some(doc)) if doc.get_str("status") == Ok(TOMBSTONE) => ChangeData::None,
        (_, Some(doc)) => {
            // The session as looked up when read, with the fields this update wrote as it
            // wrote them (a patch's metadata; an end's status, endedAt and endedReason).
            let mut doc = doc.clone();
            if let Some(update) = &event.update_description {
                for (field, value) in &update.updated_fields {
                    doc.insert(field.clone(), value.clone());
                }
            }
            ChangeData::Session(Box::new(session_from(&doc)?))
        }
    };
    Ok(FeedChange {
        position: after_text(at, &event.id)?,
        kind,
        at: when,
        session_id,
        data,
    })
}

impl MongoStore {
    /// The time of the oldest entry of the oplog, where the server has one this user may read.
    async fn oplog_start(&self) -> Option<BsonTimestamp> {
        let first = self
            .client
            .database("local")
            .collection::<Document>("oplog.rs")
            .find_one(doc! {})
            .sort(doc! { "$natural": 1 })
            .projection(doc! { "ts": 1 })
            .await
            .ok()??;
        first.get_timestamp("ts").ok()
    }

    /// The ids of the sessions among `ids` that are erased (a tombstone, or gone).
    async fn erased_among(&self, ids: HashSet<&str>) -> Result<HashSet<String>, RepoError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let list: Vec<&str> = ids.iter().copied().collect();
        let live: HashSet<String> = self
            .sessions
            .find(doc! { "sessionId": { "$in": list }, "status": { "$ne": TOMBSTONE } })
            .projection(doc! { "_id": 0, "sessionId": 1 })
            .await
            .map_err(map_err)?
            .try_collect::<Vec<Document>>()
            .await
            .map_err(map_err)?
            .into_iter()
            .filter_map(|d| d.get_str("sessionId").ok().map(str::to_owned))
            .collect();
        Ok(ids
            .into_iter()
            .filter(|id| !live.contains(*id))
            .map(str::to_owned)
            .collect())
    }
}

#[async_trait]
impl FeedRepository for MongoStore {
    async fn read(
        &self,
        start: FeedStart,
        limit: u32,
        kinds: ChangeKinds,
        wait: Duration,
        retained_since: Timestamp,
    ) -> Result<FeedRead, FeedError> {
        let oldest = cluster_time(retained_since);
        let (point, again) = match start {
            FeedStart::After(text) if text != OLDEST => (Point::parse(&text)?, text),
            // The oldest change kept: no earlier than the retention, nor than the oplog's start.
            _ => (
                Point::From(self.oplog_start().await.map_or(oldest, |s| s.max(oldest))),
                OLDEST.to_owned(),
            ),
        };
        // A position older than the retention is refused only if the reader would be handed a
        // change older than the retention (see below): an empty read answers the same position
        // again, so an idle reader, or one taking a type that is rarely changed, keeps an old one
        // without having missed anything.
        let behind = point.at() < oldest;
        let watch = self
            .db
            .watch()
            .pipeline(pipeline(kinds))
            .full_document(FullDocumentType::UpdateLookup)
            .max_await_time(AWAIT);
        let opened = match &point {
            Point::After { token, .. } => watch.resume_after(token.clone()).await,
            Point::From(at) => watch.start_at_operation_time(*at).await,
        };
        let mut stream = match opened {
            Ok(stream) => stream,
            // History lost (code 286) or a token the server no longer has: expired.
            Err(e) if matches!(*e.kind, mongodb::error::ErrorKind::Command(ref c) if c.code == 286 || c.code == 260) =>
            {
                return Err(FeedError::Expired {
                    earliest: OLDEST.to_owned(),
                });
            }
            // The server refused to resume from a token it was handed: not one it made.
            Err(e)
                if matches!(&point, Point::After { .. })
                    && matches!(*e.kind, mongodb::error::ErrorKind::Command(_)) =>
            {
                return Err(FeedError::InvalidPosition);
            }
            Err(e) => return Err(map_err(e).into()),
        };
        let until = Instant::now() + wait;
        let mut changes = Vec::new();
        let mut has_more = false;
        loop {
            match stream.next_if_any().await.map_err(map_err)? {
                Some(event) => {
                    if changes.len() == limit as usize {
                        has_more = true;
                        break;
                    }
                    if let Some(kind) = kind_of(&event) {
                        if behind
                            && changes.is_empty()
                            && event.cluster_time.is_some_and(|t| t < oldest)
                        {
                            return Err(FeedError::Expired {
                                earliest: OLDEST.to_owned(),
                            });
                        }
                        changes.push(change_of(&event, kind)?);
                    }
                }
                None if !changes.is_empty() || Instant::now() >= until => break,
                None => {}
            }
        }
        // After the last change returned; with none, the same position again: an empty batch
        // need not mean the stream reached the newest change, and a server need not resume from
        // the post-batch token of a start in the past (the test server refuses it).
        let next = match changes.last() {
            Some(last) => last.position.clone(),
            None => again,
        };
        let ids: HashSet<&str> = changes.iter().map(|c| c.session_id.as_str()).collect();
        let erased = self.erased_among(ids).await?;
        for change in &mut changes {
            if erased.contains(change.session_id.as_str()) {
                change.data = ChangeData::None;
            }
        }
        Ok(FeedRead {
            changes,
            next,
            has_more,
        })
    }

    async fn head(&self) -> Result<String, RepoError> {
        // The cluster time of an operation now: every change committed before it is at or before
        // it, every later one after it.
        let mut session = self.client.start_session().await.map_err(map_err)?;
        self.db
            .run_command(doc! { "ping": 1 })
            .session(&mut session)
            .await
            .map_err(map_err)?;
        let now = session
            .operation_time()
            .unwrap_or_else(|| cluster_time(Timestamp::now()));
        Ok(from_text(BsonTimestamp {
            time: now.time,
            increment: now.increment.saturating_add(1),
        }))
    }

    fn beyond(&self, position: &str, head: &str) -> bool {
        // A head is where changes from then on start (inclusive).
        matches!((Point::parse(position), Point::parse(head)), (Ok(p), Ok(h)) if p.at() >= h.at())
    }

    async fn trim(&self, _before: Timestamp, _max: u32) -> Result<u64, RepoError> {
        // The oplog's window is the server's; reads refuse positions older than the retention.
        Ok(0)
    }

    async fn oldest_at(&self) -> Result<Option<Timestamp>, RepoError> {
        Ok(None)
    }
}
