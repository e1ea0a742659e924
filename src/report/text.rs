//! Text from scenarios and clusters (names, descriptions, events) is not trusted to be safe on
//! a terminal: an ESC sequence in a `description` could clear the screen, retitle the window or
//! hide lines. Every terminal output and the Markdown report show control characters as
//! visible escapes instead; report.json keeps the raw text.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal raw: C0 controls but tab and newline, DEL, C1
/// controls, and the bidirectional overrides that reorder what a line appears to say.
fn unsafe_on_a_terminal(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character written as a visible escape (`\x1b`, `\u{9b}`,
/// `\u{202e}`); unchanged (and not copied) when it has none.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_on_a_terminal) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !unsafe_on_a_terminal(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_visible_and_plain_text_is_not_copied() {
        assert!(matches!(escape_controls("plain\ttext\n"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("a\x1b[2Jb\x07c\u{9b}d\u{202e}e\x7f"),
            "a\\x1b[2Jb\\x07c\\u{9b}d\\u{202e}e\\x7f"
        );
        assert_eq!(escape_controls("über ✓"), "über ✓");
    }
}
