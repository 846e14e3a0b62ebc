//! Single appends: one transaction that counts the event on its session and inserts it.

use bson::{Bson, Document, doc};
use mongodb::ClientSession;
use mongodb::error::TRANSIENT_TRANSACTION_ERROR;
use mongodb::options::ReturnDocument;

use super::convert::corrupt;
use super::documents::{date, event_from, event_to_document, redact_bson, session_from};
use super::errors::{TxnError, backoff, commit, is_unreachable};
use super::{MongoStore, OPEN, TRANSACTION_RETRY_BUDGET};
use crate::domain::{NewEvent, Redact, SessionId, Status};
use crate::repo::decide::{self, Refusal, Target};
use crate::repo::{Appended, RepoError};

impl MongoStore {
    /// The lock that appends (single or batch) to `id` queue on in this instance.
    pub(super) fn append_lock(&self, id: &SessionId) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut hasher);
        &self.append_locks[(hasher.finish() % self.append_locks.len() as u64) as usize]
    }

    /// The append transaction, retried while the server calls its failures transient (write
    /// conflicts with concurrent appends to the same session, elections, network blips).
    pub(super) async fn append_in_transaction(&self, new: &NewEvent) -> Result<Appended, TxnError> {
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

    pub(super) async fn try_append(
        &self,
        session: &mut ClientSession,
        new: &NewEvent,
    ) -> Result<Appended, TxnError> {
        session
            .start_transaction()
            .write_concern(self.write_concern.clone())
            .await?;
        let received_at = date(new.received_at);
        // The first write takes the session document: concurrent appends to this session conflict
        // here and retry, which is what makes seqs dense and ordered.
        let filter = takes_events(&new.session_id, received_at, new.redact, new.expected_seq);
        // One update counts the event, marks the session active, records the event's time and
        // moves the deadline (`counted_at`): three round trips in all with the insert and
        // the commit. A stored event is found by the unique `(sessionId, eventId)` index
        // refusing the insert (which ends the transaction), not by a read before every write.
        let counted = self
            .sessions
            .find_one_and_update(filter, counted_at(Bson::DateTime(received_at), 1))
            .return_document(ReturnDocument::After)
            .session(&mut *session)
            .await?;
        let Some(counted) = counted else {
            return self.refused(session, new).await;
        };
        let seq = counted
            .get_i64("eventCount")
            .ok()
            .and_then(|c| u64::try_from(c).ok())
            .ok_or_else(|| corrupt("eventCount"))?;
        let event = new.stored(seq);
        self.events
            .insert_one(event_to_document(&event))
            .session(&mut *session)
            .await?;
        commit(session).await?;
        Ok(Appended::New(event))
    }

    /// The stored event with the new event's ids, read in the transaction.
    pub(super) async fn find_event(
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
    /// exist, it is a tombstone, its `redact` is not the one the payload was redacted under,
    /// the event was already stored, the session has ended, its
    /// last seq is not the expected one, or its deadline came by `received_at` — then this records the timer's end (conditional on the
    /// deadline read, so a concurrent recorder conflicts and retries into `SessionEnded`).
    pub(super) async fn refused(
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
        let target = Target {
            status: state.status,
            expired: state.expired_at(new.received_at).is_some(),
            event_count: state.event_count,
            expected_seq: new.expected_seq,
            redact: state.redact,
        };
        if let Some(redact) = target.redaction_changed(new.redact) {
            session.abort_transaction().await?;
            return Ok(Appended::RedactionChanged(redact));
        }
        // An event stored before the session ended is still answered as stored.
        if let Some(existing) = self.find_event(session, new).await? {
            session.abort_transaction().await?;
            return Ok(Appended::Existing(event_from(&existing)?));
        }
        let deadline = match (target.refusal(), state.expired_at(new.received_at)) {
            (Some(Refusal::Ended(status)), _) => {
                session.abort_transaction().await?;
                return Ok(Appended::SessionEnded(status));
            }
            (Some(Refusal::SeqMismatch { current }), _) => {
                session.abort_transaction().await?;
                return Ok(Appended::SeqMismatch(current));
            }
            (Some(Refusal::Expired), Some(deadline)) => deadline,
            _ => {
                session.abort_transaction().await?;
                return Err(RepoError::Backend(
                    "an open session refused an event before its deadline: its expiresAt \
                     disagrees with its timers"
                        .into(),
                )
                .into());
            }
        };
        if self
            .record_timer_end(session, &stored, &mut state, deadline)
            .await?
        {
            commit(session).await?;
            Ok(decide::expired_append(Ok(state)))
        } else {
            session.abort_transaction().await?;
            Ok(decide::expired_append(Err(Status::Failed)))
        }
    }
}

/// The sessions that take new events received at `received_at`: open, whose deadline has not
/// come by then, whose payloads are redacted under `redact`, and, with an expected seq, whose
/// count is still that one (what `decide` checks before an append).
pub(super) fn takes_events(
    id: &SessionId,
    received_at: bson::DateTime,
    redact: Option<Redact>,
    expected_seq: Option<u64>,
) -> Document {
    let mut filter = doc! {
        "sessionId": id.as_str(),
        "status": { "$in": OPEN.as_slice() },
        "$or": [{ "expiresAt": Bson::Null }, { "expiresAt": { "$gt": received_at } }],
        "redact": redact_bson(redact),
    };
    if let Some(expected) = expected_seq {
        filter.insert("eventCount", expected as i64);
    }
    filter
}

/// The update of a session that takes `events` new events received at `received_at`: a pipeline, so the new
/// deadline is computed by the server from the session's own timers in the same write (what
/// `domain::deadline` computes: the earlier of the inactivity deadline, counted from the event or
/// from `timersSince` if that is later, and the maximum duration's; none for a timer of 0).
pub(super) fn counted_at(received_at: Bson, events: i64) -> Vec<Document> {
    let since = doc! { "$ifNull": ["$timersSince", "$startedAt"] };
    let inactivity = doc! { "$ifNull": ["$inactivityTimeoutSeconds", 0_i64] };
    let max_duration = doc! { "$ifNull": ["$maxDurationSeconds", 0_i64] };
    let inactivity_at = doc! { "$cond": [
        { "$gt": [inactivity.clone(), 0_i64] },
        { "$add": [{ "$max": [received_at.clone(), since.clone()] },
                   { "$multiply": [inactivity, 1000_i64] }] },
        Bson::Null,
    ] };
    let max_duration_at = doc! { "$cond": [
        { "$gt": [max_duration.clone(), 0_i64] },
        { "$add": [since, { "$multiply": [max_duration, 1000_i64] }] },
        Bson::Null,
    ] };
    vec![doc! { "$set": {
        "eventCount": { "$add": ["$eventCount", events] },
        "status": "active",
        "lastEventAt": received_at,
        // `$min` skips nulls: no timer, no deadline.
        "expiresAt": { "$min": [inactivity_at, max_duration_at] },
    } }]
}
