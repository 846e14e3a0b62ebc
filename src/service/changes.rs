//! The change feed as the API serves it: cursors (the store's positions, made opaque), the
//! retention, and what a reader asked for.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{ServiceError, SessionService};
use crate::domain::Timestamp;
use crate::repo::feed::{ChangeKinds, FeedChange, FeedError, FeedStart};

/// The most changes one page holds, and the default.
pub const MAX_CHANGES_LIMIT: u32 = 1_000;
pub const DEFAULT_CHANGES_LIMIT: u32 = 100;
/// The longest a long poll waits.
pub const MAX_CHANGES_WAIT_SECONDS: u64 = 60;

/// Where a reader starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangesFrom {
    /// From the oldest change retained.
    Oldest,
    /// From changes made after now.
    Now,
    /// After a cursor from an earlier answer.
    After(String),
}

/// A read of the feed, as asked.
#[derive(Debug, Clone)]
pub struct ChangesRequest {
    pub from: ChangesFrom,
    pub limit: u32,
    pub kinds: ChangeKinds,
    pub wait: Duration,
}

/// A page of the feed, with the cursors of its changes.
#[derive(Debug, Clone)]
pub struct ChangesPage {
    /// Each change with its cursor (where to read on from once it is handled).
    pub changes: Vec<(String, FeedChange)>,
    pub next_cursor: String,
    pub has_more: bool,
}

/// A store position as the client sees it: opaque, URL-safe.
pub fn cursor_of(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(position)
}

fn position_of(cursor: &str) -> Result<String, ServiceError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(ServiceError::InvalidCursor)
}

impl SessionService {
    /// The oldest instant the feed serves changes from.
    fn changes_retained_since(&self) -> Timestamp {
        Timestamp::now().minus_seconds(self.lifecycle.changes_retention_seconds)
    }

    /// The cursor of the newest change now: reading after it gives only later changes.
    pub async fn changes_head(&self) -> Result<String, ServiceError> {
        Ok(cursor_of(&self.repos.feed.head().await?))
    }

    /// Whether the change with `cursor` came after the one `head` (a [`Self::changes_head`]).
    pub fn changes_beyond(&self, cursor: &str, head: &str) -> bool {
        match (position_of(cursor), position_of(head)) {
            (Ok(position), Ok(head)) => self.repos.feed.beyond(&position, &head),
            _ => false,
        }
    }

    /// A page of the feed.
    pub async fn changes(&self, request: ChangesRequest) -> Result<ChangesPage, ServiceError> {
        let start = match request.from {
            ChangesFrom::Oldest => FeedStart::Oldest,
            ChangesFrom::Now => FeedStart::After(self.repos.feed.head().await?),
            ChangesFrom::After(cursor) => FeedStart::After(position_of(&cursor)?),
        };
        let read = self
            .repos
            .feed
            .read(
                start,
                request.limit,
                request.kinds,
                request.wait,
                self.changes_retained_since(),
            )
            .await
            .map_err(|e| match e {
                FeedError::InvalidPosition => ServiceError::InvalidCursor,
                FeedError::Expired { earliest } => ServiceError::CursorExpired {
                    earliest: cursor_of(&earliest),
                },
                FeedError::Repo(e) => ServiceError::Storage(e),
            })?;
        metrics::counter!("changes_delivered_total").increment(read.changes.len() as u64);
        Ok(ChangesPage {
            changes: read
                .changes
                .into_iter()
                .map(|c| (cursor_of(&c.position), c))
                .collect(),
            next_cursor: cursor_of(&read.next),
            has_more: read.has_more,
        })
    }
}
