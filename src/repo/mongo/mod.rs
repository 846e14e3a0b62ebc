//! The production backend: MongoDB through the official driver.
//!
//! - Sessions: create-or-get is one `findOneAndUpdate` with `upsert` and `$setOnInsert` on the
//!   unique `sessionId` index; a duplicate-key answer to a racing upsert reads the winner.
//! - Events: one multi-document transaction increments the session's `eventCount` (that write
//!   serializes concurrent appends to the same session, so seqs are dense and in commit order),
//!   flips `initiated` to `active`, and inserts the event. The unique `(sessionId, eventId)` index
//!   decides duplicates. Nothing is half-done after a crash: the transaction commits or vanishes.
//! - Ending: a conditional update filtered on a non-terminal status, so one `endedAt` wins.
//! - Writes use write concern `majority` with journaling unless the URI says otherwise.

mod append;
mod batch;
mod changes;
mod convert;
mod documents;
mod errors;
mod feed;
mod lifecycle;
mod migrations;
mod patch;
mod round_trips;
mod search;
mod search_backfill;
mod stats;
mod webhooks;

pub use round_trips::RoundTrips;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bson::oid::ObjectId;
use bson::{Document, doc};
use futures_util::TryStreamExt;
use mongodb::options::{Acknowledgment, ClientOptions, Hint, ReturnDocument, WriteConcern};
use mongodb::{Client, ClientSession, Collection, Database};

use super::{
    Appended, BatchAppended, CreateOutcome, DeleteOutcome, EndOutcome, EndRequest, EventPage,
    EventRange, EventRepository, MetadataPatch, Patched, PurgeOutcome, RepoError, Repositories,
    SessionRepository, SessionScan, seq_bounds,
};
use crate::domain::{
    Event, EventId, NewEvent, NewEvents, NewSession, Order, Redact, Session, SessionId, Timers,
    Timestamp,
};
use convert::corrupt;
use documents::{
    date, end_update, event_from, event_to_document, optional_date, redact_from, session_from,
    session_to_document, timer_end_filter, timers_of, to_i64,
};
use errors::{TxnError, backoff, commit, is_duplicate_key, is_unreachable, map_err};

/// How long the driver looks for a usable server before an operation fails (→ 503), unless the
/// URI sets `serverSelectionTimeoutMS`.
const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an append keeps retrying a transaction that meets write conflicts with concurrent
/// appends to the same session, before it gives up with 503.
const TRANSACTION_RETRY_BUDGET: Duration = Duration::from_secs(5);
const SEQ_INDEX: &str = "sessionId_seq_unique";
const DUPLICATE_KEY: i32 = 11000;
/// The stored statuses of a session that has not ended.
const OPEN: [&str; 2] = ["initiated", "active"];
/// The stored status of an erased session's tombstone.
const TOMBSTONE: &str = "deleted";

/// Where MongoDB lives; the rest of its settings come from the URI's options.
#[derive(Debug, Clone)]
pub struct MongoSettings {
    pub uri: String,
    /// The database to use: the one named in the URI's path, or `conversations`.
    pub database: String,
}

#[derive(Clone)]
pub struct MongoStore {
    client: Client,
    db: Database,
    sessions: Collection<Document>,
    events: Collection<Document>,
    write_concern: WriteConcern,
    /// Appends to one session queue here before their transactions, so that one instance does
    /// not make its own appends conflict with each other (other instances still can, and retry).
    append_locks: Arc<[tokio::sync::Mutex<()>]>,
    /// Commands sent to the server (`round_trips`).
    round_trips: Arc<RoundTrips>,
}

/// How many locks the sessions are spread over; two sessions share one rarely.
const APPEND_LOCK_STRIPES: usize = 1024;

pub struct Opened {
    pub store: MongoStore,
    pub applied_migrations: Vec<String>,
}

impl MongoStore {
    /// Connects, then applies the index migrations (which waits for the server to answer).
    pub async fn open(settings: &MongoSettings) -> Result<Opened, RepoError> {
        let mut options = ClientOptions::parse(&settings.uri)
            .await
            .map_err(|e| RepoError::Backend(Box::new(e)))?;
        options
            .server_selection_timeout
            .get_or_insert(DEFAULT_SERVER_SELECTION_TIMEOUT);
        options
            .connect_timeout
            .get_or_insert(DEFAULT_CONNECT_TIMEOUT);
        options
            .app_name
            .get_or_insert_with(|| "session-service".into());
        let write_concern = options.write_concern.clone().unwrap_or_else(|| {
            WriteConcern::builder()
                .w(Acknowledgment::Majority)
                .journal(true)
                .build()
        });
        options.write_concern = Some(write_concern.clone());
        let round_trips = Arc::new(RoundTrips::default());
        options.command_event_handler = Some(round_trips.handler());
        let client = Client::with_options(options).map_err(|e| RepoError::Backend(Box::new(e)))?;
        let db = client.database(&settings.database);
        let applied_migrations = migrations::migrate(&db).await.map_err(map_err)?;
        Ok(Opened {
            store: MongoStore {
                sessions: db.collection("sessions"),
                events: db.collection("events"),
                client,
                db,
                write_concern,
                append_locks: (0..APPEND_LOCK_STRIPES)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
                round_trips,
            },
            applied_migrations,
        })
    }

    /// The commands this store has sent to the server so far.
    pub fn round_trips(&self) -> Arc<RoundTrips> {
        Arc::clone(&self.round_trips)
    }

    pub fn repositories(&self) -> Repositories {
        Repositories {
            sessions: Arc::new(self.clone()),
            events: Arc::new(self.clone()),
            changes: Some(Arc::new(feed::MongoFeed::new(self.db.clone()))),
            feed: Arc::new(self.clone()),
            search: Arc::new(self.clone()),
            stats: Arc::new(self.clone()),
            webhooks: Arc::new(self.clone()),
        }
    }
}

impl MongoStore {
    /// Inside an append's transaction: records the timer end of `state` (the session as read in
    /// it, as `stored`) at `deadline`, conditional on nobody having changed that deadline or ended
    /// it meanwhile; whether this write recorded it.
    async fn record_timer_end(
        &self,
        session: &mut ClientSession,
        stored: &Document,
        state: &mut Session,
        deadline: crate::domain::Deadline,
    ) -> mongodb::error::Result<bool> {
        state.end_by(deadline);
        let recorded = self
            .sessions
            .update_one(timer_end_filter(stored), end_update(state))
            .session(session)
            .await?;
        Ok(recorded.matched_count == 1)
    }

    async fn stored_event(
        &self,
        session_id: &SessionId,
        event_id: &EventId,
    ) -> Result<Option<Document>, RepoError> {
        self.events
            .find_one(doc! { "sessionId": session_id.as_str(), "eventId": event_id.as_str() })
            .await
            .map_err(map_err)
    }

    /// The session's `redact`; `NotFound` without a session, `Deleted` for a tombstone.
    async fn require_live(&self, id: &SessionId) -> Result<Option<Redact>, RepoError> {
        let doc = self
            .sessions
            .find_one(doc! { "sessionId": id.as_str() })
            .projection(doc! { "_id": 0, "status": 1, "redact": 1 })
            .await
            .map_err(map_err)?
            .ok_or(RepoError::NotFound)?;
        match doc.get_str("status") {
            Ok(TOMBSTONE) => Err(RepoError::Deleted),
            _ => redact_from(&doc),
        }
    }

    async fn read_winner(&self, filter: Document) -> Result<Document, RepoError> {
        for attempt in 1..=20 {
            if let Some(doc) = self
                .sessions
                .find_one(filter.clone())
                .await
                .map_err(map_err)?
            {
                return Ok(doc);
            }
            backoff(attempt).await;
        }
        Err(RepoError::Backend(
            "the session that won the create race is not visible".into(),
        ))
    }
}

#[async_trait]
impl SessionRepository for MongoStore {
    async fn create_or_get(&self, new: NewSession) -> Result<CreateOutcome, RepoError> {
        let filter = doc! { "sessionId": new.session_id.as_str() };
        // The caller whose token is stored is the one that created the session. Reading that back
        // does not depend on how a server reports an upsert that lost a race.
        let token = ObjectId::new();
        let mut insert = session_to_document(&new);
        insert.insert("createToken", token);
        let upsert = self
            .sessions
            .find_one_and_update(filter.clone(), doc! { "$setOnInsert": insert })
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await;
        let stored = match upsert {
            Ok(Some(stored)) => stored,
            // The upsert lost a race to insert (a duplicate key, or no document from a server that
            // answers so): read the winner's document, which may take a moment to become visible.
            Ok(None) => self.read_winner(filter).await?,
            Err(e) if is_duplicate_key(&e) => self.read_winner(filter).await?,
            Err(e) => return Err(map_err(e)),
        };
        Ok(CreateOutcome {
            created: stored.get_object_id("createToken").ok() == Some(token),
            session: session_from(&stored)?,
        })
    }

    async fn get(&self, id: &SessionId) -> Result<Session, RepoError> {
        let doc = self
            .sessions
            .find_one(doc! { "sessionId": id.as_str() })
            .await
            .map_err(map_err)?
            .ok_or(RepoError::NotFound)?;
        session_from(&doc)
    }

    async fn end(&self, id: &SessionId, request: EndRequest) -> Result<EndOutcome, RepoError> {
        self.end_at(id, request.at, Some((request.status, request.reason)))
            .await
    }

    async fn expire(&self, id: &SessionId, now: Timestamp) -> Result<EndOutcome, RepoError> {
        self.end_at(id, now, None).await
    }

    async fn expired(&self, now: Timestamp, limit: u32) -> Result<Vec<SessionId>, RepoError> {
        self.expired_ids(now, limit).await
    }

    async fn list(&self, scan: &SessionScan) -> Result<Vec<Session>, RepoError> {
        self.list_sessions(scan).await
    }

    async fn delete(&self, id: &SessionId, at: Timestamp) -> Result<DeleteOutcome, RepoError> {
        self.delete_session(id, at).await
    }

    async fn patch_metadata(
        &self,
        id: &SessionId,
        patch: MetadataPatch,
    ) -> Result<Patched, RepoError> {
        self.patch_session_metadata(id, &patch).await
    }

    async fn purge(
        &self,
        max_events: u64,
        tombstones_before: Timestamp,
    ) -> Result<PurgeOutcome, RepoError> {
        self.purge_erased(max_events, tombstones_before).await
    }

    async fn ended_before(
        &self,
        cutoff: Timestamp,
        limit: u32,
    ) -> Result<Vec<SessionId>, RepoError> {
        self.ended_before_ids(cutoff, limit).await
    }

    async fn adopt_legacy_sessions(
        &self,
        defaults: Timers,
        now: Timestamp,
    ) -> Result<u64, RepoError> {
        self.adopt_legacy(defaults, now).await
    }

    async fn ping(&self) -> Result<(), RepoError> {
        self.db
            .run_command(doc! { "ping": 1 })
            .await
            .map(|_| ())
            .map_err(map_err)
    }
}

#[async_trait]
impl EventRepository for MongoStore {
    async fn append(&self, new: NewEvent) -> Result<Appended, RepoError> {
        // A retry of a stored event is refused by the unique index inside the transaction
        // (which ends it), and then read as any stored event is (`Self::get`: not when its
        // session was erased). Its `redact` was checked by the transaction's first write.
        let _queued = self.append_lock(&new.session_id).lock().await;
        match self.append_in_transaction(&new).await {
            Ok(appended) => Ok(appended),
            // A concurrent append with the same eventId committed first.
            Err(TxnError::Driver(e)) if is_duplicate_key(&e) => {
                EventRepository::get(self, &new.session_id, &new.event_id)
                    .await
                    .map(Appended::Existing)
            }
            Err(TxnError::Driver(e)) => Err(map_err(e)),
            Err(TxnError::Repo(e)) => Err(e),
        }
    }

    async fn append_batch(&self, batch: NewEvents) -> Result<BatchAppended, RepoError> {
        self.append_batch_in_transaction(&batch).await
    }

    async fn get(&self, session_id: &SessionId, event_id: &EventId) -> Result<Event, RepoError> {
        // The event first, then its session: a session not erased after the event was read was
        // not erased when it was read either.
        let doc = self.stored_event(session_id, event_id).await?;
        self.require_live(session_id).await?;
        event_from(&doc.ok_or(RepoError::NotFound)?)
    }

    async fn page(
        &self,
        session_id: &SessionId,
        range: EventRange,
    ) -> Result<EventPage, RepoError> {
        // Events up to the count read here were committed with it, so the page never shows an
        // event the count does not include, even while appends continue.
        let session = SessionRepository::get(self, session_id).await?;
        let bounds = seq_bounds(&range, session.event_count);
        let direction = match range.order {
            Order::Asc => 1,
            Order::Desc => -1,
        };
        let docs: Vec<Document> = self
            .events
            .find(doc! {
                "sessionId": session_id.as_str(),
                "seq": { "$gt": to_i64(bounds.low_excl), "$lte": to_i64(bounds.high_incl) },
            })
            .sort(doc! { "seq": direction })
            .limit(i64::from(range.limit) + 1)
            .hint(Hint::Name(SEQ_INDEX.into()))
            .await
            .map_err(map_err)?
            .try_collect()
            .await
            .map_err(map_err)?;
        let events = docs.iter().map(event_from).collect::<Result<Vec<_>, _>>()?;
        Ok(EventPage::from_one_more(session, events, range.limit))
    }
}
