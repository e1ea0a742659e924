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

/// Text made safe for HTML element content and quoted attribute values. Characters HTML
/// cannot carry (NUL, most C0 controls) become U+FFFD.
pub fn escape(text: &str) -> Cow<'_, str> {
    let needs = |c: char| matches!(c, '&' | '<' | '>' | '"' | '\'') || is_forbidden(c);
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if is_forbidden(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn is_forbidden(c: char) -> bool {
    (c < ' ' && !matches!(c, '\n' | '\t')) || c == '\u{7f}'
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
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;\u{FFFD}"
        );
        assert!(matches!(escape("plain text"), Cow::Borrowed(_)));
    }

    #[test]
    fn anchors_hold_only_safe_characters() {
        assert_eq!(anchor("check", "p99 <\"x\">"), "check-p99----x--");
    }
}
