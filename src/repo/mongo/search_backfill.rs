//! Speech events stored before transcript search (migration 0003) have no `terms`, so the
//! `events_by_term` index cannot find them. The backfill gives them theirs, [`CHUNK`] events at a
//! time in `_id` order, from the background indexing task (`SearchRepository::index_pending`).
//! Its place is one document, `search_backfill {_id: "events", after, done}`, moved on only from
//! the place it was read at (compare and set), so instances running it at once do not step it
//! back; an event is given the same terms whichever instance does it, and only if it has none.

use bson::oid::ObjectId;
use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;

use super::convert::corrupt;
use super::documents::payload_from;
use super::errors::is_duplicate_key;
use super::{MongoStore, map_err};
use crate::domain::EventType;
use crate::domain::search::{distinct_terms, searchable_text};
use crate::repo::RepoError;

/// Events looked at per step.
const CHUNK: i64 = 500;
const PROGRESS: &str = "search_backfill";

impl MongoStore {
    /// Runs the backfill to its end (nothing once it is done); the events given terms.
    pub(super) async fn backfill_terms(&self) -> Result<u64, RepoError> {
        let mut given = 0;
        loop {
            let (n, done) = self.backfill_step().await?;
            given += n;
            if done {
                return Ok(given);
            }
        }
    }

    /// One chunk: the events given terms, and whether the backfill is done.
    async fn backfill_step(&self) -> Result<(u64, bool), RepoError> {
        let progress = self.db.collection::<Document>(PROGRESS);
        let state = progress
            .find_one(doc! { "_id": "events" })
            .await
            .map_err(map_err)?;
        if state
            .as_ref()
            .is_some_and(|s| s.get_bool("done") == Ok(true))
        {
            return Ok((0, true));
        }
        let after: Option<ObjectId> = match state.as_ref().and_then(|s| s.get("after")) {
            None => None,
            Some(Bson::ObjectId(id)) => Some(*id),
            Some(_) => return Err(corrupt("search_backfill.after")),
        };
        // Only speech events without terms; the server walks `_id` to find them.
        let mut filter = doc! {
            "terms": { "$exists": false },
            "type": { "$in": ["user_speech", "bot_speech"] },
        };
        if let Some(id) = after {
            filter.insert("_id", doc! { "$gt": id });
        }
        let mut events = self
            .events
            .find(filter)
            .sort(doc! { "_id": 1 })
            .limit(CHUNK)
            .projection(doc! { "type": 1, "payloadJson": 1, "payload": 1 })
            .await
            .map_err(map_err)?;
        let (mut last, mut read, mut given) = (after, 0, 0);
        while let Some(event) = events.try_next().await.map_err(map_err)? {
            read += 1;
            let id = event.get_object_id("_id").map_err(|_| corrupt("_id"))?;
            last = Some(id);
            let Some(terms) = terms_of(&event) else {
                // Not readable as this release stores events: left as it is, never searched.
                tracing::warn!(%id, "search backfill skips an event document it cannot read");
                continue;
            };
            self.events
                .update_one(
                    doc! { "_id": id, "terms": { "$exists": false } },
                    doc! { "$set": { "terms": terms } },
                )
                .await
                .map_err(map_err)?;
            given += 1;
        }
        let done = read < CHUNK;
        let from = after.map_or_else(
            || doc! { "_id": "events", "after": { "$exists": false } },
            |id| doc! { "_id": "events", "after": id },
        );
        let mut set = doc! { "done": done };
        if let Some(last) = last {
            set.insert("after", last);
        }
        match progress
            .update_one(from, doc! { "$set": set })
            .upsert(true)
            .await
        {
            // Another instance moved it on from the same place first: it goes on from there.
            Err(e) if is_duplicate_key(&e) => Ok((given, false)),
            Err(e) => Err(map_err(e)),
            Ok(_) => Ok((given, done)),
        }
    }
}

/// The terms of a speech event's document (none for a `text` that is not a string, which marks
/// it done all the same), or `None` if the document cannot be read.
fn terms_of(event: &Document) -> Option<Vec<String>> {
    let kind = EventType::parse(event.get_str("type").ok()?).ok()?;
    let text = searchable_text(kind, &payload_from(event).ok()?);
    Some(text.map(|t| distinct_terms(&t)).unwrap_or_default())
}
