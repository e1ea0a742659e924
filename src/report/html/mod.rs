//! The HTML report: one self-contained page (inline CSS, SVG and a little JavaScript, no
//! network) built from the same [`Report`](super::model::Report) as `report.json`.
//!
//! The pieces are generic so other pages (the run history) are small additions: [`page`]
//! (shell, theme, script), [`chart`] (a server-rendered SVG line chart over columns, with
//! bands, marks and hover values), [`table`] (escaped tables). [`run`] assembles a drill's
//! page from them. Everything the page shows that came from a user or a cluster goes through
//! [`escape`]; the charts stay legible and their values readable (SVG `<title>`) without
//! JavaScript, which only adds a floating tooltip, a cursor line and a copy button.

pub mod chart;
pub mod page;
pub mod run;
pub mod table;

use std::borrow::Cow;

pub use run::{RunFiles, render};

/// Text made safe for HTML element content and quoted attribute values: the XML escaping of
/// the JUnit report (HTML reads all of it), so both markups have one escaper. Characters
/// neither can carry (NUL, most C0 controls) become U+FFFD.
pub fn escape(text: &str) -> Cow<'_, str> {
    let plain = |c: char| !matches!(c, '&' | '<' | '>' | '"' | '\'') && c >= ' ';
    if text.chars().all(plain) && !text.contains(['\u{FFFE}', '\u{FFFF}']) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(super::junit::xml(text))
    }
}

/// A fragment id from any text: letters and digits kept, the rest `-`, so a hostile name can
/// only ever be a harmless anchor.
pub fn anchor(prefix: &str, text: &str) -> String {
    let mut id = String::from(prefix);
    id.push('-');
    id.extend(text.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        }
    }));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_controls_are_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\"\u{0}"),
            "&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt; &amp; &quot;q&quot;\u{FFFD}"
        );
        assert!(matches!(escape("plain text"), Cow::Borrowed(_)));
    }

    #[test]
    fn anchors_hold_only_safe_characters() {
        assert_eq!(anchor("check", "p99 <\"x\">"), "check-p99---x--");
    }
}
