//! A search query (`q`): what it may say, what it matches, and what it highlights.
//!
//! - `refund policy`: both words, anywhere, in any order;
//! - `"refund policy"`: that phrase (its terms next to each other, in order);
//! - `ref*`: a word starting with `ref` (at least [`MIN_PREFIX_CHARS`] characters before `*`);
//! - `-thanks`, `-"thank you"`: events holding that word or phrase are left out.
//!
//! Terms are folded (see [`super::fold`]), so matching ignores case and accents. A word whose
//! characters fold into several terms (`don't`) is the phrase of them.

use super::fold::{Term, terms};
use crate::domain::Invalid;

/// The longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 256;
/// The most words, phrases and prefixes one query may hold.
pub const MAX_CLAUSES: usize = 16;
/// The fewest characters before a prefix's `*`.
pub const MIN_PREFIX_CHARS: usize = 2;

/// One thing the text must (or must not) hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clause {
    /// These terms next to each other, in order (one term: that word).
    Phrase(Vec<String>),
    /// A term starting with this.
    Prefix(String),
}

/// A parsed query: every `required` clause matches, and no `excluded` one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextQuery {
    pub required: Vec<Clause>,
    pub excluded: Vec<Clause>,
}

impl TextQuery {
    /// Parses `q`; refuses an empty query, one over [`MAX_QUERY_CHARS`], a phrase left open,
    /// a prefix that is short or not one word, more than [`MAX_CLAUSES`] clauses, and a query
    /// with nothing to find (only exclusions, or no letters or digits at all).
    pub fn parse(q: &str) -> Result<Self, Invalid> {
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(Invalid::new(format!(
                "must be at most {MAX_QUERY_CHARS} characters"
            )));
        }
        let mut query = TextQuery {
            required: Vec::new(),
            excluded: Vec::new(),
        };
        let mut rest = q.trim_start();
        while !rest.is_empty() {
            let (excluded, item) = match rest.strip_prefix('-') {
                Some(after) if !after.starts_with(char::is_whitespace) && !after.is_empty() => {
                    (true, after)
                }
                _ => (false, rest),
            };
            let (clause, after) = if let Some(inside) = item.strip_prefix('"') {
                let end = inside
                    .find('"')
                    .ok_or_else(|| Invalid::new("a phrase's closing quote (\") is missing"))?;
                (phrase(&inside[..end]), &inside[end + 1..])
            } else {
                let end = item.find(char::is_whitespace).unwrap_or(item.len());
                (word(&item[..end])?, &item[end..])
            };
            if let Some(clause) = clause {
                let into = if excluded {
                    &mut query.excluded
                } else {
                    &mut query.required
                };
                into.push(clause);
            }
            rest = after.trim_start();
        }
        if query.required.len() + query.excluded.len() > MAX_CLAUSES {
            return Err(Invalid::new(format!(
                "must hold at most {MAX_CLAUSES} words, phrases and prefixes"
            )));
        }
        if query.required.is_empty() {
            return Err(Invalid::new(
                "must hold a word, phrase or prefix to find (letters or digits, not only exclusions)",
            ));
        }
        Ok(query)
    }

    /// Whether text with these terms matches.
    pub fn matches(&self, text: &[Term]) -> bool {
        self.required
            .iter()
            .all(|c| spans(c, text).next().is_some())
            && self
                .excluded
                .iter()
                .all(|c| spans(c, text).next().is_none())
    }

    /// Where the required clauses match in text with these terms: `[start, end)` in UTF-16 code
    /// units, in order, overlapping ones merged.
    pub fn highlights(&self, text: &[Term]) -> Vec<[u32; 2]> {
        let mut found: Vec<[u32; 2]> = self
            .required
            .iter()
            .flat_map(|c| spans(c, text))
            .map(|(first, last)| [text[first].start, text[last].end])
            .collect();
        found.sort_unstable();
        let mut merged: Vec<[u32; 2]> = Vec::with_capacity(found.len());
        for span in found {
            match merged.last_mut() {
                Some(last) if span[0] <= last[1] => last[1] = last[1].max(span[1]),
                _ => merged.push(span),
            }
        }
        merged
    }

    /// How often each required clause matches in text with these terms (what ranking counts).
    pub fn required_clauses_matched(&self, text: &[Term]) -> Vec<usize> {
        self.required
            .iter()
            .map(|c| spans(c, text).count())
            .collect()
    }

    /// Every term a matching text must hold (those of required phrases): what an index of
    /// terms can narrow the candidates to before [`Self::matches`] decides.
    pub fn required_terms(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self
            .required
            .iter()
            .filter_map(|c| match c {
                Clause::Phrase(terms) => Some(terms.iter().map(String::as_str)),
                Clause::Prefix(_) => None,
            })
            .flatten()
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The query in SQLite FTS5's syntax, over an index of terms as [`super::index_line`] makes
    /// them. Terms hold only letters and digits, so quoting them is enough.
    pub fn fts5(&self) -> String {
        let clause = |c: &Clause| match c {
            Clause::Phrase(terms) => format!("\"{}\"", terms.join(" ")),
            Clause::Prefix(prefix) => format!("\"{prefix}\" *"),
        };
        let required: Vec<String> = self.required.iter().map(clause).collect();
        let mut expr = format!("({})", required.join(" AND "));
        for c in &self.excluded {
            expr.push_str(" NOT ");
            expr.push_str(&clause(c));
        }
        expr
    }
}

/// A quoted phrase: its terms (none: nothing to find, skipped).
fn phrase(inside: &str) -> Option<Clause> {
    let found: Vec<String> = terms(inside).into_iter().map(|t| t.folded).collect();
    (!found.is_empty()).then_some(Clause::Phrase(found))
}

/// An unquoted word, perhaps a prefix (`ref*`).
fn word(raw: &str) -> Result<Option<Clause>, Invalid> {
    let Some(stem) = raw.strip_suffix('*') else {
        return Ok(phrase(raw));
    };
    let mut found = terms(stem);
    match (found.pop(), found.is_empty()) {
        (Some(term), true) if term.folded.chars().count() >= MIN_PREFIX_CHARS => {
            Ok(Some(Clause::Prefix(term.folded)))
        }
        (None, _) => Ok(None),
        _ => Err(Invalid::new(format!(
            "a prefix (word*) must be one word of at least {MIN_PREFIX_CHARS} letters or digits"
        ))),
    }
}

/// Where `clause` matches among `text`'s terms: the indexes of the first and last term of each.
fn spans<'a>(
    clause: &'a Clause,
    text: &'a [Term],
) -> Box<dyn Iterator<Item = (usize, usize)> + 'a> {
    match clause {
        Clause::Prefix(prefix) => Box::new(
            text.iter()
                .enumerate()
                .filter(move |(_, t)| t.folded.starts_with(prefix.as_str()))
                .map(|(i, _)| (i, i)),
        ),
        Clause::Phrase(terms) if terms.is_empty() => Box::new(std::iter::empty()),
        Clause::Phrase(terms) => Box::new(
            text.windows(terms.len())
                .enumerate()
                .filter(move |(_, window)| {
                    window.iter().zip(terms).all(|(t, want)| &t.folded == want)
                })
                .map(move |(i, _)| (i, i + terms.len() - 1)),
        ),
    }
}
