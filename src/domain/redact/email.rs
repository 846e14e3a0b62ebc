//! Email addresses, the practical pattern: `local@label.label…`, the last label of letters.

use std::ops::Range;

/// Pushes the span of every email address in `text`, in order.
pub(super) fn find(text: &[u8], out: &mut Vec<Range<usize>>) {
    // Nothing before `free` may be part of a further address.
    let mut free = 0;
    let mut from = 0;
    while let Some(at) = text[from..]
        .iter()
        .position(|&b| b == b'@')
        .map(|p| from + p)
    {
        match (local_start(text, free, at), domain_end(text, at + 1)) {
            (Some(start), Some(end)) => {
                out.push(start..end);
                (free, from) = (end, end);
            }
            _ => from = at + 1,
        }
    }
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_label(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// Where the local part before the `@` at `at` starts (not before `free`): the local characters
/// before it, leading dots left out; `None` if there are none or the last is a dot.
fn local_start(text: &[u8], free: usize, at: usize) -> Option<usize> {
    let mut start = at;
    while start > free && is_local(text[start - 1]) {
        start -= 1;
    }
    while start < at && text[start] == b'.' {
        start += 1;
    }
    (start < at && text[at - 1] != b'.').then_some(start)
}

/// Where the longest domain starting at `from` ends: at least two labels, the last of two
/// letters or more.
fn domain_end(text: &[u8], from: usize) -> Option<usize> {
    let (mut start, mut labels, mut end) = (from, 0, None);
    loop {
        let len = text
            .get(start..)
            .map_or(0, |rest| rest.iter().take_while(|b| is_label(**b)).count());
        if len == 0 {
            return end;
        }
        let label = &text[start..start + len];
        labels += 1;
        if labels >= 2 && len >= 2 && label.iter().all(u8::is_ascii_alphabetic) {
            end = Some(start + len);
        }
        if text.get(start + len) != Some(&b'.') {
            return end;
        }
        start += len + 1;
    }
}
