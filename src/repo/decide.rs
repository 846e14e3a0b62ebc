//! What an append does, decided from what the store holds: the rules both backends apply, written
//! once. Each backend reads the inputs and carries out the decision inside its own transaction;
//! none of this does I/O.

use super::{Appended, BatchAppended, BatchItem, MetadataPatch, Patched};
use crate::domain::{Event, JsonObject, NewEvent, NewEvents, Redact, Session, Status, merge_patch};

/// What a session is, as far as an append to it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub status: Status,
    /// Its deadline came at or before the append arrived.
    pub expired: bool,
    /// Events stored so far: the last seq given out.
    pub event_count: u64,
    /// The last seq the writer expects (`Expected-Seq`), if it named one.
    pub expected_seq: Option<u64>,
    /// The session's `redact` (see [`crate::domain::Session::redact`]).
    pub redact: Option<Redact>,
}

/// Why a session does not take a new event (one whose id it has not stored), in the order the
/// rules are checked: ended first, then the deadline, then the writer's expected seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It has ended with this status.
    Ended(Status),
    /// Its deadline came: the caller records the timer's end (see [`expired_batch`]).
    Expired,
    /// It is open, but its last seq is this one, not the one the writer expected.
    SeqMismatch { current: u64 },
}

impl Target {
    /// The session's `redact`, if the append's payloads were redacted under another one
    /// ([`NewEvent::redact`]): asked before anything else, for a replay too, since a stored
    /// payload is compared with the request's in redacted form.
    pub fn redaction_changed(&self, redacted_under: Option<Redact>) -> Option<Option<Redact>> {
        (self.redact != redacted_under).then_some(self.redact)
    }

    /// Whether a new event is refused, and why; `None`: it is stored with seq `event_count + 1`.
    /// A replay (the id already stored) is answered as stored before this is asked.
    pub fn refusal(&self) -> Option<Refusal> {
        if self.status.is_terminal() {
            Some(Refusal::Ended(self.status))
        } else if self.expired {
            Some(Refusal::Expired)
        } else if self.expected_seq.is_some_and(|seq| seq != self.event_count) {
            Some(Refusal::SeqMismatch {
                current: self.event_count,
            })
        } else {
            None
        }
    }
}

/// What a batch does.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchPlan {
    /// Nothing is written: this is the answer (conflicts, all replays, an ended session).
    Answer(BatchAppended),
    /// The deadline came with these new events: record the timer's end, then answer with
    /// [`expired_batch`].
    Expire { new: Vec<usize> },
    /// Store the [`BatchItem::New`] items (consecutive seqs after `event_count`, in batch order,
    /// see [`new_events`]) and count them; then answer `Stored(items)`.
    Insert { items: Vec<BatchItem> },
}

/// Decides a batch from the events the store holds under the batch's ids (`stored[i]` for
/// `batch.events()[i]`): the redaction, then conflicts, then all replays, then an ended session,
/// then the deadline, then the expected seq, then insert.
pub fn plan_batch(batch: &NewEvents, stored: Vec<Option<Event>>, target: Target) -> BatchPlan {
    if let Some(redact) = target.redaction_changed(batch.redact()) {
        return BatchPlan::Answer(BatchAppended::RedactionChanged(redact));
    }
    let events = batch.events();
    let conflicts: Vec<usize> = events
        .iter()
        .zip(&stored)
        .enumerate()
        .filter(|(_, (new, stored))| stored.as_ref().is_some_and(|s| !new.matches(s)))
        .map(|(i, _)| i)
        .collect();
    if !conflicts.is_empty() {
        return BatchPlan::Answer(BatchAppended::Conflicts(conflicts));
    }
    let new: Vec<usize> = (0..stored.len()).filter(|&i| stored[i].is_none()).collect();
    if new.is_empty() {
        let replays = stored.into_iter().flatten().map(BatchItem::Replay);
        return BatchPlan::Answer(BatchAppended::Stored(replays.collect()));
    }
    match target.refusal() {
        Some(Refusal::Ended(status)) => {
            return BatchPlan::Answer(BatchAppended::SessionEnded { status, new });
        }
        Some(Refusal::Expired) => return BatchPlan::Expire { new },
        Some(Refusal::SeqMismatch { current }) => {
            return BatchPlan::Answer(BatchAppended::SeqMismatch { current });
        }
        None => {}
    }
    let mut seq = target.event_count;
    let items = events
        .iter()
        .zip(stored)
        .map(|(new, stored)| match stored {
            Some(existing) => BatchItem::Replay(existing),
            None => {
                seq += 1;
                BatchItem::New(new.stored(seq))
            }
        })
        .collect();
    BatchPlan::Insert { items }
}

/// The answer to a single event that came after the deadline: `Ok` with the session as this call
/// ended it by its timer, or `Err` with the status another writer ended it with first.
pub fn expired_append(ended: Result<Session, Status>) -> Appended {
    match ended {
        Ok(session) => Appended::Expired(session),
        Err(status) => Appended::SessionEnded(status),
    }
}

/// The same for a batch with these new events.
pub fn expired_batch(new: Vec<usize>, ended: Result<Session, Status>) -> BatchAppended {
    match ended {
        Ok(session) => BatchAppended::Expired {
            session: Box::new(session),
            new,
        },
        Err(status) => BatchAppended::SessionEnded { status, new },
    }
}

/// The new events of a planned batch, for the backend to store.
pub fn new_events(items: &[BatchItem]) -> impl Iterator<Item = &Event> {
    items.iter().filter_map(|item| match item {
        BatchItem::New(event) => Some(event),
        BatchItem::Replay(_) => None,
    })
}

/// The event a single append stores: the next seq after `target.event_count`.
pub fn next_event(new: &NewEvent, target: &Target) -> Event {
    new.stored(target.event_count + 1)
}

/// What a metadata patch does to `stored` (the session as stored).
#[derive(Debug, Clone, PartialEq)]
pub enum PatchPlan {
    /// Nothing is written: this is the answer.
    Answer(Patched),
    /// Store this metadata and count the change; the answer is [`patched`].
    Write(JsonObject),
}

/// Decides a patch: the version first (as the session is answered at `patch.at`), then the
/// merge, then whether it changes anything.
pub fn plan_patch(stored: &Session, patch: &MetadataPatch) -> PatchPlan {
    let current = stored.clone().as_of(patch.at);
    if let Some(tags) = &patch.if_match {
        let version = current.version().to_string();
        if !tags.iter().any(|t| t == "*" || *t == version) {
            return PatchPlan::Answer(Patched::PreconditionFailed(current));
        }
    }
    match merge_patch(&current.metadata, &patch.patch) {
        Err(invalid) => PatchPlan::Answer(Patched::Invalid(invalid)),
        Ok(metadata) if metadata == current.metadata => PatchPlan::Answer(Patched::Done(current)),
        Ok(metadata) => PatchPlan::Write(metadata),
    }
}

/// The answer after [`PatchPlan::Write`] stored `metadata` over `stored`.
pub fn patched(stored: Session, metadata: JsonObject, at: crate::domain::Timestamp) -> Patched {
    Patched::Done(
        Session {
            metadata,
            revision: stored.revision + 1,
            ..stored
        }
        .as_of(at),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventId, EventType, JsonObject, SessionId, Timestamp};

    fn new_event(id: &str, n: i64) -> NewEvent {
        NewEvent {
            session_id: SessionId::parse("s").unwrap(),
            event_id: EventId::parse(id).unwrap(),
            event_type: EventType::System,
            payload: JsonObject::parse(serde_json::json!({ "n": n })).unwrap(),
            client_timestamp: None,
            received_at: Timestamp::from_millis(1_000).unwrap(),
            expected_seq: None,
            redact: None,
        }
    }

    fn open(event_count: u64) -> Target {
        Target {
            status: Status::Active,
            expired: false,
            event_count,
            expected_seq: None,
            redact: None,
        }
    }

    #[test]
    fn a_batch_takes_the_seqs_after_the_count_and_replays_keep_theirs() {
        let batch = NewEvents::new(vec![
            new_event("a", 1),
            new_event("b", 2),
            new_event("c", 3),
        ])
        .unwrap();
        let replay = new_event("b", 2).stored(4);
        let plan = plan_batch(&batch, vec![None, Some(replay.clone()), None], open(7));
        let BatchPlan::Insert { items } = plan else {
            panic!("expected an insert, got {plan:?}");
        };
        let seqs: Vec<(u64, bool)> = items
            .iter()
            .map(|i| (i.event().seq, matches!(i, BatchItem::New(_))))
            .collect();
        assert_eq!(seqs, [(8, true), (4, false), (9, true)]);
        assert_eq!(new_events(&items).count(), 2);
    }

    #[test]
    fn conflicts_come_before_everything_else() {
        let batch = NewEvents::new(vec![new_event("a", 1), new_event("b", 2)]).unwrap();
        let other = new_event("b", 99).stored(1);
        let ended = Target {
            status: Status::Completed,
            expired: true,
            event_count: 1,
            expected_seq: None,
            redact: None,
        };
        assert_eq!(
            plan_batch(&batch, vec![None, Some(other)], ended),
            BatchPlan::Answer(BatchAppended::Conflicts(vec![1]))
        );
    }

    #[test]
    fn all_replays_are_answered_even_when_the_session_ended() {
        let batch = NewEvents::new(vec![new_event("a", 1)]).unwrap();
        let stored = new_event("a", 1).stored(1);
        let ended = Target {
            status: Status::Failed,
            expired: false,
            event_count: 1,
            expected_seq: Some(0),
            redact: None,
        };
        assert_eq!(
            plan_batch(&batch, vec![Some(stored.clone())], ended),
            BatchPlan::Answer(BatchAppended::Stored(vec![BatchItem::Replay(stored)]))
        );
    }

    #[test]
    fn an_ended_session_refuses_before_the_deadline_is_looked_at() {
        let batch = NewEvents::new(vec![new_event("a", 1), new_event("b", 2)]).unwrap();
        let ended = Target {
            status: Status::Completed,
            expired: true,
            event_count: 0,
            expected_seq: Some(5),
            redact: None,
        };
        assert_eq!(
            plan_batch(&batch, vec![None, None], ended),
            BatchPlan::Answer(BatchAppended::SessionEnded {
                status: Status::Completed,
                new: vec![0, 1]
            })
        );
        let expired = Target {
            expired: true,
            ..open(0)
        };
        assert_eq!(
            plan_batch(&batch, vec![None, None], expired),
            BatchPlan::Expire { new: vec![0, 1] }
        );
        assert_eq!(expired.refusal(), Some(Refusal::Expired));
        assert_eq!(ended.refusal(), Some(Refusal::Ended(Status::Completed)));
        assert_eq!(open(3).refusal(), None);
        assert_eq!(next_event(&new_event("x", 1), &open(3)).seq, 4);
    }

    #[test]
    fn an_expected_seq_is_checked_after_replays_the_end_and_the_deadline() {
        let expecting = |expected, count| Target {
            expected_seq: Some(expected),
            ..open(count)
        };
        assert_eq!(expecting(3, 3).refusal(), None);
        assert_eq!(expecting(0, 0).refusal(), None);
        assert_eq!(
            expecting(2, 3).refusal(),
            Some(Refusal::SeqMismatch { current: 3 })
        );
        let batch = NewEvents::new(vec![new_event("a", 1), new_event("b", 2)]).unwrap();
        assert_eq!(
            plan_batch(&batch, vec![None, None], expecting(4, 3)),
            BatchPlan::Answer(BatchAppended::SeqMismatch { current: 3 })
        );
        // A replay of the whole batch is answered as stored, whatever the writer expected.
        let stored = vec![
            Some(new_event("a", 1).stored(1)),
            Some(new_event("b", 2).stored(2)),
        ];
        assert!(matches!(
            plan_batch(&batch, stored, expecting(0, 3)),
            BatchPlan::Answer(BatchAppended::Stored(_))
        ));
        // One new event among replays is held to the expectation.
        let mixed = vec![Some(new_event("a", 1).stored(1)), None];
        assert_eq!(
            plan_batch(&batch, mixed, expecting(0, 3)),
            BatchPlan::Answer(BatchAppended::SeqMismatch { current: 3 })
        );
        let ended = Target {
            status: Status::Completed,
            ..expecting(0, 3)
        };
        assert_eq!(ended.refusal(), Some(Refusal::Ended(Status::Completed)));
    }

    #[test]
    fn a_batch_redacted_under_other_rules_is_refused_before_anything_else() {
        let card = Some(Redact::from_kinds([crate::domain::PiiKind::Card]));
        let batch = NewEvents::new(vec![new_event("a", 1)]).unwrap();
        let other = new_event("a", 99).stored(1);
        let session = Target {
            redact: card,
            ..open(1)
        };
        // Even a conflict is not decided: the payloads compared would be the wrong ones.
        assert_eq!(
            plan_batch(&batch, vec![Some(other)], session),
            BatchPlan::Answer(BatchAppended::RedactionChanged(card))
        );
        assert_eq!(session.redaction_changed(None), Some(card));
        assert_eq!(session.redaction_changed(card), None);
        assert_eq!(open(0).redaction_changed(Some(Redact::NONE)), Some(None));
    }
}
