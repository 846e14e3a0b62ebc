//! Telephone numbers: E.164 (`+` and 10–15 digits) and national forms of 10–15 digits.

use std::ops::Range;

use super::digits::digits_at;

const FEWEST: usize = 10;
const MOST: usize = 15;

/// Pushes the span of every phone number in `text`, in order.
pub(super) fn find(text: &[u8], out: &mut Vec<Range<usize>>) {
    // A number found is as good as replaced: what follows it is not glued to it.
    let mut free = 0;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if (b == b'+' || b == b'(' || b.is_ascii_digit()) && free_before(&text[free..], i - free) {
            let end = match b {
                b'+' => international(text, i + 1),
                _ => national(text, i),
            };
            if let Some(end) = end {
                out.push(i..end);
                (free, i) = (end, end);
                continue;
            }
        }
        i += 1;
    }
}

/// Not preceded by a letter, digit, `_`, `/` or `+`, by a space after a digit, or by a dash or
/// dot after a letter or digit: such a number is part of something longer (an id, a path, a
/// grouped number read from its middle).
fn free_before(text: &[u8], start: usize) -> bool {
    let Some(before) = start.checked_sub(1).map(|at| text[at]) else {
        return true;
    };
    let two_before = start.checked_sub(2).map(|at| text[at]);
    match before {
        b if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'/' | b'+') => false,
        b' ' => !two_before.is_some_and(|b| b.is_ascii_digit()),
        b'-' | b'.' => !two_before.is_some_and(|b| b.is_ascii_alphanumeric()),
        _ => true,
    }
}

/// Not followed by a letter, digit or `_`, nor by a dash or dot and a digit.
fn free_after(text: &[u8], end: usize) -> bool {
    match text.get(end) {
        None => true,
        Some(b) if b.is_ascii_alphanumeric() || *b == b'_' => false,
        Some(b'-' | b'.') => !text.get(end + 1).is_some_and(u8::is_ascii_digit),
        Some(_) => true,
    }
}

/// One group of a number: digits, or digits in parentheses.
struct Group {
    end: usize,
    digits: usize,
    parenthesised: bool,
}

/// The group starting at `at`, if one does.
fn group(text: &[u8], at: usize) -> Option<Group> {
    let parenthesised = text.get(at) == Some(&b'(');
    let start = at + usize::from(parenthesised);
    let digits = digits_at(text, start);
    let end = start + digits;
    match (digits, parenthesised) {
        (0, _) => None,
        (_, false) => Some(Group {
            end,
            digits,
            parenthesised,
        }),
        (_, true) => (text.get(end) == Some(&b')')).then_some(Group {
            end: end + 1,
            digits,
            parenthesised,
        }),
    }
}

/// What may follow the group just read: a separator and the next group's start, or the next
/// group's start right away (a parenthesised group before or after digits).
fn next(text: &[u8], after: &Group) -> Option<(Option<u8>, usize)> {
    match text.get(after.end) {
        Some(&sep @ (b' ' | b'-' | b'.')) => Some((Some(sep), after.end + 1)),
        Some(b'(') => Some((None, after.end)),
        Some(b) if b.is_ascii_digit() && after.parenthesised => Some((None, after.end)),
        _ => None,
    }
}

/// The end of the number whose digits start at `at` (after its `+`): the longest prefix of whole
/// groups, any separators, at most one parenthesised group, with 10–15 digits.
fn international(text: &[u8], mut at: usize) -> Option<usize> {
    let (mut digits, mut parenthesised, mut end) = (0, false, None);
    while let Some(group) = group(text, at) {
        if group.parenthesised && std::mem::replace(&mut parenthesised, true) {
            break;
        }
        digits += group.digits;
        if digits > MOST {
            break;
        }
        if digits >= FEWEST && free_after(text, group.end) {
            end = Some(group.end);
        }
        match next(text, &group) {
            Some((_, start)) => at = start,
            None => break,
        }
    }
    end
}

/// The end of the national number starting at `at`: 10–15 digits in all, the separator between
/// two plain groups one and the same throughout (a dot only in the shape 3-3-4), at most one
/// parenthesised group with any separator or none around it. All of it is the number or none.
fn national(text: &[u8], mut at: usize) -> Option<usize> {
    let (mut digits, mut parenthesised, mut end) = (0, false, at);
    let mut joint: Option<u8> = None;
    let mut plain = Plain::default();
    let mut before: Option<(bool, Option<u8>)> = None;
    while let Some(group) = group(text, at) {
        if group.parenthesised && std::mem::replace(&mut parenthesised, true) {
            break;
        }
        if let Some((false, Some(sep))) = before.filter(|_| !group.parenthesised) {
            match joint {
                Some(joint) if joint != sep => break,
                _ => joint = Some(sep),
            }
        }
        digits += group.digits;
        if digits > MOST {
            return None;
        }
        if !group.parenthesised {
            plain.push(group.digits);
        }
        end = group.end;
        match next(text, &group) {
            Some((sep, start)) => {
                before = Some((group.parenthesised, sep));
                at = start;
            }
            None => break,
        }
    }
    let shaped = joint != Some(b'.') || plain.north_american();
    (digits >= FEWEST && shaped && free_after(text, end)).then_some(end)
}

/// The sizes of a national number's plain groups, for the dotted shape.
#[derive(Default)]
struct Plain {
    count: usize,
    last: usize,
    longest_before_last: usize,
}

impl Plain {
    fn push(&mut self, digits: usize) {
        if self.count > 0 {
            self.longest_before_last = self.longest_before_last.max(self.last);
        }
        self.count += 1;
        self.last = digits;
    }

    /// "555.123.4567", "1.555.123.4567", "(555) 123.4567": at most four plain groups, the last
    /// of four digits, the others of three at most.
    fn north_american(&self) -> bool {
        self.count <= 4 && self.last == 4 && self.longest_before_last <= 3
    }
}
