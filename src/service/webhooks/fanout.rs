//! The fan-out: the change feed, read from where the store says the last batch ended, made into
//! one message per change for the endpoints that want it. The batch and the new position are
//! one compare-and-set write, so with several instances each batch is queued once; a crash
//! before it leaves the position where it was, and the batch is made again.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::Webhooks;
use crate::domain::SessionId;
use crate::domain::Timestamp;
use crate::domain::webhook::{filter_matches, message_id};
use crate::repo::RepoError;
use crate::repo::feed::{ChangeData, ChangeKind, ChangeKinds, FeedChange, FeedError, FeedStart};
use crate::repo::webhooks::{Endpoint, FanoutState, NewMessage};

/// Changes made into messages per batch, at most.
const BATCH: u32 = 500;
/// How long one read waits for a change.
const WAIT: Duration = Duration::from_secs(1);
/// How long the fan-out rests after a busy pass (one that found at least [`BUSY`] changes
/// waiting, but less than a whole batch). Changes made meanwhile are taken together by the next
/// pass, so under load one pass (a read of the feed, of the endpoints, and one write) serves
/// hundreds of changes rather than the few each commit makes; a message then waits at most this
/// much longer to be queued. After a quiet pass it waits for the next change, and after a full
/// batch it goes on at once.
pub(super) const PACE: Duration = Duration::from_millis(20);
/// How many changes make a pass busy.
const BUSY: usize = 16;

/// What one pass did.
pub(super) enum Pass {
    /// Queued messages (perhaps none) and moved on; `busy`: see [`PACE`].
    Moved { busy: bool },
    /// Nothing new.
    Idle,
    /// Another instance moved first: read again from where it got to.
    Raced,
    /// There is no endpoint: nothing was read.
    NoEndpoints,
}

impl Webhooks {
    /// One batch: read, match, queue, move on.
    pub(super) async fn fan_out(&self) -> Result<Pass, RepoError> {
        let repos = &self.0.repos;
        let state = repos.webhooks.fanout_state().await?;
        if repos.webhooks.endpoints().await?.is_empty() {
            return Ok(Pass::NoEndpoints);
        }
        // Before the first pass on this store: from the oldest change kept (no endpoint is older
        // than the changes it would skip, so nothing is sent twice, and nothing is missed).
        let start = match &state.position {
            Some(position) => FeedStart::After(position.clone()),
            None => FeedStart::Oldest,
        };
        let retained_since =
            Timestamp::now().minus_seconds(self.0.settings.retention_seconds.max(1));
        let read = repos
            .feed
            .read(start, BATCH, ChangeKinds::all(), WAIT, retained_since)
            .await;
        let read = match read {
            Ok(read) => read,
            Err(FeedError::Expired { earliest }) => {
                tracing::error!(
                    "webhook fan-out fell behind the change feed's retention; changes in between were not sent"
                );
                metrics::counter!("webhook_fanout_gaps_total").increment(1);
                let moved = repos
                    .webhooks
                    .enqueue(&state, Some(earliest), vec![])
                    .await?;
                return Ok(if moved {
                    Pass::Moved { busy: false }
                } else {
                    Pass::Raced
                });
            }
            Err(FeedError::InvalidPosition) => {
                return Err(RepoError::Backend(
                    "the webhook fan-out position is not one of this store's".into(),
                ));
            }
            Err(FeedError::Repo(e)) => return Err(e),
        };
        if read.changes.is_empty() && state.position.as_ref() == Some(&read.next) {
            return Ok(Pass::Idle);
        }
        for change in &read.changes {
            if change.kind == ChangeKind::SessionDeleted {
                self.erase(&change.session_id).await?;
            }
        }
        // Read after the changes: an endpoint whose create answered before a change was made is
        // seen here (an earlier read, before the wait for changes, might miss it). Disabled ones
        // too: a change made before the disable is still theirs ([`Endpoint::receives`]).
        let endpoints = repos.webhooks.endpoints().await?;
        let messages = self.messages(&state, &endpoints, &read.changes).await?;
        let count = messages.len();
        let busy = (BUSY..BATCH as usize).contains(&read.changes.len());
        if !repos
            .webhooks
            .enqueue(&state, Some(read.next), messages)
            .await?
        {
            return Ok(Pass::Raced);
        }
        if count > 0 {
            metrics::counter!("webhook_messages_queued_total").increment(count as u64);
            self.0.queued.notify_one();
        }
        Ok(Pass::Moved { busy })
    }

    /// With no endpoint nothing is read, and the position is moved to the newest change
    /// now and then (so that an endpoint made later starts near it, not at the oldest change
    /// retained). The newest change is read before the endpoints: an endpoint made in between
    /// receives only changes made after it anyway.
    pub(super) async fn skip_to_head(&self) -> Result<(), RepoError> {
        let repos = &self.0.repos;
        let state = repos.webhooks.fanout_state().await?;
        let head = repos.feed.head().await?;
        if repos.webhooks.endpoints().await?.is_empty() {
            repos.webhooks.enqueue(&state, Some(head), vec![]).await?;
        }
        Ok(())
    }

    /// An erased session's messages keep nothing of it but its id, as the feed's changes do:
    /// bodies queued before its erasure are rewritten so (the feed gives this pass, and every
    /// later one, its changes already without data).
    async fn erase(&self, session_id: &SessionId) -> Result<(), RepoError> {
        let repo = &self.0.repos.webhooks;
        let bodies: Vec<(u64, String)> = repo
            .messages_of(session_id.as_str())
            .await?
            .into_iter()
            .filter_map(|m| {
                let kind = ChangeKind::parse(&m.kind)?;
                let bare = FeedChange {
                    position: String::new(),
                    kind,
                    at: m.created_at,
                    session_id: session_id.clone(),
                    data: ChangeData::None,
                };
                Some((m.order, (self.0.render)(&bare)))
            })
            .collect();
        if !bodies.is_empty() {
            repo.replace_bodies(bodies).await?;
        }
        Ok(())
    }

    /// The messages of `changes`, in their order, each for the endpoints it matches.
    async fn messages(
        &self,
        state: &FanoutState,
        endpoints: &[Endpoint],
        changes: &[FeedChange],
    ) -> Result<Vec<NewMessage>, RepoError> {
        let mut metadata: HashMap<String, Option<Map<String, Value>>> = HashMap::new();
        let mut messages = Vec::new();
        for change in changes {
            let kind = change.kind.as_str();
            let wanting: Vec<&Endpoint> = endpoints
                .iter()
                .filter(|e| e.receives(kind, change.at))
                .collect();
            if wanting.is_empty() {
                continue;
            }
            let mut receivers = Vec::new();
            for endpoint in wanting {
                if self.matches(endpoint, change, &mut metadata).await? {
                    receivers.push(endpoint.id.clone());
                }
            }
            if receivers.is_empty() {
                continue;
            }
            messages.push(NewMessage {
                id: message_id(&change.position),
                order: state.next_order + messages.len() as u64,
                kind: kind.to_owned(),
                session_id: Some(change.session_id.as_str().to_owned()),
                body: (self.0.render)(change),
                created_at: change.at,
                due_at: self
                    .0
                    .settings
                    .schedule
                    .next_at(0, change.at, 0.0)
                    .unwrap_or(change.at),
                endpoints: receivers,
            });
        }
        Ok(messages)
    }

    /// Whether the change's session passes the endpoint's metadata filter. A deletion carries no
    /// metadata any more: every endpoint that takes deletions gets it (it names only the id).
    async fn matches(
        &self,
        endpoint: &Endpoint,
        change: &FeedChange,
        cache: &mut HashMap<String, Option<Map<String, Value>>>,
    ) -> Result<bool, RepoError> {
        if endpoint.metadata_filter.is_empty() || change.kind == ChangeKind::SessionDeleted {
            return Ok(true);
        }
        let metadata = match &change.data {
            ChangeData::Session(session) => Some(session.metadata.as_map().clone()),
            ChangeData::None => None,
            ChangeData::Event(_) => {
                let id = change.session_id.as_str();
                if !cache.contains_key(id) {
                    let found = match self.0.repos.sessions.get(&change.session_id).await {
                        Ok(session) => Some(session.metadata.as_map().clone()),
                        Err(RepoError::NotFound | RepoError::Deleted) => None,
                        Err(e) => return Err(e),
                    };
                    cache.insert(id.to_owned(), found);
                }
                cache.get(id).cloned().flatten()
            }
        };
        Ok(metadata.is_some_and(|m| filter_matches(&endpoint.metadata_filter, &m)))
    }
}
