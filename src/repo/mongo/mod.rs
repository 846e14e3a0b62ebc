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

mod convert;
mod migrations;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bson::oid::ObjectId;
use bson::{Bson, DateTime, Document, doc};
use futures_util::TryStreamExt;
use mongodb::error::{
    ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT, WriteFailure,
};
use mongodb::options::{Acknowledgment, ClientOptions, Hint, ReturnDocument, WriteConcern};
use mongodb::{Client, ClientSession, Collection, Database};

use super::{
    Appended, CreateOutcome, DeleteOutcome, EndOutcome, EndRequest, EventPage, EventRange,
    EventRepository, PurgeOutcome, RepoError, Repositories, SessionRepository, SessionScan,
    seq_bounds,
};
use crate::domain::{
    Event, EventId, EventType, Language, NewEvent, NewSession, Order, Session, SessionId, Status,
    Timers, Timestamp,
};
use convert::{corrupt, from_document, to_document};

/// How long the driver looks for a usable server before an operation fails (→ 503), unless the
/// URI sets `serverSelectionTimeoutMS`.
const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an append keeps retrying a transaction that meets write conflicts with concurrent
/// appends to the same session, before it gives up with 503.
const TRANSACTION_RETRY_BUDGET: Duration = Duration::from_secs(5);
const SEQ_INDEX: &str = "sessionId_seq_unique";
const DUPLICATE_KEY: i32 = 11000;

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
            },
            applied_migrations,
        })
    }

    pub fn repositories(&self) -> Repositories {
        Repositories {
            sessions: Arc::new(self.clone()),
            events: Arc::new(self.clone()),
        }
    }

    /// The append transaction, retried while the server calls its failures transient (write
    /// conflicts with concurrent appends to the same session, elections, network blips).
    async fn append_in_transaction(&self, new: &NewEvent) -> Result<Appended, TxnError> {
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut session = self.client.start_session().await?;
            match self.try_append(&mut session, new).await {
                // Only conflicts the server reported are retried here; an unreachable server
                // already had the driver's own timeouts and is answered with 503 at once.
                Err(TxnError::Driver(e))
                    if e.contains_label(TRANSIENT_TRANSACTION_ERROR)
                        && !is_unreachable(&e)
                        && started.elapsed() < TRANSACTION_RETRY_BUDGET =>
                {
                    let _ = session.abort_transaction().await;
                    backoff(attempt).await;
                }
                other => return other,
            }
        }
    }

    async fn try_append(
        &self,
        session: &mut ClientSession,
        new: &NewEvent,
    ) -> Result<Appended, TxnError> {
        session
            .start_transaction()
            .write_concern(self.write_concern.clone())
            .await?;
        let sid = new.session_id.as_str();
        // The first write takes the session document: concurrent appends to this session conflict
        // here and retry, which is what makes seqs dense and ordered.
        let counted = self
            .sessions
            .find_one_and_update(
                doc! { "sessionId": sid, "status": { "$in": ["initiated", "active"] } },
                doc! { "$inc": { "eventCount": 1_i64 }, "$set": { "status": "active" } },
            )
            .return_document(ReturnDocument::After)
            .session(&mut *session)
            .await?;
        let existing = self
            .events
            .find_one(doc! { "sessionId": sid, "eventId": new.event_id.as_str() })
            .session(&mut *session)
            .await?;
        if let Some(existing) = existing {
            session.abort_transaction().await?;
            return Ok(Appended::Existing(event_from(&existing)?));
        }
        let Some(counted) = counted else {
            let stored = self
                .sessions
                .find_one(doc! { "sessionId": sid })
                .session(&mut *session)
                .await?;
            session.abort_transaction().await?;
            return match stored {
                None => Err(RepoError::NotFound.into()),
                Some(doc) => Ok(Appended::SessionEnded(status_of(&doc)?)),
            };
        };
        let seq = counted
            .get_i64("eventCount")
            .map_err(|_| corrupt("eventCount"))?;
        let event = Event {
            session_id: new.session_id.clone(),
            event_id: new.event_id.clone(),
            seq: u64::try_from(seq).map_err(|_| corrupt("negative eventCount"))?,
            event_type: new.event_type,
            payload: new.payload.clone(),
            timestamp: new.timestamp(),
        };
        self.events
            .insert_one(event_to_document(&event, seq))
            .session(&mut *session)
            .await?;
        commit(session).await?;
        Ok(Appended::New(event))
    }
}

impl MongoStore {
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

/// Commits, retrying while the outcome is unknown (the spec's UnknownTransactionCommitResult).
async fn commit(session: &mut ClientSession) -> Result<(), mongodb::error::Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match session.commit_transaction().await {
            Err(e) if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) && attempt < 5 => {
                backoff(attempt).await;
            }
            other => return other,
        }
    }
}

/// Sleeps a short, growing, jittered time so that conflicting writers spread out.
async fn backoff(attempt: u32) {
    let ceiling_ms = 1u64 << attempt.min(6);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or_default();
    tokio::time::sleep(Duration::from_micros(jitter % (ceiling_ms * 1000) + 100)).await;
}

/// Why an append transaction stopped: the driver failed, or the data said no.
enum TxnError {
    Driver(mongodb::error::Error),
    Repo(RepoError),
}

impl From<mongodb::error::Error> for TxnError {
    fn from(e: mongodb::error::Error) -> Self {
        TxnError::Driver(e)
    }
}

impl From<RepoError> for TxnError {
    fn from(e: RepoError) -> Self {
        TxnError::Repo(e)
    }
}

fn is_duplicate_key(err: &mongodb::error::Error) -> bool {
    match err.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == DUPLICATE_KEY,
        ErrorKind::Command(e) => e.code == DUPLICATE_KEY,
        _ => false,
    }
}

/// The server could not be reached or the connection broke.
fn is_unreachable(err: &mongodb::error::Error) -> bool {
    matches!(
        err.kind.as_ref(),
        ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::DnsResolve { .. }
            | ErrorKind::Shutdown
    )
}

/// MongoDB's `OutOfDiskSpace` (14031), as a command, write or write-concern error.
const OUT_OF_DISK_SPACE: i32 = 14031;

/// The server reported it is out of disk space.
fn is_out_of_space(err: &mongodb::error::Error) -> bool {
    match err.kind.as_ref() {
        ErrorKind::Command(e) => e.code == OUT_OF_DISK_SPACE,
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == OUT_OF_DISK_SPACE,
        ErrorKind::Write(WriteFailure::WriteConcernError(e)) => e.code == OUT_OF_DISK_SPACE,
        _ => false,
    }
}

/// The server could not apply or acknowledge a write for a reason a retry may fix: a write
/// concern that timed out or could not be satisfied, a primary that stepped down.
fn is_write_unavailable(err: &mongodb::error::Error) -> bool {
    matches!(
        err.kind.as_ref(),
        ErrorKind::Write(WriteFailure::WriteConcernError(_))
    ) || err.contains_label("RetryableWriteError")
}

pub(crate) fn map_err(err: mongodb::error::Error) -> RepoError {
    if is_out_of_space(&err) {
        return RepoError::full(err);
    }
    if is_unreachable(&err)
        || is_write_unavailable(&err)
        || err.contains_label(TRANSIENT_TRANSACTION_ERROR)
    {
        RepoError::Unavailable(Box::new(err))
    } else {
        RepoError::Backend(Box::new(err))
    }
}

// WIP marker for the lifecycle methods still to be written for MongoDB; never left in a release.
fn not_yet() -> RepoError {
    RepoError::Backend("not implemented on MongoDB yet".into())
}

fn status_of(doc: &Document) -> Result<Status, RepoError> {
    doc.get_str("status")
        .map_err(|_| corrupt("status"))?
        .parse()
        .map_err(|_| corrupt("status"))
}

fn millis(doc: &Document, key: &str) -> Result<Timestamp, RepoError> {
    let at = doc.get_datetime(key).map_err(|_| corrupt(key))?;
    Timestamp::from_millis(at.timestamp_millis()).map_err(|_| corrupt(key))
}

fn session_from(doc: &Document) -> Result<Session, RepoError> {
    Ok(Session {
        session_id: SessionId::parse(doc.get_str("sessionId").map_err(|_| corrupt("sessionId"))?)
            .map_err(|_| corrupt("sessionId"))?,
        status: status_of(doc)?,
        language: Language::parse(doc.get_str("language").map_err(|_| corrupt("language"))?)
            .map_err(|_| corrupt("language"))?,
        metadata: from_document(
            doc.get_document("metadata")
                .map_err(|_| corrupt("metadata"))?,
        )?,
        started_at: millis(doc, "startedAt")?,
        ended_at: match doc.get("endedAt") {
            None | Some(Bson::Null) => None,
            Some(_) => Some(millis(doc, "endedAt")?),
        },
        event_count: u64::try_from(
            doc.get_i64("eventCount")
                .map_err(|_| corrupt("eventCount"))?,
        )
        .map_err(|_| corrupt("eventCount"))?,
        ended_reason: None,
        last_event_at: None,
        timers: Timers::default(),
        timers_since: millis(doc, "startedAt")?,
    })
}

fn session_to_document(new: &NewSession) -> Document {
    doc! {
        "sessionId": new.session_id.as_str(),
        "status": Status::Initiated.as_str(),
        "language": new.language.as_str(),
        "metadata": to_document(&new.metadata),
        "startedAt": DateTime::from_millis(new.started_at.millis()),
        "endedAt": Bson::Null,
        "eventCount": 0_i64,
    }
}

fn event_to_document(event: &Event, seq: i64) -> Document {
    doc! {
        "sessionId": event.session_id.as_str(),
        "eventId": event.event_id.as_str(),
        "seq": seq,
        "type": event.event_type.as_str(),
        "payload": to_document(&event.payload),
        "timestamp": DateTime::from_millis(event.timestamp.millis()),
    }
}

fn event_from(doc: &Document) -> Result<Event, RepoError> {
    Ok(Event {
        session_id: SessionId::parse(doc.get_str("sessionId").map_err(|_| corrupt("sessionId"))?)
            .map_err(|_| corrupt("sessionId"))?,
        event_id: EventId::parse(doc.get_str("eventId").map_err(|_| corrupt("eventId"))?)
            .map_err(|_| corrupt("eventId"))?,
        seq: u64::try_from(doc.get_i64("seq").map_err(|_| corrupt("seq"))?)
            .map_err(|_| corrupt("seq"))?,
        event_type: EventType::parse(doc.get_str("type").map_err(|_| corrupt("type"))?)
            .map_err(|_| corrupt("type"))?,
        payload: from_document(
            doc.get_document("payload")
                .map_err(|_| corrupt("payload"))?,
        )?,
        timestamp: millis(doc, "timestamp")?,
    })
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
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
        let (status, ended_at) = (request.status, request.at);
        let ended = self
            .sessions
            .find_one_and_update(
                doc! { "sessionId": id.as_str(), "status": { "$in": ["initiated", "active"] } },
                doc! { "$set": {
                    "status": status.status().as_str(),
                    "endedAt": DateTime::from_millis(ended_at.millis()),
                } },
            )
            .return_document(ReturnDocument::After)
            .await
            .map_err(map_err)?;
        Ok(match ended {
            Some(doc) => EndOutcome {
                session: session_from(&doc)?,
                ended_now: true,
            },
            None => EndOutcome {
                session: SessionRepository::get(self, id).await?,
                ended_now: false,
            },
        })
    }

    async fn expire(&self, _id: &SessionId, _now: Timestamp) -> Result<EndOutcome, RepoError> {
        Err(not_yet())
    }

    async fn expired(&self, _now: Timestamp, _limit: u32) -> Result<Vec<SessionId>, RepoError> {
        Err(not_yet())
    }

    async fn list(&self, _scan: &SessionScan) -> Result<Vec<Session>, RepoError> {
        Err(not_yet())
    }

    async fn delete(&self, _id: &SessionId, _at: Timestamp) -> Result<DeleteOutcome, RepoError> {
        Err(not_yet())
    }

    async fn purge(
        &self,
        _max_events: u64,
        _tombstones_before: Timestamp,
    ) -> Result<PurgeOutcome, RepoError> {
        Err(not_yet())
    }

    async fn ended_before(
        &self,
        _cutoff: Timestamp,
        _limit: u32,
    ) -> Result<Vec<SessionId>, RepoError> {
        Err(not_yet())
    }

    async fn adopt_legacy_sessions(
        &self,
        _defaults: Timers,
        _now: Timestamp,
    ) -> Result<u64, RepoError> {
        Err(not_yet())
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
        // A retry of a stored event needs no transaction (stored events never change).
        match EventRepository::get(self, &new.session_id, &new.event_id).await {
            Ok(existing) => return Ok(Appended::Existing(existing)),
            Err(RepoError::NotFound) => {}
            Err(e) => return Err(e),
        }
        let stripe = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            new.session_id.hash(&mut hasher);
            (hasher.finish() % self.append_locks.len() as u64) as usize
        };
        let _queued = self.append_locks[stripe].lock().await;
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

    async fn get(&self, session_id: &SessionId, event_id: &EventId) -> Result<Event, RepoError> {
        let doc = self
            .events
            .find_one(doc! { "sessionId": session_id.as_str(), "eventId": event_id.as_str() })
            .await
            .map_err(map_err)?
            .ok_or(RepoError::NotFound)?;
        event_from(&doc)
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
        let mut events = docs.iter().map(event_from).collect::<Result<Vec<_>, _>>()?;
        let has_more = events.len() > range.limit as usize;
        events.truncate(range.limit as usize);
        Ok(EventPage {
            session,
            events,
            has_more,
        })
    }
}
