//! Long runs of text cut into short text nodes before the sanitizer sees them.
//!
//! html5ever's serializer (which ammonia uses) escapes a text node by searching the
//! rest of the node for `<`/`>` before every `&` or no-break space it writes, so a
//! node of n such characters costs n² (2 MB of `&amp;` took 2 s, of bare `&` 45 s).
//! An empty comment every [`RUN`] bytes of text starts a new text node; the sanitizer
//! drops comments, so the output is the same and each node costs at most `RUN`².

use super::html_scan::{Markup, markup_at, raw_text_end};
use std::borrow::Cow;

/// Longest text run left whole.
const RUN: usize = 1024;
/// What splits a run: a comment the sanitizer removes.
const SPLIT: &str = "<!---->";

/// Elements whose content is not markup: nothing can be inserted there (and the
/// sanitizer drops them with their content). `plaintext` runs to the end.
const RAW_TEXT: &[&str] = &[
    "script",
    "style",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "noscript",
    "textarea",
    "title",
    "plaintext",
];

/// `html` with [`SPLIT`] inserted into every text run longer than [`RUN`], before a `&`
/// or a non-ASCII character, never inside a tag, comment, entity or raw-text element.
pub(super) fn split(html: &str) -> Cow<'_, str> {
    if html.len() <= RUN {
        return Cow::Borrowed(html);
    }
    let b = html.as_bytes();
    let mut out = String::new();
    let (mut copied, mut run_start, mut i) = (0, 0, 0);
    while i < b.len() {
        if b[i] == b'<' {
            let Some(end) = markup_end(html, i) else {
                i += 1;
                continue;
            };
            i = end.max(i + 1);
            run_start = i;
            continue;
        }
        if i - run_start >= RUN && (b[i] == b'&' || b[i] >= 0xC0) {
            out.push_str(html.get(copied..i).unwrap_or(""));
            out.push_str(SPLIT);
            copied = i;
            run_start = i;
        }
        i += 1;
    }
    if copied == 0 {
        return Cow::Borrowed(html);
    }
    out.push_str(html.get(copied..).unwrap_or(""));
    Cow::Owned(out)
}

/// Where the markup at `i` (a `<`) ends, raw-text content included; `None` for a `<`
/// that is text. Comments end as the HTML tokenizer ends them (`<!-->` is one).
fn markup_end(html: &str, i: usize) -> Option<usize> {
    let rest = html.get(i..)?;
    if let Some(after) = rest.strip_prefix("<!--") {
        if after.starts_with('>') {
            return Some(i + 5);
        }
        if after.starts_with("->") {
            return Some(i + 6);
        }
        let close = [
            after.find("-->").map(|p| p + 3),
            after.find("--!>").map(|p| p + 4),
        ];
        let end = close.into_iter().flatten().min().unwrap_or(after.len());
        return Some(i + 4 + end);
    }
    match markup_at(html, i)? {
        Markup::Skip(end) => Some(end),
        Markup::Tag(t) => {
            if t.is_end || t.self_closing {
                return Some(t.end);
            }
            match RAW_TEXT.iter().find(|&&n| n == t.name) {
                Some(&"plaintext") => Some(html.len()),
                Some(name) => Some(raw_text_end(html, t.end, name).max(t.end)),
                None => Some(t.end),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(s: &str) -> usize {
        s.matches(SPLIT).count()
    }

    #[test]
    fn short_html_is_left_alone() {
        let html = "<p>a &amp; b</p>";
        assert!(matches!(split(html), Cow::Borrowed(_)));
        let letters = format!("<p>{}</p>", "a".repeat(10 * RUN));
        assert!(matches!(split(&letters), Cow::Borrowed(_)));
    }

    #[test]
    fn long_runs_are_cut_before_an_entity_or_a_wide_character() {
        let html = format!("<p>{}</p>", "&amp;".repeat(2 * RUN));
        let out = split(&html);
        assert_eq!(out.replace(SPLIT, ""), html);
        assert!(count(&out) >= 8, "{}", count(&out));
        // Each piece between the marks starts with a whole entity.
        for piece in out.split(SPLIT).skip(1) {
            assert!(piece.starts_with("&amp;"), "{}", &piece[..10]);
        }
        let nbsp = "\u{a0}".repeat(2 * RUN);
        let out = split(&nbsp);
        assert_eq!(out.replace(SPLIT, ""), nbsp);
        assert!(count(&out) >= 2);
    }

    #[test]
    fn nothing_is_inserted_into_markup_or_raw_text() {
        let amps = "&".repeat(3 * RUN);
        for html in [
            format!("<a title=\"{amps}\">x</a>"),
            format!("<!-- {amps} -->"),
            format!("<!x {amps}>"),
            format!("<script>{amps}</script>"),
            format!("<xmp>{amps}</xmp>"),
            format!("<textarea>{amps}</textarea>"),
            format!("<plaintext>{amps}</p>{amps}"),
        ] {
            assert!(matches!(split(&html), Cow::Borrowed(_)), "{}", &html[..20]);
        }
        // A comment closed the short way is over at once: the text after it is text.
        for opener in ["<!-->", "<!--->", "<!-- a --!>"] {
            assert!(count(&split(&format!("{opener}{amps}"))) > 0, "{opener}");
        }
        // Text after raw text is text again.
        assert!(count(&split(&format!("<style>x</style>{amps}"))) > 0);
    }
}
