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

mod batch;
mod convert;
mod feed;
mod lifecycle;
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
    Appended, BatchAppended, CreateOutcome, DeleteOutcome, EndOutcome, EndRequest, EventPage,
    EventRange, EventRepository, PurgeOutcome, RepoError, Repositories, SessionRepository,
    SessionScan, seq_bounds,
};
use crate::domain::{
    EndReason, Event, EventId, EventType, JsonObject, Language, NewEvent, NewEvents, NewSession,
    Order, Session, SessionId, Status, Timers, Timestamp,
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
            changes: Some(Arc::new(feed::MongoFeed::new(self.db.clone()))),
        }
    }

    /// The lock that appends (single or batch) to `id` queue on in this instance.
    fn append_lock(&self, id: &SessionId) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut hasher);
        &self.append_locks[(hasher.finish() % self.append_locks.len() as u64) as usize]
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
        let received_at = date(new.received_at);
        // The first write takes the session document: concurrent appends to this session conflict
        // here and retry, which is what makes seqs dense and ordered. It matches only an open
        // session whose deadline has not come by the time the event arrived.
        let counted = self
            .sessions
            .find_one_and_update(
                doc! {
                    "sessionId": sid,
                    "status": { "$in": OPEN.as_slice() },
                    "$or": [{ "expiresAt": Bson::Null }, { "expiresAt": { "$gt": received_at } }],
                },
                doc! {
                    "$inc": { "eventCount": 1_i64 },
                    "$set": { "status": "active", "lastEventAt": received_at },
                },
            )
            .return_document(ReturnDocument::After)
            .session(&mut *session)
            .await?;
        let Some(counted) = counted else {
            return self.refused(session, new).await;
        };
        if let Some(existing) = self.find_event(session, new).await? {
            session.abort_transaction().await?;
            return Ok(Appended::Existing(event_from(&existing)?));
        }
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
        // The deadline moves with the event; the timers come from the document just updated.
        let (timers, since) = timers_of(&counted)?;
        let expires_at = crate::domain::deadline(timers, since, Some(new.received_at));
        self.sessions
            .update_one(
                doc! { "sessionId": sid },
                doc! { "$set": { "expiresAt": optional_date(expires_at.map(|d| d.at)) } },
            )
            .session(&mut *session)
            .await?;
        commit(session).await?;
        Ok(Appended::New(event))
    }

    /// The stored event with the new event's ids, read in the transaction.
    async fn find_event(
        &self,
        session: &mut ClientSession,
        new: &NewEvent,
    ) -> Result<Option<Document>, TxnError> {
        Ok(self
            .events
            .find_one(
                doc! { "sessionId": new.session_id.as_str(), "eventId": new.event_id.as_str() },
            )
            .session(&mut *session)
            .await?)
    }

    /// Why the session did not take the event, answered in the same transaction: it does not
    /// exist, it is a tombstone, the event was already stored, the session has ended, or its
    /// deadline came by `received_at` — then this records the timer's end (conditional on the
    /// deadline read, so a concurrent recorder conflicts and retries into `SessionEnded`).
    async fn refused(
        &self,
        session: &mut ClientSession,
        new: &NewEvent,
    ) -> Result<Appended, TxnError> {
        let sid = new.session_id.as_str();
        let stored = self
            .sessions
            .find_one(doc! { "sessionId": sid })
            .session(&mut *session)
            .await?;
        let Some(stored) = stored else {
            session.abort_transaction().await?;
            return Err(RepoError::NotFound.into());
        };
        // A tombstone's events may still be there until purged: it is `Deleted` all the same.
        let mut state = match session_from(&stored) {
            Ok(state) => state,
            Err(e) => {
                session.abort_transaction().await?;
                return Err(e.into());
            }
        };
        // An event stored before the session ended is still answered as stored.
        if let Some(existing) = self.find_event(session, new).await? {
            session.abort_transaction().await?;
            return Ok(Appended::Existing(event_from(&existing)?));
        }
        if state.status.is_terminal() {
            session.abort_transaction().await?;
            return Ok(Appended::SessionEnded(state.status));
        }
        let Some(deadline) = state.expired_at(new.received_at) else {
            session.abort_transaction().await?;
            return Err(RepoError::Backend(
                "an open session refused an event before its deadline: its expiresAt disagrees \
                 with its timers"
                    .into(),
            )
            .into());
        };
        if self
            .record_timer_end(session, &stored, &mut state, deadline)
            .await?
        {
            commit(session).await?;
            Ok(Appended::Expired(state))
        } else {
            session.abort_transaction().await?;
            Ok(Appended::SessionEnded(Status::Failed))
        }
    }
}

/// Matches the session only while it is open with the deadline `stored` holds: what makes one
/// timer end win among concurrent recorders (sweepers, appends, ends).
fn timer_end_filter(stored: &Document) -> Document {
    doc! {
        "sessionId": stored.get_str("sessionId").unwrap_or_default(),
        "status": { "$in": OPEN.as_slice() },
        "expiresAt": stored.get("expiresAt").cloned().unwrap_or(Bson::Null),
    }
}

/// Records `ended`'s end: status, `endedAt`, reason, and no deadline any more.
fn end_update(ended: &Session) -> Document {
    doc! { "$set": {
        "status": ended.status.as_str(),
        "endedAt": optional_date(ended.ended_at),
        "endedReason": ended.ended_reason.as_ref().map_or(Bson::Null, |r| Bson::String(r.as_str().to_owned())),
        "expiresAt": Bson::Null,
    } }
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

    /// `NotFound` without a session, `Deleted` for a tombstone.
    async fn require_live(&self, id: &SessionId) -> Result<(), RepoError> {
        let doc = self
            .sessions
            .find_one(doc! { "sessionId": id.as_str() })
            .projection(doc! { "_id": 0, "status": 1 })
            .await
            .map_err(map_err)?
            .ok_or(RepoError::NotFound)?;
        match doc.get_str("status") {
            Ok(TOMBSTONE) => Err(RepoError::Deleted),
            _ => Ok(()),
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
        ErrorKind::InsertMany(e) => e
            .write_errors
            .iter()
            .flatten()
            .any(|e| e.code == DUPLICATE_KEY),
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
        ErrorKind::InsertMany(e) => {
            e.write_errors
                .iter()
                .flatten()
                .any(|e| e.code == OUT_OF_DISK_SPACE)
                || e.write_concern_error
                    .as_ref()
                    .is_some_and(|e| e.code == OUT_OF_DISK_SPACE)
        }
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

fn status_of(doc: &Document) -> Result<Status, RepoError> {
    let status = doc.get_str("status").map_err(|_| corrupt("status"))?;
    if status == TOMBSTONE {
        return Err(RepoError::Deleted);
    }
    status.parse().map_err(|_| corrupt("status"))
}

fn millis(doc: &Document, key: &str) -> Result<Timestamp, RepoError> {
    let at = doc.get_datetime(key).map_err(|_| corrupt(key))?;
    Timestamp::from_millis(at.timestamp_millis()).map_err(|_| corrupt(key))
}

/// A date that may be null or absent.
fn optional_millis(doc: &Document, key: &str) -> Result<Option<Timestamp>, RepoError> {
    match doc.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(_) => millis(doc, key).map(Some),
    }
}

fn date(at: Timestamp) -> DateTime {
    DateTime::from_millis(at.millis())
}

fn optional_date(at: Option<Timestamp>) -> Bson {
    at.map_or(Bson::Null, |at| Bson::DateTime(date(at)))
}

/// A timer in seconds; absent (a session from before timers) is off.
fn timer(doc: &Document, key: &str) -> Result<u32, RepoError> {
    let seconds = match doc.get(key) {
        None | Some(Bson::Null) => return Ok(0),
        Some(Bson::Int32(v)) => i64::from(*v),
        Some(Bson::Int64(v)) => *v,
        Some(_) => return Err(corrupt(key)),
    };
    Timers::check(seconds).map_err(|_| corrupt(key))
}

/// The timers and where they count from; a session from before timers has none, from its start.
fn timers_of(doc: &Document) -> Result<(Timers, Timestamp), RepoError> {
    let timers = Timers {
        inactivity_seconds: timer(doc, "inactivityTimeoutSeconds")?,
        max_duration_seconds: timer(doc, "maxDurationSeconds")?,
    };
    let since = match optional_millis(doc, "timersSince")? {
        Some(since) => since,
        None => millis(doc, "startedAt")?,
    };
    Ok((timers, since))
}

/// The session, or `Deleted` for a tombstone.
fn session_from(doc: &Document) -> Result<Session, RepoError> {
    let status = status_of(doc)?;
    let (timers, timers_since) = timers_of(doc)?;
    Ok(Session {
        session_id: SessionId::parse(doc.get_str("sessionId").map_err(|_| corrupt("sessionId"))?)
            .map_err(|_| corrupt("sessionId"))?,
        status,
        language: Language::parse(doc.get_str("language").map_err(|_| corrupt("language"))?)
            .map_err(|_| corrupt("language"))?,
        metadata: from_document(
            doc.get_document("metadata")
                .map_err(|_| corrupt("metadata"))?,
        )?,
        started_at: millis(doc, "startedAt")?,
        ended_at: optional_millis(doc, "endedAt")?,
        event_count: u64::try_from(
            doc.get_i64("eventCount")
                .map_err(|_| corrupt("eventCount"))?,
        )
        .map_err(|_| corrupt("eventCount"))?,
        ended_reason: match doc.get("endedReason") {
            None | Some(Bson::Null) => None,
            Some(_) => Some(
                EndReason::parse(
                    doc.get_str("endedReason")
                        .map_err(|_| corrupt("endedReason"))?,
                )
                .map_err(|_| corrupt("endedReason"))?,
            ),
        },
        last_event_at: optional_millis(doc, "lastEventAt")?,
        timers,
        timers_since,
    })
}

/// A new session as stored: its timers count from its start, and `expiresAt` is its first
/// deadline.
fn session_to_document(new: &NewSession) -> Document {
    let session = new.clone().into_session();
    doc! {
        "sessionId": session.session_id.as_str(),
        "status": Status::Initiated.as_str(),
        "language": session.language.as_str(),
        "metadata": to_document(&session.metadata),
        "startedAt": date(session.started_at),
        "endedAt": Bson::Null,
        "eventCount": 0_i64,
        "endedReason": Bson::Null,
        "lastEventAt": Bson::Null,
        "inactivityTimeoutSeconds": i64::from(session.timers.inactivity_seconds),
        "maxDurationSeconds": i64::from(session.timers.max_duration_seconds),
        "timersSince": date(session.timers_since),
        "expiresAt": optional_date(session.deadline().map(|d| d.at)),
    }
}

/// An event's document. Its payload is kept as the compact JSON text the service validated
/// (`payloadJson`, a string): the service never queries inside a payload, and a read then sends
/// that text on as it is, without converting BSON to JSON. Documents written before this hold
/// `payload` as a BSON document instead; [`event_from`] reads both.
fn event_to_document(event: &Event, seq: i64) -> Document {
    doc! {
        "sessionId": event.session_id.as_str(),
        "eventId": event.event_id.as_str(),
        "seq": seq,
        "type": event.event_type.as_str(),
        "payloadJson": event.payload.json(),
        "timestamp": DateTime::from_millis(event.timestamp.millis()),
    }
}

/// The payload of an event document, in either form (see [`event_to_document`]).
fn payload_from(doc: &Document) -> Result<JsonObject, RepoError> {
    match doc.get("payloadJson") {
        Some(Bson::String(text)) => {
            JsonObject::from_stored_json(text).map_err(|_| corrupt("payloadJson"))
        }
        Some(_) => Err(corrupt("payloadJson")),
        None => from_document(
            doc.get_document("payload")
                .map_err(|_| corrupt("payload"))?,
        ),
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
        payload: payload_from(doc)?,
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
        // A retry of a stored event needs no transaction (stored events never change), unless
        // its session was erased: a tombstone's events stay until purged, and are `Deleted`.
        if let Some(existing) = self.stored_event(&new.session_id, &new.event_id).await? {
            self.require_live(&new.session_id).await?;
            return Ok(Appended::Existing(event_from(&existing)?));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An error as the driver builds it from a server reply (deserialized, as the driver does).
    fn server_error(kind: &str, code: i32) -> mongodb::error::Error {
        let reply = doc! { "code": code, "codeName": "Test", "errmsg": "test", "index": 0 };
        let kind = match kind {
            "command" => ErrorKind::Command(bson::from_document(reply).unwrap()),
            "write" => ErrorKind::Write(WriteFailure::WriteError(
                bson::from_document(reply).unwrap(),
            )),
            _ => ErrorKind::Write(WriteFailure::WriteConcernError(
                bson::from_document(reply).unwrap(),
            )),
        };
        mongodb::error::Error::from(kind)
    }

    #[test]
    fn out_of_disk_space_is_full_and_write_concern_failures_are_unavailable() {
        for kind in ["command", "write", "write_concern"] {
            assert!(
                map_err(server_error(kind, OUT_OF_DISK_SPACE)).is_full(),
                "{kind}"
            );
        }
        assert!(matches!(
            map_err(server_error("write_concern", 64)),
            RepoError::Unavailable(_)
        ));
        assert!(matches!(
            map_err(server_error("command", 2)),
            RepoError::Backend(_)
        ));
    }
}
