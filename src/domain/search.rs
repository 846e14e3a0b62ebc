//! Transcript search's rules, written once for both stores: which text of an event is searched,
//! how text becomes terms, what a query means, which words a hit highlights, and (for a store
//! without a ranking of its own) how hits are ranked.
//!
//! A **term** is a run of letters and digits (Unicode `Alphabetic` or `Numeric`; combining marks
//! inside a word belong to it), folded: decomposed (NFD), combining marks dropped, lowercased. So
//! `Café`, `CAFE` and `cafe` are one term, and `don't` is the two terms `don` and `t` (a query
//! for `don't` is the phrase "don t"). Both stores index these terms, as this module makes them,
//! so they agree on what matches.

mod fold;
mod query;
mod rank;

pub use fold::{Term, terms};
pub use query::{Clause, MAX_CLAUSES, MAX_QUERY_CHARS, MIN_PREFIX_CHARS, TextQuery};
pub use rank::Ranker;

use super::{EventType, JsonObject};

/// Whether events of this type are searched: what was said, by the caller or the bot.
pub fn is_searched(event_type: EventType) -> bool {
    matches!(event_type, EventType::UserSpeech | EventType::BotSpeech)
}

/// The text search indexes for an event: the `text` string of a `user_speech` or `bot_speech`
/// payload. Nothing else is indexed (not other payload fields, not `system` events, not a
/// `text` that is not a string).
pub fn searchable_text(event_type: EventType, payload: &JsonObject) -> Option<String> {
    searchable_text_in(event_type, payload.json())
}

/// [`searchable_text`] of a payload still in its JSON text (as a store keeps it).
pub fn searchable_text_in(event_type: EventType, payload_json: &str) -> Option<String> {
    if !is_searched(event_type) {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Speech {
        #[serde(default)]
        text: Option<serde_json::Value>,
    }
    // Only the `text` member is kept; the rest of the payload is skipped, not built.
    let speech: Speech = serde_json::from_str(payload_json).ok()?;
    match speech.text {
        Some(serde_json::Value::String(text)) => Some(text),
        _ => None,
    }
}

/// The most distinct terms an event contributes to the MongoDB index (its `terms` array): a
/// spoken turn has far fewer; a longer text is searchable by its first this many distinct terms.
pub const MAX_INDEXED_TERMS: usize = 2_000;

/// The terms of `text` as one string, space-separated, in order (what the SQLite full-text
/// index stores: its `ascii` tokenizer splits it back into exactly these terms).
pub fn index_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len());
    for term in terms(text) {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&term.folded);
    }
    line
}

/// The distinct terms of `text`, in the order they first appear, at most [`MAX_INDEXED_TERMS`]
/// (what the MongoDB index stores).
pub fn distinct_terms(text: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut distinct = Vec::new();
    for term in terms(text) {
        if distinct.len() == MAX_INDEXED_TERMS {
            break;
        }
        if seen.insert(term.folded.clone()) {
            distinct.push(term.folded);
        }
    }
    distinct
}

#[cfg(test)]
mod tests;
