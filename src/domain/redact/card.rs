//! Payment card numbers: 13–19 digits, single spaces or dashes between any two, passing Luhn.

use std::ops::Range;

use super::digits::digits_at;

const FEWEST: usize = 13;
const MOST: usize = 19;

/// Pushes the span of every card in `text`, in order.
pub(super) fn find(text: &[u8], out: &mut Vec<Range<usize>>) {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if !text[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let (end, digits) = run(text, i);
        if digits >= FEWEST {
            groups.clear();
            groups.extend(group_spans(text, i, end));
            let glued_before = i > 0 && text[i - 1].is_ascii_alphanumeric();
            let glued_after = text.get(end).is_some_and(u8::is_ascii_alphanumeric);
            cards_in_run(text, &groups, glued_before, glued_after, out);
        }
        i = end;
    }
}

/// The end of the run of digits starting at `start` (groups of digits joined by single spaces
/// or dashes), and how many digits it holds.
fn run(text: &[u8], start: usize) -> (usize, usize) {
    let (mut end, mut digits) = (start, 0);
    loop {
        let group = digits_at(text, end);
        end += group;
        digits += group;
        match (text.get(end), text.get(end + 1)) {
            (Some(b' ' | b'-'), Some(next)) if next.is_ascii_digit() => end += 1,
            _ => return (end, digits),
        }
    }
}

/// The groups of digits of the run `start..end`.
fn group_spans(text: &[u8], start: usize, end: usize) -> impl Iterator<Item = Range<usize>> {
    let mut at = start;
    std::iter::from_fn(move || {
        (at < end).then(|| {
            let group = at..at + digits_at(text, at);
            at = group.end + 1;
            group
        })
    })
}

/// Pushes the cards of one run: from the first group that can start one, the longest window of
/// whole groups that is a card, then on after it.
fn cards_in_run(
    text: &[u8],
    groups: &[Range<usize>],
    glued_before: bool,
    glued_after: bool,
    out: &mut Vec<Range<usize>>,
) {
    let mut first = usize::from(glued_before);
    while first < groups.len() {
        let windows = &groups[first..];
        match longest_card(text, windows, glued_after) {
            Some(last) => {
                out.push(windows[0].start..windows[last].end);
                first += last + 1;
            }
            None => first += 1,
        }
    }
}

/// The index of the last group of the longest card starting with `groups[0]`; the run's last
/// group cannot end one if it is glued to a letter.
fn longest_card(text: &[u8], groups: &[Range<usize>], glued_after: bool) -> Option<usize> {
    let mut luhn = Luhn::default();
    let mut longest = None;
    for (index, group) in groups.iter().enumerate() {
        text[group.clone()].iter().for_each(|d| luhn.push(d - b'0'));
        if luhn.len > MOST {
            break;
        }
        let glued = glued_after && index + 1 == groups.len();
        if luhn.len >= FEWEST && !glued && luhn.valid() {
            longest = Some(index);
        }
    }
    longest
}

/// The Luhn check of a number read from its first digit on. Whether a digit is doubled depends
/// on its place from the last digit, not yet known, so both sums are kept.
#[derive(Default)]
struct Luhn {
    len: usize,
    /// `sums[p]`: the sum with the digits at even (`p` = 0) or odd (`p` = 1) places doubled.
    sums: [u32; 2],
}

impl Luhn {
    fn push(&mut self, digit: u8) {
        let digit = u32::from(digit);
        let doubled = if digit >= 5 { digit * 2 - 9 } else { digit * 2 };
        let place = self.len % 2;
        self.sums[place] += doubled;
        self.sums[1 - place] += digit;
        self.len += 1;
    }

    /// The digits doubled are every other one going left from the one before the last.
    fn valid(&self) -> bool {
        self.len > 0 && self.sums[self.len % 2].is_multiple_of(10)
    }
}
