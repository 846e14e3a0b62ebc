//! Sessions and events as stored documents, and the filters and updates built from them.

use bson::{Bson, DateTime, Document, doc};

use super::convert::{corrupt, from_document, to_document};
use super::{OPEN, TOMBSTONE};
use crate::domain::search;
use crate::domain::{
    EndReason, Event, EventId, EventType, JsonObject, Language, NewSession, Redact, Session,
    SessionId, Status, Timers, Timestamp,
};
use crate::repo::RepoError;

/// Matches the session only while it is open with the deadline `stored` holds: what makes one
/// timer end win among concurrent recorders (sweepers, appends, ends).
pub(super) fn timer_end_filter(stored: &Document) -> Document {
    doc! {
        "sessionId": stored.get_str("sessionId").unwrap_or_default(),
        "status": { "$in": OPEN.as_slice() },
        "expiresAt": stored.get("expiresAt").cloned().unwrap_or(Bson::Null),
    }
}

/// Records `ended`'s end: status, `endedAt`, reason, and no deadline any more.
pub(super) fn end_update(ended: &Session) -> Document {
    doc! { "$set": {
        "status": ended.status.as_str(),
        "endedAt": optional_date(ended.ended_at),
        "endedReason": ended.ended_reason.as_ref().map_or(Bson::Null, |r| Bson::String(r.as_str().to_owned())),
        "expiresAt": Bson::Null,
    } }
}

pub(super) fn status_of(doc: &Document) -> Result<Status, RepoError> {
    let status = doc.get_str("status").map_err(|_| corrupt("status"))?;
    if status == TOMBSTONE {
        return Err(RepoError::Deleted);
    }
    status.parse().map_err(|_| corrupt("status"))
}

pub(super) fn millis(doc: &Document, key: &str) -> Result<Timestamp, RepoError> {
    let at = doc.get_datetime(key).map_err(|_| corrupt(key))?;
    Timestamp::from_millis(at.timestamp_millis()).map_err(|_| corrupt(key))
}

/// A date that may be null or absent.
pub(super) fn optional_millis(doc: &Document, key: &str) -> Result<Option<Timestamp>, RepoError> {
    match doc.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(_) => millis(doc, key).map(Some),
    }
}

pub(super) fn date(at: Timestamp) -> DateTime {
    DateTime::from_millis(at.millis())
}

pub(super) fn optional_date(at: Option<Timestamp>) -> Bson {
    at.map_or(Bson::Null, |at| Bson::DateTime(date(at)))
}

/// A timer in seconds; absent (a session from before timers) is off.
pub(super) fn timer(doc: &Document, key: &str) -> Result<u32, RepoError> {
    let seconds = match doc.get(key) {
        None | Some(Bson::Null) => return Ok(0),
        Some(Bson::Int32(v)) => i64::from(*v),
        Some(Bson::Int64(v)) => *v,
        Some(_) => return Err(corrupt(key)),
    };
    Timers::check(seconds).map_err(|_| corrupt(key))
}

/// The timers and where they count from; a session from before timers has none, from its start.
pub(super) fn timers_of(doc: &Document) -> Result<(Timers, Timestamp), RepoError> {
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
pub(super) fn session_from(doc: &Document) -> Result<Session, RepoError> {
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
        // Missing on sessions stored before metadata updates: never changed.
        revision: match doc.get("metadataRevision") {
            None | Some(Bson::Null) => 0,
            Some(_) => u64::try_from(
                doc.get_i64("metadataRevision")
                    .map_err(|_| corrupt("metadataRevision"))?,
            )
            .map_err(|_| corrupt("metadataRevision"))?,
        },
        redact: redact_from(doc)?,
    })
}

/// A session's `redact` as stored: the kinds' bits, absent or `null` for the service's.
pub(super) fn redact_bson(redact: Option<Redact>) -> Bson {
    redact.map_or(Bson::Null, |r| Bson::Int32(i32::from(r.bits())))
}

/// The `redact` of a session document; missing on sessions stored before it (the service's).
pub(super) fn redact_from(doc: &Document) -> Result<Option<Redact>, RepoError> {
    match doc.get("redact") {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Int32(bits)) => u8::try_from(*bits)
            .ok()
            .and_then(Redact::from_bits)
            .map(Some)
            .ok_or_else(|| corrupt("redact")),
        Some(_) => Err(corrupt("redact")),
    }
}

/// A new session as stored: its timers count from its start, and `expiresAt` is its first
/// deadline.
pub(super) fn session_to_document(new: &NewSession) -> Document {
    let session = new.clone().into_session();
    doc! {
        "sessionId": session.session_id.as_str(),
        "status": Status::Initiated.as_str(),
        "language": session.language.as_str(),
        "metadata": to_document(&session.metadata),
        "startedAt": date(session.started_at),
        "endedAt": Bson::Null,
        "eventCount": 0_i64,
        "metadataRevision": 0_i64,
        "endedReason": Bson::Null,
        "lastEventAt": Bson::Null,
        "inactivityTimeoutSeconds": i64::from(session.timers.inactivity_seconds),
        "maxDurationSeconds": i64::from(session.timers.max_duration_seconds),
        "timersSince": date(session.timers_since),
        "expiresAt": optional_date(session.deadline().map(|d| d.at)),
        "redact": redact_bson(session.redact),
    }
}

/// An event's document. Its payload is kept as the compact JSON text the service validated
/// (`payloadJson`, a string): the service never queries inside a payload, and a read then sends
/// that text on as it is, without converting BSON to JSON. Documents written before this hold
/// `payload` as a BSON document instead; [`event_from`] reads both. A searchable event also holds
/// `terms`, the distinct folded terms of its text (`domain::search::distinct_terms`), which the
/// `events_by_term` index serves.
pub(super) fn event_to_document(event: &Event) -> Document {
    let mut document = doc! {
        "sessionId": event.session_id.as_str(),
        "eventId": event.event_id.as_str(),
        "seq": to_i64(event.seq),
        "type": event.event_type.as_str(),
        "payloadJson": event.payload.json(),
        "timestamp": DateTime::from_millis(event.timestamp.millis()),
    };
    if let Some(text) = search::searchable_text(event.event_type, &event.payload) {
        document.insert("terms", search::distinct_terms(&text));
    }
    document
}

/// The payload of an event document, in either form (see [`event_to_document`]).
pub(super) fn payload_from(doc: &Document) -> Result<JsonObject, RepoError> {
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

pub(super) fn event_from(doc: &Document) -> Result<Event, RepoError> {
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

pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
