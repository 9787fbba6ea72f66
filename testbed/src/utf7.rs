//! IMAP's modified UTF-7 (RFC 3501 §5.1.3), the wire form of mailbox names:
//! Cyrus and Courier show `Obsłużone` as `Obs&AUI-u&AXw-one`, so tests
//! create folders by one form and compare listings in the other.

use anyhow::{Result, bail};

/// The base64 alphabet of modified UTF-7: `,` instead of `/`, no padding.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// UTF-8 to the wire form: printable ASCII stays, `&` becomes `&-`, the rest
/// is UTF-16BE in modified base64 between `&` and `-`.
pub fn encode_mutf7(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut pending, &mut out);
    out
}

fn flush(pending: &mut Vec<u16>, out: &mut String) {
    if pending.is_empty() {
        return;
    }
    let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
    out.push('&');
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out.push('-');
    pending.clear();
}

/// The wire form back to UTF-8; fails on malformed input (an unterminated
/// `&…`, a bad base64 character, or invalid UTF-16).
pub fn decode_mutf7(wire: &str) -> Result<String> {
    let mut out = String::with_capacity(wire.len());
    let mut rest = wire;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('-') else {
            bail!("unterminated `&` in mailbox name {wire:?}");
        };
        let encoded = &after[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            out.push_str(&decode_run(encoded, wire)?);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn decode_run(encoded: &str, wire: &str) -> Result<String> {
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut bytes = Vec::new();
    for c in encoded.bytes() {
        let Some(value) = ALPHABET.iter().position(|a| *a == c) else {
            bail!("bad character {:?} in mailbox name {wire:?}", char::from(c));
        };
        bits = (bits << 6) | value as u32;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            bytes.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    if bytes.len() % 2 != 0 {
        bail!("odd UTF-16 length in mailbox name {wire:?}");
    }
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect();
    String::from_utf16(&units).map_err(|_| anyhow::anyhow!("bad UTF-16 in mailbox name {wire:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_rfc_example_and_polish() {
        assert_eq!(encode_mutf7("Obsłużone"), "Obs&AUI-u&AXw-one");
        assert_eq!(
            decode_mutf7("Obs&AUI-u&AXw-one").ok().as_deref(),
            Some("Obsłużone")
        );
        assert_eq!(
            encode_mutf7("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(
            decode_mutf7("~peter/mail/&U,BTFw-/&ZeVnLIqe-")
                .ok()
                .as_deref(),
            Some("~peter/mail/台北/日本語")
        );
        // A name often quoted for Obsłużone has one character too many.
        assert_eq!(
            decode_mutf7("Obs&AUIBfA-u&AXw-one").ok().as_deref(),
            Some("Obsłżużone")
        );
        assert_eq!(encode_mutf7("A&B"), "A&-B");
        assert_eq!(decode_mutf7("A&-B").ok().as_deref(), Some("A&B"));
        for name in ["INBOX.Obsłużone.2026", "😀 x", "żółw&ą"] {
            assert_eq!(
                decode_mutf7(&encode_mutf7(name)).ok().as_deref(),
                Some(name)
            );
        }
        assert!(decode_mutf7("&AUIB").is_err());
        assert!(decode_mutf7("&A!-").is_err());
    }
}
