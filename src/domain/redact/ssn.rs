//! US Social Security numbers: exactly `ddd-dd-dddd`.

use std::ops::Range;

const LEN: usize = 11;

/// Pushes the span of every ssn in `text`, in order.
pub(super) fn find(text: &[u8], out: &mut Vec<Range<usize>>) {
    let mut i = 0;
    while i + LEN <= text.len() {
        if shaped(&text[i..i + LEN]) && free_before(text, i) && free_after(text, i + LEN) {
            out.push(i..i + LEN);
            i += LEN;
        } else {
            i += 1;
        }
    }
}

fn shaped(window: &[u8]) -> bool {
    window.iter().enumerate().all(|(at, b)| match at {
        3 | 6 => *b == b'-',
        _ => b.is_ascii_digit(),
    })
}

/// Not glued to a digit, nor to a dash after a digit.
fn free_before(text: &[u8], start: usize) -> bool {
    let digit = |at: Option<usize>| {
        at.and_then(|at| text.get(at))
            .is_some_and(u8::is_ascii_digit)
    };
    match start.checked_sub(1).map(|at| text[at]) {
        None => true,
        Some(b'-') => !digit(start.checked_sub(2)),
        Some(b) => !b.is_ascii_digit(),
    }
}

/// Not glued to a digit, nor to a dash before a digit.
fn free_after(text: &[u8], end: usize) -> bool {
    match text.get(end) {
        None => true,
        Some(b'-') => !text.get(end + 1).is_some_and(u8::is_ascii_digit),
        Some(b) => !b.is_ascii_digit(),
    }
}
