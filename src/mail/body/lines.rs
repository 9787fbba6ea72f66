//! A body as lines that remember where they start in their source.
//!
//! Quote and signature detection work on lines for both text and HTML; a cut
//! is then applied to the source by these byte offsets.

use std::ops::Range;

/// One visible line and the byte offset in the source where it begins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Line {
    pub text: String,
    pub start: usize,
    /// Inside a `<blockquote>` (HTML; plain text quotes with `>`).
    pub quoted: bool,
    /// A quote container (Gmail, Outlook, Yahoo, Thunderbird) begins here.
    pub quote_mark: bool,
    /// A signature container (Gmail, Thunderbird, Outlook) begins here.
    pub signature_mark: bool,
}

/// Splits plain text into lines (`\n`, with any `\r` before it dropped from the text).
pub(crate) fn text_lines(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut start = 0;
    for piece in text.split_inclusive('\n') {
        out.push(Line {
            text: piece.trim_end_matches(['\n', '\r']).to_string(),
            start,
            ..Line::default()
        });
        start += piece.len();
    }
    out
}

/// The source with only the given line ranges kept.
pub(super) fn keep(source: &str, lines: &[Line], kept: &[Range<usize>]) -> String {
    let offset = |i: usize| {
        lines
            .get(i)
            .map_or(source.len(), |l| l.start.min(source.len()))
    };
    let mut out = String::with_capacity(source.len());
    for r in kept {
        let (a, b) = (offset(r.start), offset(r.end));
        if let Some(piece) = source.get(a..b) {
            out.push_str(piece);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_keeps_by_offset() {
        let s = "a\r\nbb\n\nc";
        let lines = text_lines(s);
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["a", "bb", "", "c"]);
        assert_eq!(keep(s, &lines, &[0..1, 3..4]), "a\r\nc");
        // An end past the last line means the end of the source.
        assert_eq!(keep(s, &lines, &[1..9, 9..9]), "bb\n\nc");
    }
}
