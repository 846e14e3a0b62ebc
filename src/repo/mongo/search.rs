//! Transcript search on MongoDB without `$text` (the test server refuses text indexes, and a
//! `$text` index cannot rank phrases or prefixes our way): each searchable event holds the
//! distinct folded terms of its text (`terms`), and the multikey `events_by_term` index finds
//! the events holding every required term, newest first. The index knows terms, not their
//! order, so phrases and excluded phrases are decided by the service (`TextQuery::matches`).

use std::collections::HashMap;

use async_trait::async_trait;
use bson::oid::ObjectId;
use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;

use super::documents::{event_from, session_from};
use super::{MongoStore, TOMBSTONE, map_err};
use crate::domain::search::{Clause, Ranker, TextQuery, terms};
use crate::domain::{Session, search};
use crate::repo::RepoError;
use crate::repo::search::{
    Candidate, MAX_RELEVANCE_DEPTH, SearchAfter, SearchOrder, SearchRepository, SearchScan,
};

/// A term as a regular expression matching the terms that start with it.
fn prefix_pattern(prefix: &str) -> Bson {
    Bson::RegularExpression(bson::Regex {
        pattern: format!("^{}", regex_escape(prefix)),
        options: String::new(),
    })
}

/// Terms hold letters and digits only, but a pattern is escaped whatever it holds.
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if !c.is_alphanumeric() {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// What the index can decide of the query: the required terms and prefixes, and the excluded
/// single terms and prefixes (an excluded phrase is left to the service).
fn query_filter(query: &TextQuery) -> Vec<Document> {
    let mut clauses = Vec::new();
    let required = query.required_terms();
    if !required.is_empty() {
        clauses.push(doc! { "terms": { "$all": required } });
    }
    for clause in &query.required {
        if let Clause::Prefix(prefix) = clause {
            clauses.push(doc! { "terms": prefix_pattern(prefix) });
        }
    }
    for clause in &query.excluded {
        match clause {
            Clause::Phrase(terms) if terms.len() == 1 => {
                clauses.push(doc! { "terms": { "$ne": &terms[0] } });
            }
            Clause::Prefix(prefix) => {
                clauses.push(doc! { "terms": { "$not": prefix_pattern(prefix) } });
            }
            Clause::Phrase(_) => {}
        }
    }
    clauses
}

/// A position is an `_id`'s 12 bytes as a number (ObjectIds compare as their bytes do).
fn position(id: &ObjectId) -> u128 {
    let mut bytes = [0_u8; 16];
    bytes[4..].copy_from_slice(&id.bytes());
    u128::from_be_bytes(bytes)
}

fn object_id(position: u128) -> ObjectId {
    let bytes = position.min((1 << 96) - 1).to_be_bytes();
    let mut id = [0_u8; 12];
    id.copy_from_slice(&bytes[4..]);
    ObjectId::from_bytes(id)
}

impl MongoStore {
    /// Up to `limit` candidates stored before `before`, newest first, leaving out those of erased
    /// sessions (and reading on past them, so a short answer means there are no more).
    async fn find_candidates(
        &self,
        scan: &SearchScan,
        mut before: Option<ObjectId>,
        limit: u32,
    ) -> Result<Vec<Candidate>, RepoError> {
        let mut candidates = Vec::new();
        while candidates.len() < limit as usize {
            let asked = limit - candidates.len() as u32;
            let (found, last) = self.find_some(scan, before, asked).await?;
            candidates.extend(found);
            match last {
                Some(last) => before = Some(last),
                None => break,
            }
        }
        Ok(candidates)
    }

    /// Up to `limit` events for `scan` stored before `before`, those of live sessions as
    /// candidates, and the `_id` of the last event read if there may be more.
    async fn find_some(
        &self,
        scan: &SearchScan,
        before: Option<ObjectId>,
        limit: u32,
    ) -> Result<(Vec<Candidate>, Option<ObjectId>), RepoError> {
        let mut clauses = query_filter(&scan.query);
        if let Some(event_type) = scan.event_type {
            clauses.push(doc! { "type": event_type.as_str() });
        }
        if let Some(id) = &scan.session_id {
            clauses.push(doc! { "sessionId": id.as_str() });
        }
        if let Some(before) = before {
            clauses.push(doc! { "_id": { "$lt": before } });
        }
        let found: Vec<Document> = self
            .events
            .find(doc! { "$and": clauses })
            .sort(doc! { "_id": -1 })
            .limit(i64::from(limit))
            .projection(doc! { "terms": 0 })
            .await
            .map_err(map_err)?
            .try_collect()
            .await
            .map_err(map_err)?;
        let sessions = self.live_sessions(&found).await?;
        let full = found.len() == limit as usize;
        let mut last = None;
        let mut candidates = Vec::with_capacity(found.len());
        for document in found {
            let event = event_from(&document)?;
            let id = document
                .get_object_id("_id")
                .map_err(|_| super::convert::corrupt("_id"))?;
            last = Some(id);
            let Some(session) = sessions.get(event.session_id.as_str()) else {
                continue;
            };
            candidates.push(Candidate {
                event,
                session: session.clone(),
                position: position(&id),
            });
        }
        Ok((candidates, last.filter(|_| full)))
    }

    /// The sessions of `events` that are not erased, by id, in one query.
    async fn live_sessions(
        &self,
        events: &[Document],
    ) -> Result<HashMap<String, Session>, RepoError> {
        let mut ids: Vec<&str> = events
            .iter()
            .filter_map(|d| d.get_str("sessionId").ok())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let found: Vec<Document> = self
            .sessions
            .find(doc! { "sessionId": { "$in": ids }, "status": { "$ne": TOMBSTONE } })
            .await
            .map_err(map_err)?
            .try_collect()
            .await
            .map_err(map_err)?;
        found
            .iter()
            .map(|d| session_from(d).map(|s| (s.session_id.as_str().to_owned(), s)))
            .collect()
    }
}

#[async_trait]
impl SearchRepository for MongoStore {
    /// An event's terms are written with it, in its insert: only events stored before search
    /// existed wait, for the backfill (`search_backfill`).
    async fn index_pending(&self) -> Result<u64, RepoError> {
        self.backfill_terms().await
    }

    async fn search(&self, scan: &SearchScan) -> Result<Vec<Candidate>, RepoError> {
        match (scan.order, scan.after) {
            (SearchOrder::Newest, after) => {
                let before = match after {
                    Some(SearchAfter::Position(p)) => Some(object_id(p)),
                    _ => None,
                };
                self.find_candidates(scan, before, scan.limit).await
            }
            (SearchOrder::Relevance, after) => {
                let skip = match after {
                    Some(SearchAfter::Offset(n)) => n.min(MAX_RELEVANCE_DEPTH) as usize,
                    _ => 0,
                };
                // Ranks the newest matches, up to the depth, then pages through that ranking.
                let window = self
                    .find_candidates(scan, None, MAX_RELEVANCE_DEPTH)
                    .await?;
                let mut scored: Vec<(f64, Candidate)> = Vec::with_capacity(window.len());
                let mut total_terms = 0_usize;
                let mut texts = Vec::with_capacity(window.len());
                for candidate in window {
                    let text = search::searchable_text(
                        candidate.event.event_type,
                        &candidate.event.payload,
                    )
                    .map(|t| terms(&t))
                    .unwrap_or_default();
                    if scan.query.matches(&text) {
                        total_terms += text.len();
                        texts.push((text, candidate));
                    }
                }
                let ranker = Ranker::new(total_terms as f64 / texts.len().max(1) as f64);
                for (text, candidate) in texts {
                    scored.push((ranker.score(&scan.query, &text), candidate));
                }
                scored.sort_by(|a, b| {
                    b.0.total_cmp(&a.0)
                        .then_with(|| b.1.position.cmp(&a.1.position))
                });
                Ok(scored
                    .into_iter()
                    .skip(skip)
                    .take(scan.limit as usize)
                    .map(|(_, c)| c)
                    .collect())
            }
        }
    }
}
