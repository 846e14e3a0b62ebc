//! Personal data removed from event payloads before they are stored: the service's `REDACT`, or
//! the kinds a call chose at create (its `redact`).
//!
//! Every payload is redacted here, before a repository sees it, under its session's `redact`,
//! which the service does not read first: it takes it from [`Hints`], or else assumes the call
//! chose nothing (the usual case), and tells the store which it assumed ([`NewEvent::redact`]).
//! The store checks that inside the append's own transaction and, if the session's is another,
//! refuses with it (`RedactionChanged`, nothing stored); the payload is then redacted again under
//! that one and the append retried. A wrong guess costs one more trip to the store, never an
//! event redacted under the wrong rules, on any number of instances.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{ServiceError, SessionService};
use crate::domain::{NewEvent, NewEvents, PiiKind, Redact, SessionId, redact_payload};
use crate::repo::{Appended, BatchAppended, RepoError};

/// How many times an append is tried under a session's `redact` the store named: it changes only
/// when the session is erased and its id created again, so a second refusal is already rare.
const ATTEMPTS: usize = 3;

/// What was replaced in one payload, per kind (indexed like [`PiiKind::ALL`]).
pub type Counts = [u32; 4];

/// The service's redaction: its default kinds and what it has learnt of sessions' own.
pub struct Redaction {
    default: Redact,
    hints: Hints,
}

/// The `redact` of sessions that chose their own, as the store last said, so that appends to them
/// are redacted right the first time. Only a guess (see the module's text): a stale entry costs
/// one refused append.
///
/// Forgotten: an entry when the store names another `redact` for its session (replaced) or when
/// this instance erases the session; all of it past [`Hints::MAX`] entries, when it starts over.
#[derive(Default)]
struct Hints(Mutex<HashMap<SessionId, Redact>>);

impl Hints {
    const MAX: usize = 10_000;

    fn get(&self, id: &SessionId) -> Option<Redact> {
        self.0.lock().ok()?.get(id).copied()
    }

    fn learn(&self, id: &SessionId, redact: Option<Redact>) {
        let Ok(mut hints) = self.0.lock() else { return };
        match redact {
            Some(redact) => {
                if hints.len() >= Self::MAX {
                    hints.clear();
                }
                hints.insert(id.clone(), redact);
            }
            None => {
                hints.remove(id);
            }
        }
    }
}

impl Redaction {
    /// Redacting `default` from the payloads of sessions that chose nothing.
    pub fn new(default: Redact) -> Self {
        Self {
            default,
            hints: Hints::default(),
        }
    }

    /// Forgets what it knew of the session (erased by this instance).
    pub fn forget(&self, id: &SessionId) {
        self.hints.learn(id, None);
    }

    /// `raw` with its payload redacted for a session whose `redact` is `session`, and what was
    /// replaced; refused if the redacted payload breaks the payload rules (it can grow).
    fn redact(
        &self,
        raw: &NewEvent,
        session: Option<Redact>,
    ) -> Result<(NewEvent, Counts), crate::domain::Invalid> {
        let redacted = redact_payload(&raw.payload, session.unwrap_or(self.default))?;
        let new = NewEvent {
            payload: redacted.payload,
            redact: session,
            ..raw.clone()
        };
        Ok((new, redacted.counts))
    }
}

/// Counts what was replaced in events that were stored (`redactions_total{kind}`).
pub fn count(counts: &Counts) {
    for (kind, &n) in PiiKind::ALL.iter().zip(counts) {
        if n > 0 {
            metrics::counter!("redactions_total", "kind" => kind.as_str()).increment(u64::from(n));
        }
    }
}

/// The refusal when the store kept naming another `redact` (see [`ATTEMPTS`]).
fn kept_changing() -> ServiceError {
    ServiceError::Storage(RepoError::Unavailable(
        "the session's redaction changed while the event was appended".into(),
    ))
}

impl SessionService {
    /// Appends `raw` with its payload redacted under the session's `redact`: the event as it was
    /// sent to the store (redacted), the store's answer, and what was replaced.
    pub(super) async fn append_redacted(
        &self,
        raw: &NewEvent,
    ) -> Result<(NewEvent, Appended, Counts), ServiceError> {
        let id = &raw.session_id;
        let mut session = self.redaction.hints.get(id);
        for _ in 0..ATTEMPTS {
            let (new, counts) = self
                .redaction
                .redact(raw, session)
                .map_err(|invalid| ServiceError::InvalidPayload { at: None, invalid })?;
            match self.repos.events.append(new.clone()).await {
                Ok(Appended::RedactionChanged(actual)) => {
                    self.redaction.hints.learn(id, actual);
                    session = actual;
                }
                Ok(appended) => return Ok((new, appended, counts)),
                Err(e) => return Err(super::session_error(id)(e)),
            }
        }
        Err(kept_changing())
    }

    /// Appends the batch `raw` with every payload redacted under the session's `redact`: the
    /// store's answer and what was replaced in each of `raw`'s events, in its order.
    pub(super) async fn append_batch_redacted(
        &self,
        raw: &NewEvents,
    ) -> Result<(BatchAppended, Vec<Counts>), ServiceError> {
        let id = raw.session_id();
        let mut session = self.redaction.hints.get(id);
        for _ in 0..ATTEMPTS {
            let mut events = Vec::with_capacity(raw.events().len());
            let mut counts = Vec::with_capacity(raw.events().len());
            for (at, event) in raw.events().iter().enumerate() {
                let (new, replaced) = self.redaction.redact(event, session).map_err(|invalid| {
                    ServiceError::InvalidPayload {
                        at: Some(at),
                        invalid,
                    }
                })?;
                events.push(new);
                counts.push(replaced);
            }
            // The same ids, session, instant, expected seq and redaction as `raw`.
            let batch = NewEvents::new(events).map_err(ServiceError::InvalidBatch)?;
            match self.repos.events.append_batch(batch).await {
                Ok(BatchAppended::RedactionChanged(actual)) => {
                    self.redaction.hints.learn(id, actual);
                    session = actual;
                }
                Ok(appended) => return Ok((appended, counts)),
                Err(e) => return Err(super::session_error(id)(e)),
            }
        }
        Err(kept_changing())
    }
}
