//! A small HTML tokenizer: enough to find tags, comments and entities without a DOM.
//!
//! Used on our own sanitized output (well formed) and, as a fallback, on raw
//! mail HTML. Every step moves forward, so any input is scanned in linear time.

/// A start or end tag found at some `<`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tag {
    /// Lower-cased tag name.
    pub name: String,
    pub is_end: bool,
    pub self_closing: bool,
    /// Byte offset just after the closing `>` (or the end of input).
    pub end: usize,
}

/// What starts at a `<`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Markup {
    Tag(Tag),
    /// A comment, doctype or processing instruction, ending at this offset.
    Skip(usize),
}

/// The markup starting at byte `i` (which holds `<`), or `None` when that `<` is plain text.
pub(super) fn markup_at(s: &str, i: usize) -> Option<Markup> {
    let b = s.as_bytes();
    let rest = b.get(i..)?;
    if rest.first() != Some(&b'<') {
        return None;
    }
    if rest.starts_with(b"<!--") {
        let end = s
            .get(i + 4..)
            .and_then(|t| t.find("-->"))
            .map_or(s.len(), |p| i + 4 + p + 3);
        return Some(Markup::Skip(end));
    }
    if matches!(rest.get(1), Some(b'!' | b'?')) {
        return Some(Markup::Skip(after_gt(b, i + 2)));
    }
    let is_end = rest.get(1) == Some(&b'/');
    let name_start = if is_end { i + 2 } else { i + 1 };
    if !b.get(name_start).is_some_and(u8::is_ascii_alphabetic) {
        // `</ ...>` is a bogus comment in HTML; `< x` is text.
        return is_end.then(|| Markup::Skip(after_gt(b, name_start)));
    }
    let mut j = name_start;
    while j < b.len() && !(b[j].is_ascii_whitespace() || b[j] == b'/' || b[j] == b'>') {
        j += 1;
    }
    // j stops at an ASCII byte or the end, so it is a char boundary.
    let name = s.get(name_start..j).unwrap_or("").to_ascii_lowercase();
    let mut k = j;
    let mut after_eq = false;
    while k < b.len() {
        match b[k] {
            b'>' => break,
            b'=' => after_eq = true,
            q @ (b'"' | b'\'') if after_eq => {
                k = b[k + 1..]
                    .iter()
                    .position(|&c| c == q)
                    .map_or(b.len(), |p| k + 1 + p);
                after_eq = false;
            }
            c if c.is_ascii_whitespace() => {}
            _ => after_eq = false,
        }
        k += 1;
    }
    let self_closing = k < b.len() && k > j && b[k - 1] == b'/';
    Some(Markup::Tag(Tag {
        name,
        is_end,
        self_closing,
        end: (k + 1).min(b.len()),
    }))
}

/// Offset just after the next `>` at or after `from`, or the end of input.
fn after_gt(b: &[u8], from: usize) -> usize {
    b.get(from..)
        .and_then(|t| t.iter().position(|&c| c == b'>'))
        .map_or(b.len(), |p| from + p + 1)
}

/// Where the raw text of `<name>` (script, style, title…) ends: the `<` of `</name`, or the end.
pub(super) fn raw_text_end(s: &str, from: usize, name: &str) -> usize {
    let b = s.as_bytes();
    let mut pos = from;
    while let Some(p) = s.get(pos..).and_then(|t| t.find("</")) {
        let at = pos + p;
        let after = at + 2 + name.len();
        let matches = b
            .get(at + 2..after)
            .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()));
        if matches && !b.get(after).is_some_and(u8::is_ascii_alphanumeric) {
            return at;
        }
        pos = at + 2;
    }
    s.len()
}

/// Tags that never have content, so they never open a nesting level.
pub(super) fn is_void(name: &str) -> bool {
    matches!(
        name,
        "area"
            | "base"
            | "br"
            | "col"
            | "embed"
            | "hr"
            | "img"
            | "image"
            | "input"
            | "link"
            | "meta"
            | "param"
            | "source"
            | "track"
            | "wbr"
            | "keygen"
            | "basefont"
            | "bgsound"
            | "frame"
    )
}

/// The character reference at byte `i` (which holds `&`) and the offset after it.
///
/// Numeric references and the named ones that matter in mail text; anything
/// else is left as literal text, as a browser does with unknown names.
pub(super) fn entity_at(s: &str, i: usize) -> Option<(char, usize)> {
    let b = s.as_bytes();
    if b.get(i) != Some(&b'&') {
        return None;
    }
    let mut j = i + 1;
    if b.get(j) == Some(&b'#') {
        j += 1;
        let hex = matches!(b.get(j), Some(b'x' | b'X'));
        if hex {
            j += 1;
        }
        let digits_start = j;
        while j < b.len()
            && j - digits_start < 8
            && (if hex {
                b[j].is_ascii_hexdigit()
            } else {
                b[j].is_ascii_digit()
            })
        {
            j += 1;
        }
        if j == digits_start {
            return None;
        }
        let digits = s.get(digits_start..j)?;
        let n = u32::from_str_radix(digits, if hex { 16 } else { 10 }).ok()?;
        if b.get(j) == Some(&b';') {
            j += 1;
        }
        let c = char::from_u32(n)
            .filter(|&c| c != '\0')
            .unwrap_or('\u{FFFD}');
        return Some((c, j));
    }
    while j < b.len() && j - i <= 32 && b[j].is_ascii_alphanumeric() {
        j += 1;
    }
    let name = s.get(i + 1..j)?;
    let semicolon = b.get(j) == Some(&b';');
    let c = named(name)?;
    if semicolon {
        Some((c, j + 1))
    } else if matches!(name, "amp" | "lt" | "gt" | "quot" | "nbsp") {
        // Legacy references that browsers accept without the `;`.
        Some((c, j))
    } else {
        None
    }
}

fn named(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "shy" => '\u{ad}',
        "zwnj" => '\u{200c}',
        "zwj" => '\u{200d}',
        "lrm" => '\u{200e}',
        "rlm" => '\u{200f}',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "laquo" => '«',
        "raquo" => '»',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "copy" => '©',
        "reg" => '®',
        "euro" => '€',
        "eacute" => 'é',
        "egrave" => 'è',
        "ecirc" => 'ê',
        "agrave" => 'à',
        "acirc" => 'â',
        "ccedil" => 'ç',
        "ocirc" => 'ô',
        "ouml" => 'ö',
        "auml" => 'ä',
        "uuml" => 'ü',
        "Ouml" => 'Ö',
        "Auml" => 'Ä',
        "Uuml" => 'Ü',
        "szlig" => 'ß',
        "oacute" => 'ó',
        "aacute" => 'á',
        "iacute" => 'í',
        "uacute" => 'ú',
        "ntilde" => 'ñ',
        _ => return None,
    })
}

/// True when `text` has something a reader would see (not only spaces and format marks).
pub(super) fn has_visible(text: &str) -> bool {
    text.chars().any(|c| {
        !(c.is_whitespace()
            || matches!(
                c,
                '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2060}' | '\u{feff}'
            )
            || super::markers::is_marker(c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(s: &str) -> Tag {
        match markup_at(s, 0) {
            Some(Markup::Tag(t)) => t,
            other => panic!("not a tag: {other:?}"),
        }
    }

    #[test]
    fn tags_comments_and_text() {
        let t = tag("<DIV class=\"a>b\" id='x'>rest");
        assert_eq!((t.name.as_str(), t.is_end, t.end), ("div", false, 24));
        assert!(tag("</p >").is_end);
        assert!(tag("<br/>").self_closing);
        assert_eq!(markup_at("<!-- x --> y", 0), Some(Markup::Skip(10)));
        assert_eq!(markup_at("<!-- never closed", 0), Some(Markup::Skip(17)));
        assert_eq!(markup_at("<!DOCTYPE html>", 0), Some(Markup::Skip(15)));
        assert_eq!(markup_at("< 3", 0), None);
        assert_eq!(markup_at("<3", 0), None);
        // An unterminated tag runs to the end of input instead of looping.
        assert_eq!(tag("<a href=\"x").end, 10);
    }

    #[test]
    fn raw_text_end_finds_the_closing_tag_case_insensitively() {
        let s = "<style>a</b></STYLE>x";
        assert_eq!(raw_text_end(s, 7, "style"), 12);
        assert_eq!(raw_text_end("<style>never", 7, "style"), 12);
        assert_eq!(raw_text_end("</styles></style>", 0, "style"), 9);
    }

    #[test]
    fn entities() {
        assert_eq!(entity_at("&amp;x", 0), Some(('&', 5)));
        assert_eq!(entity_at("&nbsp x", 0), Some(('\u{a0}', 5)));
        assert_eq!(entity_at("&#233;", 0), Some(('é', 6)));
        assert_eq!(entity_at("&#x41;", 0), Some(('A', 6)));
        assert_eq!(entity_at("&#0;", 0), Some(('\u{FFFD}', 4)));
        assert_eq!(entity_at("&#xD800;", 0), Some(('\u{FFFD}', 8)));
        assert_eq!(
            entity_at("&#99999999999;", 0).map(|e| e.0),
            Some('\u{FFFD}')
        );
        assert_eq!(entity_at("&unknown;", 0), None);
        assert_eq!(entity_at("&eacute", 0), None);
        assert_eq!(entity_at("& ", 0), None);
    }

    #[test]
    fn visibility() {
        assert!(!has_visible(" \u{a0}\u{200e}\n"));
        assert!(has_visible(" a "));
    }
}
