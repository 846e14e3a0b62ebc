//! Batch appends: one transaction reads every stored event the batch names; the usual batch (new
//! events, no conflict, a session that takes them) is then counted on its session by one update
//! and inserted with one `insertMany` (four round trips with the commit, `counted_batch`).
//! Otherwise it reads the session, decides, and either inserts every new event and moves the
//! session's `eventCount` by their number, or writes nothing (but a timer's end). The session
//! document's update is conditional, and any write to it by a concurrent append conflicts, so seqs
//! stay dense; a concurrent batch that stored one of the ids first makes the unique
//! `(sessionId, eventId)` index refuse the insert, and the transaction is run again, now seeing
//! that event.

use bson::{Bson, doc};
use mongodb::options::ReturnDocument;

use super::append::{counted_at, takes_events};

use super::{
    MongoStore, OPEN, TRANSACTION_RETRY_BUDGET, TxnError, backoff, commit, date, event_from,
    event_to_document, is_duplicate_key, is_unreachable, map_err, optional_date, session_from,
    timers_of,
};
use crate::domain::{Event, NewEvents, Status};
use crate::repo::decide::{self, BatchPlan, Target};
use crate::repo::{BatchAppended, BatchItem, RepoError};
use mongodb::ClientSession;
use mongodb::error::TRANSIENT_TRANSACTION_ERROR;

impl MongoStore {
    /// The batch transaction, retried on transient failures (write conflicts with concurrent
    /// appends to the session) and on a duplicate `eventId` stored meanwhile, within the append
    /// retry budget.
    pub(super) async fn append_batch_in_transaction(
        &self,
        batch: &NewEvents,
    ) -> Result<BatchAppended, RepoError> {
        let _queued = self.append_lock(batch.session_id()).lock().await;
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut session = self.client.start_session().await.map_err(map_err)?;
            let outcome = self.try_append_batch(&mut session, batch).await;
            let again = started.elapsed() < TRANSACTION_RETRY_BUDGET;
            match outcome {
                Ok(None) if again => backoff(attempt).await,
                Ok(None) => {
                    return Err(RepoError::Unavailable(
                        "the session kept changing during the batch".into(),
                    ));
                }
                Err(TxnError::Driver(e))
                    if (is_duplicate_key(&e)
                        || (e.contains_label(TRANSIENT_TRANSACTION_ERROR)
                            && !is_unreachable(&e)))
                        && again =>
                {
                    backoff(attempt).await;
                }
                // Other instances kept storing the same ids: a retry will see them as replays.
                Err(TxnError::Driver(e)) if is_duplicate_key(&e) => {
                    return Err(RepoError::Unavailable(Box::new(e)));
                }
                Err(TxnError::Driver(e)) => return Err(map_err(e)),
                Err(TxnError::Repo(e)) => return Err(e),
                Ok(Some(outcome)) => return Ok(outcome),
            }
        }
    }

    /// One run of the transaction; `None` when it must run again.
    async fn try_append_batch(
        &self,
        session: &mut ClientSession,
        batch: &NewEvents,
    ) -> Result<Option<BatchAppended>, TxnError> {
        session
            .start_transaction()
            .write_concern(self.write_concern.clone())
            .await?;
        match self.decide_batch(session, batch).await {
            Ok(Decided::Commit(outcome)) => {
                commit(session).await?;
                Ok(Some(outcome))
            }
            Ok(Decided::Abort(outcome)) => {
                session.abort_transaction().await?;
                Ok(Some(outcome))
            }
            Ok(Decided::Again) => {
                let _ = session.abort_transaction().await;
                Ok(None)
            }
            Err(e) => {
                let _ = session.abort_transaction().await;
                Err(e)
            }
        }
    }

    async fn decide_batch(
        &self,
        session: &mut ClientSession,
        batch: &NewEvents,
    ) -> Result<Decided, TxnError> {
        let sid = batch.session_id().as_str();
        let stored_events = self.stored_events(session, batch).await?;
        if let Some(items) = self.counted_batch(session, batch, &stored_events).await? {
            let docs = decide::new_events(&items).map(event_to_document);
            self.events.insert_many(docs).session(&mut *session).await?;
            return Ok(Decided::Commit(BatchAppended::Stored(items)));
        }
        // Nothing new, a conflict, or a session that does not take the batch as it is: read it
        // and decide.
        let Some(stored) = self
            .sessions
            .find_one(doc! { "sessionId": sid })
            .session(&mut *session)
            .await?
        else {
            return Err(RepoError::NotFound.into());
        };
        let mut state = session_from(&stored)?;
        let received_at = batch.received_at();
        let count = stored
            .get_i64("eventCount")
            .ok()
            .and_then(|c| u64::try_from(c).ok())
            .ok_or_else(|| super::corrupt("eventCount"))?;
        let deadline = state.expired_at(received_at);
        let target = Target {
            status: state.status,
            expired: deadline.is_some(),
            event_count: count,
            expected_seq: batch.expected_seq(),
            redact: state.redact,
        };
        let items = match decide::plan_batch(batch, stored_events, target) {
            BatchPlan::Answer(answer) => return Ok(Decided::Abort(answer)),
            BatchPlan::Expire { new } => {
                let Some(deadline) = deadline else {
                    return Err(RepoError::Backend("a deadline that came went".into()).into());
                };
                let recorded = self
                    .record_timer_end(session, &stored, &mut state, deadline)
                    .await?;
                return Ok(if recorded {
                    Decided::Commit(decide::expired_batch(new, Ok(state)))
                } else {
                    Decided::Abort(decide::expired_batch(new, Err(Status::Failed)))
                });
            }
            BatchPlan::Insert { items } => items,
        };
        let (timers, since) = timers_of(&stored)?;
        let expires_at = crate::domain::deadline(timers, since, Some(received_at));
        let counted = self
            .sessions
            .update_one(
                doc! {
                    "sessionId": sid,
                    "status": { "$in": OPEN.as_slice() },
                    "eventCount": count as i64,
                },
                doc! {
                    "$inc": { "eventCount": decide::new_events(&items).count() as i64 },
                    "$set": {
                        "status": "active",
                        "lastEventAt": date(received_at),
                        "expiresAt": optional_date(expires_at.map(|d| d.at)),
                    },
                },
            )
            .session(&mut *session)
            .await?;
        if counted.matched_count != 1 {
            // Changed since it was read in this transaction (on a server that does not report
            // that as a write conflict): run the transaction again.
            return Ok(Decided::Again);
        }
        let docs = decide::new_events(&items).map(event_to_document);
        self.events.insert_many(docs).session(&mut *session).await?;
        Ok(Decided::Commit(BatchAppended::Stored(items)))
    }
}

impl MongoStore {
    /// The stored events the batch names, in the batch's order, read in the transaction.
    async fn stored_events(
        &self,
        session: &mut ClientSession,
        batch: &NewEvents,
    ) -> Result<Vec<Option<Event>>, TxnError> {
        let ids: Vec<&str> = batch.events().iter().map(|e| e.event_id.as_str()).collect();
        let mut cursor = self
            .events
            .find(doc! { "sessionId": batch.session_id().as_str(), "eventId": { "$in": ids } })
            .session(&mut *session)
            .await?;
        let mut found: Vec<Event> = Vec::new();
        while let Some(doc) = cursor.next(&mut *session).await {
            found.push(event_from(&doc?)?);
        }
        Ok(batch
            .events()
            .iter()
            .map(|new| found.iter().find(|e| e.event_id == new.event_id).cloned())
            .collect())
    }

    /// The usual batch in one write: when it has new events and no conflict, one update counts
    /// them on the session if the session takes them (open, before its deadline, at the expected
    /// seq, under the same `redact`: what `decide` would check), and gives back the session as it
    /// was, from which the new events get their seqs. Four round trips in all, with the read of the
    /// stored events, the insert and the commit. `None` when the session did not take them (it
    /// was not written) or there is nothing to count.
    async fn counted_batch(
        &self,
        session: &mut ClientSession,
        batch: &NewEvents,
        stored_events: &[Option<Event>],
    ) -> Result<Option<Vec<BatchItem>>, TxnError> {
        let new = stored_events.iter().filter(|s| s.is_none()).count();
        let conflict = batch
            .events()
            .iter()
            .zip(stored_events)
            .any(|(new, stored)| stored.as_ref().is_some_and(|s| !new.matches(s)));
        if new == 0 || conflict {
            return Ok(None);
        }
        let received_at = date(batch.received_at());
        let filter = takes_events(
            batch.session_id(),
            received_at,
            batch.redact(),
            batch.expected_seq(),
        );
        let Some(before) = self
            .sessions
            .find_one_and_update(filter, counted_at(Bson::DateTime(received_at), new as i64))
            .return_document(ReturnDocument::Before)
            .session(&mut *session)
            .await?
        else {
            return Ok(None);
        };
        let state = session_from(&before)?;
        let target = Target {
            status: state.status,
            expired: false,
            event_count: state.event_count,
            expected_seq: batch.expected_seq(),
            redact: state.redact,
        };
        match decide::plan_batch(batch, stored_events.to_vec(), target) {
            BatchPlan::Insert { items } => Ok(Some(items)),
            _ => Err(RepoError::Backend(
                "a session that took a batch's events refused them when decided".into(),
            )
            .into()),
        }
    }
}

/// What the transaction found: commit its writes, abort (nothing was written), or run again.
enum Decided {
    Commit(BatchAppended),
    Abort(BatchAppended),
    Again,
}
