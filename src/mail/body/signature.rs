//! Signature lines: where the sender's sign-off block begins.

use super::lines::Line;
use regex::Regex;
use std::sync::LazyLock;

/// How sure we are that a line starts a signature, which decides how much may follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signature {
    /// "-- " (RFC 3676 §4.3) or a client's signature container: cut whatever follows.
    Delimiter,
    /// "--" without its space (often eaten by editors): only near the end.
    LooseDelimiter,
    /// "Sent from my iPhone" and kin: only as the last line.
    Device,
}

/// Lines a loose "--" may have after it and still be a signature.
const LOOSE_TAIL: usize = 6;

/// "Sent from my iPhone", "Get Outlook for Android", "Wysłane z iPhone'a"…
static DEVICE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:sent\s+from\s+(?:my\s+)?\S.*|sent\s+(?:with|via|using)\s+\S.*|get\s+outlook\s+for\s+\S.*|wysłan[eo]\s+(?:z|ze|przy\s+użyciu)\s+\S.*|von\s+meinem\s+\S.*\s+gesendet|gesendet\s+von\s+(?:meinem\s+)?\S.*|envoyé\s+(?:de|depuis)\s+(?:mon\s+)?\S.*|enviado\s+(?:desde|de)\s+(?:mi\s+|meu\s+)?\S.*|inviato\s+da\s+\S.*|verzonden\s+(?:met|vanaf|van)\s+\S.*)$",
    )
    .ok()
});

/// Whether `line` could start a signature, and of which kind.
pub(super) fn kind(line: &Line) -> Option<Signature> {
    if line.signature_mark {
        return Some(Signature::Delimiter);
    }
    let t = line.text.as_str();
    let trimmed = t.trim_end_matches([' ', '\u{a0}', '\t']);
    if trimmed == "--" {
        return Some(if t.len() > trimmed.len() {
            Signature::Delimiter
        } else {
            Signature::LooseDelimiter
        });
    }
    let t = t.trim();
    // A short line without a sentence in it: "Sent from my desk, which is…" is text.
    if t.len() <= 80 && !t.contains([',', ';']) && DEVICE.as_ref().is_some_and(|r| r.is_match(t)) {
        return Some(Signature::Device);
    }
    None
}

/// May a signature of this kind start here, given the non-empty lines after it?
pub(super) fn allowed(kind: Signature, lines_after: usize) -> bool {
    match kind {
        Signature::Delimiter => true,
        Signature::LooseDelimiter => lines_after <= LOOSE_TAIL,
        Signature::Device => lines_after == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> Option<Signature> {
        kind(&Line {
            text: text.to_string(),
            ..Line::default()
        })
    }

    #[test]
    fn regex_compiles() {
        assert!(DEVICE.is_some());
    }

    #[test]
    fn delimiters() {
        assert_eq!(of("-- "), Some(Signature::Delimiter));
        assert_eq!(of("--\u{a0}"), Some(Signature::Delimiter));
        assert_eq!(of("--"), Some(Signature::LooseDelimiter));
        assert_eq!(of("---"), None);
        assert_eq!(of("a -- b"), None);
    }

    #[test]
    fn device_lines() {
        for line in [
            "Sent from my iPhone",
            "Sent from my Verizon Wireless BlackBerry",
            "Sent from Outlook",
            "Sent from Mail for Windows",
            "Get Outlook for iOS",
            "Get Outlook for Android",
            "Wysłane z iPhone'a",
            "Wysłano z mojego iPhone'a",
            "Wysłane z aplikacji Poczta w systemie Windows",
            "Von meinem iPhone gesendet",
            "Envoyé de mon iPhone",
            "Enviado desde mi iPhone",
        ] {
            assert_eq!(of(line), Some(Signature::Device), "{line}");
        }
        for line in [
            "Sent from my desk, is much easier then my mobile phone.",
            "I sent from my phone",
            "Sent",
        ] {
            assert_eq!(of(line), None, "{line}");
        }
    }

    #[test]
    fn how_much_may_follow() {
        assert!(allowed(Signature::Delimiter, 50));
        assert!(allowed(Signature::LooseDelimiter, 3));
        assert!(!allowed(Signature::LooseDelimiter, 20));
        assert!(allowed(Signature::Device, 0));
        assert!(!allowed(Signature::Device, 1));
    }
}
