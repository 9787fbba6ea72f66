//! Modified UTF-7 (RFC 3501 §5.1.3), the spelling of folder names on the wire: printable
//! ASCII stands for itself (`&` as `&-`), anything else is UTF-16 in base64 with `,`
//! for `/`, between `&` and `-`. "Obsłużone" is `Obs&AUI-u&AXw-one`.

use base64::Engine;
use base64::alphabet::Alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

fn engine() -> Option<GeneralPurpose> {
    let alphabet =
        Alphabet::new("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").ok()?;
    let config = GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true);
    Some(GeneralPurpose::new(&alphabet, config))
}

/// A folder name as the server wants it.
pub(crate) fn encode(name: &str) -> String {
    let Some(engine) = engine() else {
        return name.to_string();
    };
    let mut out = String::with_capacity(name.len());
    let mut wide: Vec<u16> = Vec::new();
    let flush = |wide: &mut Vec<u16>, out: &mut String| {
        if !wide.is_empty() {
            let bytes: Vec<u8> = wide.iter().flat_map(|u| u.to_be_bytes()).collect();
            out.push('&');
            out.push_str(&engine.encode(bytes));
            out.push('-');
            wide.clear();
        }
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut wide, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            wide.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut wide, &mut out);
    out
}

/// A folder name as the server sent it, for people; `None` when it is not valid
/// modified UTF-7 (a server that sends raw UTF-8 is then shown as sent).
pub(crate) fn decode(wire: &str) -> Option<String> {
    let engine = engine()?;
    let mut out = String::with_capacity(wire.len());
    let mut rest = wire;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find('-')?;
        let encoded = &after[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let bytes = engine.decode(encoded).ok()?;
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .collect();
            out.push_str(&String::from_utf16(&units).ok()?);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polish_and_rfc_examples_round_trip() {
        let cases = [
            ("Obsłużone", "Obs&AUI-u&AXw-one"),
            ("Odpowiedzi klientów", "Odpowiedzi klient&APM-w"),
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("Tom & Jerry", "Tom &- Jerry"),
            ("INBOX", "INBOX"),
            (
                "Zażółć gęślą jaźń",
                "Za&AXwA8wFCAQc- g&ARkBWw-l&AQU- ja&AXoBRA-",
            ),
        ];
        for (name, wire) in cases {
            assert_eq!(encode(name), wire, "{name}");
            assert_eq!(decode(wire).as_deref(), Some(name), "{wire}");
        }
    }

    #[test]
    fn emoji_need_surrogate_pairs() {
        let name = "Support 📬";
        assert_eq!(decode(&encode(name)).as_deref(), Some(name));
    }

    #[test]
    fn broken_wire_names_are_not_decoded() {
        assert_eq!(decode("A&AUI"), None, "no closing -");
        assert_eq!(decode("A&AU-"), None, "odd bytes");
        assert_eq!(decode("plain/name"), Some("plain/name".into()));
    }
}
