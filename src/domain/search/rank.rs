//! Ranking by relevance where the store has no ranking of its own (the MongoDB store without
//! `$text`): BM25's term-frequency part over the candidates found, the same shape of score as
//! SQLite FTS5's `bm25()`.

use super::fold::Term;
use super::query::TextQuery;

/// BM25's usual constants: how fast repeats stop counting, and how much length matters.
const K1: f64 = 1.2;
const B: f64 = 0.75;

/// Scores candidates that all match one query, given the average length (in terms) of the
/// texts compared. Every candidate holds every required term, so a term's rarity (BM25's IDF)
/// would weigh them alike and is left out: more matches, in a shorter text, rank higher.
#[derive(Debug, Clone, Copy)]
pub struct Ranker {
    average_terms: f64,
}

impl Ranker {
    pub fn new(average_terms: f64) -> Self {
        Ranker {
            average_terms: average_terms.max(1.0),
        }
    }

    /// Higher is more relevant.
    pub fn score(&self, query: &TextQuery, text: &[Term]) -> f64 {
        let length = text.len() as f64 / self.average_terms;
        let norm = K1 * (1.0 - B + B * length);
        query
            .required_clauses_matched(text)
            .into_iter()
            .map(|tf| {
                let tf = tf as f64;
                tf * (K1 + 1.0) / (tf + norm)
            })
            .sum()
    }
}
