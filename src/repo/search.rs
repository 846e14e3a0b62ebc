//! Transcript search's storage seam: each store finds the events whose text may match a query,
//! through its own index, and the service decides with [`crate::domain::search`] which do.

use async_trait::async_trait;

use super::RepoError;
use crate::domain::search::TextQuery;
use crate::domain::{Event, EventType, Session, SessionId};

/// The deepest a relevance order goes, in candidates: ranking needs every candidate before the
/// first is answered, so it is bounded (MongoDB ranks this many newest candidates). Paging on
/// past it is `order=newest`'s, which walks every hit.
pub const MAX_RELEVANCE_DEPTH: u32 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchOrder {
    /// Best first (ties: newest first).
    Relevance,
    /// Most recently stored first.
    Newest,
}

/// Where a scan goes on from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchAfter {
    /// In newest order: candidates stored before the one at this position (a store's own order
    /// key, as [`Candidate::position`] gave it). Any number is valid.
    Position(u128),
    /// In relevance order: skip this many candidates.
    Offset(u32),
}

/// Which candidates [`SearchRepository::search`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchScan {
    pub query: TextQuery,
    pub event_type: Option<EventType>,
    pub session_id: Option<SessionId>,
    pub order: SearchOrder,
    pub after: Option<SearchAfter>,
    pub limit: u32,
}

/// An event the index found for a query, with its session as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub event: Event,
    pub session: Session,
    /// Its place in newest order: larger is newer.
    pub position: u128,
}

#[async_trait]
pub trait SearchRepository: Send + Sync {
    /// Up to `scan.limit` searchable events (see [`crate::domain::search::searchable_text`])
    /// whose terms may match `scan.query`, of `scan.event_type` and in `scan.session_id` when
    /// given, in `scan.order`, after `scan.after`. Never an event of an erased session, from the
    /// moment its erasure returned. An event is found from the moment its append returned (unless
    /// the index cannot be written then, as on a full disk: the index is searched as it is).
    ///
    /// A candidate may fail the query where the index cannot tell (MongoDB's index holds terms,
    /// not their order): callers check each with [`TextQuery::matches`]. In relevance order,
    /// no candidate lies past [`MAX_RELEVANCE_DEPTH`].
    async fn search(&self, scan: &SearchScan) -> Result<Vec<Candidate>, RepoError>;

    /// Brings the index up to every write committed so far, for a store that indexes after the
    /// write (the embedded store; MongoDB indexes each event's terms as it stores it); the
    /// number of events it indexed. [`Self::search`] does the same for what it needs first; this
    /// keeps that small (`service::maintenance`).
    async fn index_pending(&self) -> Result<u64, RepoError>;
}
