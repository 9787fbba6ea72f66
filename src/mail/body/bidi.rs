//! Unicode bidirectional controls, stripped from bodies and attachment names.
//!
//! An override or isolate reorders what an agent sees without changing the text
//! ("Trojan Source", CVE-2021-42574): `invoice` RLO `fdp.exe` reads as `invoiceexe.pdf`,
//! and a reply can show a sentence other than the one it contains. The helpdesk's
//! agents must read what the customer wrote, so these controls go, marks included.

use regex::Regex;
use std::sync::LazyLock;

/// LRE, RLE, PDF, LRO, RLO (U+202A–U+202E), the isolates (U+2066–U+2069), LRM, RLM
/// and the Arabic letter mark.
pub(super) fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// The same set as a regex: its byte prefilter scans a long body far faster than a
/// loop over its characters.
static CONTROLS: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new("[\u{202A}-\u{202E}\u{2066}-\u{2069}\u{200E}\u{200F}\u{061C}]").ok()
});

/// `s` without bidi controls, reusing it when it has none.
pub(super) fn strip(s: String) -> String {
    let found = match CONTROLS.as_ref() {
        Some(re) => re.is_match(&s),
        None => s.contains(is_bidi_control),
    };
    if found {
        s.chars().filter(|&c| !is_bidi_control(c)).collect()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_regex_compiles() {
        assert!(CONTROLS.is_some());
    }

    #[test]
    fn every_control_goes_and_nothing_else() {
        let controls = "\u{202A}\u{202B}\u{202C}\u{202D}\u{202E}\u{2066}\u{2067}\u{2068}\u{2069}\u{200E}\u{200F}\u{061C}";
        assert_eq!(strip(format!("a{controls}b")), "ab");
        assert_eq!(strip("invoice\u{202E}fdp.exe".into()), "invoicefdp.exe");
        let kept = "Zażółć שלום مرحبا \u{200B}\u{200D}";
        assert_eq!(strip(kept.into()), kept);
    }
}
