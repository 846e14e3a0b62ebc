//! Writes: creating and ending sessions, appending events (one or a batch), erasing. Each
//! answers whether it stored something new, counts what happened and tells live streams.

use super::{ServiceError, SessionService, count_end, redaction, session_error};
use crate::domain::{
    EndReason, Event, EventId, NewEvent, NewEvents, NewSession, Session, SessionId, TerminalStatus,
    Timestamp,
};
use crate::repo::{
    Appended, BatchAppended, BatchItem, EndRequest, MetadataPatch, Patched, RepoError,
};

/// Whether a write stored something new or found it already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Existing,
}

impl SessionService {
    /// Creates the session, or returns the stored one unchanged if its id is taken.
    pub async fn create(&self, new: NewSession) -> Result<(Session, Written), ServiceError> {
        let id = new.session_id.clone();
        let outcome = self
            .repos
            .sessions
            .create_or_get(new)
            .await
            .map_err(|e| match e {
                RepoError::NotFound => ServiceError::contract_broken("create returned not found"),
                RepoError::Deleted => ServiceError::SessionIdDeleted(id),
                other => ServiceError::Storage(other),
            })?;
        let written = if outcome.created {
            metrics::counter!("sessions_created_total").increment(1);
            Written::Created
        } else {
            Written::Existing
        };
        Ok((outcome.session.as_of(Timestamp::now()), written))
    }

    /// Adds an event. A retry with the same content gets the stored event; the same `eventId` with
    /// other content is a conflict, and so is a new event for a session that has ended (also by
    /// its timer).
    pub async fn add_event(&self, raw: NewEvent) -> Result<(Event, Written), ServiceError> {
        // `new` is `raw` as stored: its payload redacted under the session's rules.
        let (new, appended, redacted) = self.append_redacted(&raw).await?;
        let (refused, reason) = match appended {
            Appended::New(event) => {
                self.metrics.stored(1);
                redaction::count(&redacted);
                self.hub.publish(&event);
                return Ok((event, Written::Created));
            }
            Appended::Existing(event) if new.matches(&event) => {
                self.metrics.replayed(1);
                return Ok((event, Written::Existing));
            }
            Appended::Existing(_) => (
                ServiceError::EventIdConflict {
                    session_id: new.session_id,
                    event_id: new.event_id,
                },
                "event_id_conflict",
            ),
            Appended::Expired(session) => {
                count_end(&session);
                self.hub.poke(&session.session_id);
                (
                    ServiceError::SessionEnded {
                        session_id: new.session_id,
                        status: session.status,
                    },
                    "session_ended",
                )
            }
            Appended::SessionEnded(status) => (
                ServiceError::SessionEnded {
                    session_id: new.session_id,
                    status,
                },
                "session_ended",
            ),
            Appended::SeqMismatch(current) => (
                ServiceError::SeqMismatch {
                    session_id: new.session_id,
                    expected: new.expected_seq.unwrap_or_default(),
                    current,
                },
                "seq_mismatch",
            ),
            Appended::RedactionChanged(_) => {
                return Err(ServiceError::contract_broken(
                    "a redaction refusal outlived its retries",
                ));
            }
        };
        metrics::counter!("event_conflicts_total", "reason" => reason).increment(1);
        Err(refused)
    }

    /// Adds a batch of events to one session atomically: every new one is stored, with
    /// consecutive seqs in request order, or none is. Identical copies of one event in the batch
    /// are stored once. The answer holds the stored event for each of `events`, in order, and is
    /// `Created` if anything was stored, `Existing` if every event was a replay. Refused as a
    /// whole when any `eventId` is stored with other content, or when any event is new and the
    /// session has ended (also by its timer, which this then records).
    pub async fn add_events(
        &self,
        events: Vec<NewEvent>,
    ) -> Result<(Vec<Event>, Written), ServiceError> {
        let (batch, positions) =
            NewEvents::folding_copies(events).map_err(ServiceError::InvalidBatch)?;
        let session_id = batch.session_id().clone();
        let expected = batch.expected_seq().unwrap_or_default();
        let ids: Vec<EventId> = batch.events().iter().map(|e| e.event_id.clone()).collect();
        metrics::histogram!("event_batch_size").record(positions.len() as f64);
        // The request positions of the batch's events at `at`.
        let requested = |at: &[usize]| -> Vec<usize> {
            (0..positions.len())
                .filter(|&i| at.contains(&positions[i]))
                .collect()
        };
        let (appended, redacted) =
            self.append_batch_redacted(&batch)
                .await
                .map_err(|e| match e {
                    // A position in the batch, to the first in the request.
                    ServiceError::InvalidPayload {
                        at: Some(at),
                        invalid,
                    } => ServiceError::InvalidPayload {
                        at: positions.iter().position(|&p| p == at),
                        invalid,
                    },
                    other => other,
                })?;
        let (refused, reason) = match appended {
            BatchAppended::Stored(items) => {
                let stored = items
                    .iter()
                    .filter(|i| matches!(i, BatchItem::New(_)))
                    .count() as u64;
                self.metrics.stored(stored);
                self.metrics.replayed(items.len() as u64 - stored);
                for (item, counts) in items.iter().zip(&redacted) {
                    if matches!(item, BatchItem::New(_)) {
                        redaction::count(counts);
                    }
                }
                let (outcome, written) = if stored > 0 {
                    ("stored", Written::Created)
                } else {
                    ("replayed", Written::Existing)
                };
                metrics::counter!("event_batches_total", "outcome" => outcome).increment(1);
                // The new events, in seq order, to the session's live streams.
                for item in &items {
                    if let BatchItem::New(event) = item {
                        self.hub.publish(event);
                    }
                }
                let events = positions
                    .iter()
                    .map(|&at| items.get(at).map(|i| i.event().clone()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| ServiceError::contract_broken("a batch answer lacks events"))?;
                return Ok((events, written));
            }
            BatchAppended::Conflicts(at) => (
                ServiceError::BatchConflicts {
                    items: requested(&at)
                        .into_iter()
                        .map(|i| (i, ids[positions[i]].clone()))
                        .collect(),
                    session_id,
                },
                "event_id_conflict",
            ),
            BatchAppended::SessionEnded { status, new } => (
                ServiceError::BatchSessionEnded {
                    session_id,
                    status,
                    items: requested(&new),
                },
                "session_ended",
            ),
            BatchAppended::SeqMismatch { current } => (
                ServiceError::SeqMismatch {
                    session_id,
                    expected,
                    current,
                },
                "seq_mismatch",
            ),
            BatchAppended::RedactionChanged(_) => {
                return Err(ServiceError::contract_broken(
                    "a redaction refusal outlived its retries",
                ));
            }
            BatchAppended::Expired { session, new } => {
                count_end(&session);
                self.hub.poke(&session.session_id);
                (
                    ServiceError::BatchSessionEnded {
                        session_id,
                        status: session.status,
                        items: requested(&new),
                    },
                    "session_ended",
                )
            }
        };
        metrics::counter!("event_conflicts_total", "reason" => reason).increment(1);
        metrics::counter!("event_batches_total", "outcome" => "refused").increment(1);
        Err(refused)
    }

    /// Ends the session with `status` (and `reason`). Repeating it returns the same session;
    /// asking for the other terminal status than the stored one is a conflict. A session whose
    /// timer has run out has ended already: `failed`, with the timer's reason.
    pub async fn end(
        &self,
        id: &SessionId,
        status: TerminalStatus,
        reason: Option<EndReason>,
    ) -> Result<Session, ServiceError> {
        let request = EndRequest {
            status,
            at: Timestamp::now(),
            reason,
        };
        let outcome = self
            .repos
            .sessions
            .end(id, request)
            .await
            .map_err(session_error(id))?;
        let session = outcome.session;
        if outcome.ended_now {
            count_end(&session);
            self.hub.poke(id);
        }
        if session.status != status.status() {
            return Err(ServiceError::SessionAlreadyEnded {
                session_id: id.clone(),
                status: session.status,
            });
        }
        Ok(session)
    }

    /// Applies a JSON Merge Patch to the session's metadata (open or ended), if it is at one of
    /// `patch.if_match`'s versions when given; the session as answered now.
    pub async fn patch_metadata(
        &self,
        id: &SessionId,
        patch: MetadataPatch,
    ) -> Result<Session, ServiceError> {
        let patched = self
            .repos
            .sessions
            .patch_metadata(id, patch)
            .await
            .map_err(session_error(id))?;
        match patched {
            // The change feed's `session.updated` goes here when it lands (a metadata change
            // touches no event, so live transcript streams have nothing to hear of it).
            Patched::Done(session) => Ok(session),
            Patched::PreconditionFailed(session) => Err(ServiceError::VersionMismatch {
                session_id: id.clone(),
                current: session.version().to_string(),
            }),
            Patched::Invalid(invalid) => Err(ServiceError::InvalidMetadata(invalid)),
        }
    }

    /// Erases the session and its events. Repeating it is fine; an unknown id is not found.
    pub async fn delete(&self, id: &SessionId) -> Result<(), ServiceError> {
        let outcome = self
            .repos
            .sessions
            .delete(id, Timestamp::now())
            .await
            .map_err(|e| match e {
                RepoError::NotFound => ServiceError::SessionNotFound(id.clone()),
                other => ServiceError::Storage(other),
            })?;
        self.redaction.forget(id);
        if outcome.deleted_now {
            metrics::counter!("sessions_erased_total", "cause" => "request").increment(1);
            self.hub.poke(id);
        }
        Ok(())
    }
}
