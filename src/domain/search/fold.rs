//! Text into terms, each with where it stands in the text.

use unicode_normalization::char::{decompose_canonical, is_combining_mark};

/// One term of a text: its folded form and its place in the text, in UTF-16 code units (what a
/// JavaScript string's `slice` takes), end exclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub folded: String,
    pub start: u32,
    pub end: u32,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c)
}

/// Appends `c` folded: decomposed, without combining marks, lowercased.
fn fold_into(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    decompose_canonical(c, |part| {
        if !is_combining_mark(part) {
            out.extend(part.to_lowercase());
        }
    });
}

/// The terms of `text`, in order. A word of only combining marks is no term.
pub fn terms(text: &str) -> Vec<Term> {
    let mut found = Vec::new();
    let mut current: Option<Term> = None;
    let mut at: u32 = 0;
    for c in text.chars() {
        let width = c.len_utf16() as u32;
        if is_word_char(c) {
            let term = current.get_or_insert_with(|| Term {
                folded: String::new(),
                start: at,
                end: at,
            });
            fold_into(c, &mut term.folded);
            term.end = at + width;
        } else if let Some(term) = current.take()
            && !term.folded.is_empty()
        {
            found.push(term);
        }
        at = at.saturating_add(width);
    }
    if let Some(term) = current.take()
        && !term.folded.is_empty()
    {
        found.push(term);
    }
    found
}
