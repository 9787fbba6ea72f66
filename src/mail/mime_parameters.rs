//! MIME parameters capped before mail-parser reads them.
//!
//! mail-parser 0.11 joins RFC 2231 continuations (`filename*0*=…; filename*1*=…`) by
//! copying the value so far for every piece, and looks every `name*=charset'lang'…` up
//! among the parameters before it: both quadratic (800,000 pieces took 19 s). A real
//! Content-Type or Content-Disposition field has a handful of parameters, so past
//! [`MAX_PARAMETERS`] of them, or past [`MAX_FIELD`] bytes, the rest of the field is
//! blanked. Byte for byte (what is cut becomes spaces, line ends stay), so offsets into
//! the mail, which a new ticket's attachments are streamed from, still hold.
//!
//! An attached message in base64 or quoted-printable is decoded and parsed by
//! mail-parser where no pass over the mail's bytes can reach:
//! [`check_attached_messages`] reads those first and refuses a mail whose attached
//! message would need the cap.

use mail_parser::{Encoding, MessageParser, MimeHeaders, PartType};

/// Parameters of one field that are read (the rest of the field is blanked).
pub const MAX_PARAMETERS: usize = 100;
/// Bytes of one field that are read.
pub const MAX_FIELD: usize = 16 << 10;
/// mail-parser parses attached messages nested this deep in encodings, no deeper.
const ENCODED_DEPTH: usize = 3;
/// Checking attached messages reads at most this many times the mail's size (a nested
/// message is read once more for every level it is nested in).
const READ_FACTOR: usize = 8;

/// Header fields whose values mail-parser reads as a type with parameters.
const CAPPED: &[&[u8]] = &[b"content-type", b"content-disposition"];

/// `raw` with every Content-Type and Content-Disposition field cut to the limits.
pub fn cap(raw: std::borrow::Cow<'_, [u8]>) -> std::borrow::Cow<'_, [u8]> {
    let cuts = cuts(&raw);
    if cuts.is_empty() {
        return raw;
    }
    let mut owned = raw.into_owned();
    for cut in cuts {
        blank(&mut owned, cut);
    }
    owned.into()
}

/// [`cap`] of a mail we own.
pub fn cap_in_place(raw: &mut [u8]) {
    for cut in cuts(raw) {
        blank(raw, cut);
    }
}

/// Why a capped mail cannot be read: an attached message that mail-parser would decode
/// and parse has a field over the limits (or they are nested absurdly deep).
pub fn check_attached_messages(raw: &[u8]) -> Result<(), String> {
    let mut budget = raw.len().saturating_mul(READ_FACTOR);
    check(raw, ENCODED_DEPTH, &mut budget)
}

/// `content` (capped) is parsed by mail-parser with `depth` levels of encoded messages
/// to go.
fn check(content: &[u8], depth: usize, budget: &mut usize) -> Result<(), String> {
    *budget = budget
        .checked_sub(content.len())
        .ok_or("attached messages are nested too deep")?;
    let types = type_tokens(content);
    if types.is_empty() {
        return Ok(());
    }
    for (inner, encoded) in attached_messages(content, &types) {
        match (encoded, depth) {
            // mail-parser leaves it unparsed.
            (true, 0) => {}
            // Decoded: beyond the reach of the cap.
            (true, _) if !cuts(&inner).is_empty() => {
                return Err(format!(
                    "an attached message has a Content-Type or Content-Disposition field \
                     over {MAX_PARAMETERS} parameters or {} KiB",
                    MAX_FIELD >> 10
                ));
            }
            (true, _) => check(&inner, depth - 1, budget)?,
            // Parsed where it stands (so capped); its own encoded messages matter.
            (false, _) => check(&inner, depth, budget)?,
        }
    }
    Ok(())
}

/// Where `message` and `digest` stand in the type of a Content-Type field (before its
/// parameters): the only words that make mail-parser read a part as a message.
fn type_tokens(raw: &[u8]) -> Vec<usize> {
    let mut found = Vec::new();
    if !names_a_message_type(raw) {
        return found;
    }
    for field in fields(raw, &[b"content-type"]) {
        let value = raw.get(field.value.clone()).unwrap_or_default();
        let end = type_end(value);
        for word in [&b"message"[..], b"digest"] {
            found.extend(
                value[..end]
                    .windows(word.len())
                    .enumerate()
                    .filter(|(_, w)| w.eq_ignore_ascii_case(word))
                    .map(|(i, _)| field.value.start + i),
            );
        }
    }
    found
}

/// Whether `message` or `digest` is anywhere in `raw`, in any case: found from the `g`
/// both have, so that a mail without either costs one fast scan, not a field search.
fn names_a_message_type(raw: &[u8]) -> bool {
    let is_at = |p: usize, word: &[u8], g: usize| {
        p.checked_sub(g)
            .and_then(|start| raw.get(start..start + word.len()))
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    };
    memchr::memchr2_iter(b'g', b'G', raw).any(|p| is_at(p, b"message", 5) || is_at(p, b"digest", 2))
}

/// Where the type of a Content-Type value ends: its first `;` outside a comment.
fn type_end(value: &[u8]) -> usize {
    let (mut depth, mut escaped) = (0usize, false);
    for (i, &b) in value.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if depth > 0 => escaped = true,
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b';' if depth == 0 => return i,
            _ => {}
        }
    }
    value.len()
}

/// The messages attached to `content` as mail-parser would parse them, decoded, and
/// whether they were encoded. Found by parsing a copy where each of `types` (the
/// `message` and `digest` of a type) is misspelt, so that no part is parsed as a
/// message: each is decoded by mail-parser's own decoder and read here instead.
fn attached_messages(content: &[u8], types: &[usize]) -> Vec<(Vec<u8>, bool)> {
    let mut opaque = content.to_vec();
    for &at in types {
        if let Some(b) = opaque.get_mut(at) {
            *b = b'x';
        }
    }
    let Some(msg) = MessageParser::default().parse(&opaque) else {
        return Vec::new();
    };
    let mut in_digest = vec![false; msg.parts.len()];
    for part in &msg.parts {
        let digest = part
            .content_type()
            .is_some_and(|ct| ct.ctype() == "multipart" && ct.subtype() == Some("xigest"));
        if let (true, PartType::Multipart(children)) = (digest, &part.body) {
            for &child in children {
                if let Some(flag) = in_digest.get_mut(child as usize) {
                    *flag = true;
                }
            }
        }
    }
    msg.parts
        .iter()
        .enumerate()
        .filter(|(i, part)| match part.content_type() {
            Some(ct) => {
                ct.ctype() == "xessage" && matches!(ct.subtype(), Some("rfc822" | "global"))
            }
            None => in_digest.get(*i).copied().unwrap_or(false),
        })
        .map(|(_, part)| {
            let encoded = part.encoding != Encoding::None;
            let body = part.offset_body as usize..part.offset_end as usize;
            // Its own bytes as they were: the misspellings inside it undone.
            let touched = types.iter().any(|at| body.contains(at));
            let inner = match (touched, content.get(body)) {
                (false, _) | (_, None) => part.contents().to_vec(),
                (true, Some(original)) if encoded => decode(part.encoding, original),
                (true, Some(original)) => original.to_vec(),
            };
            (inner, encoded)
        })
        .collect()
}

/// `body` decoded from `encoding` by mail-parser's own decoder.
fn decode(encoding: Encoding, body: &[u8]) -> Vec<u8> {
    let name = match encoding {
        Encoding::Base64 => "base64",
        Encoding::QuotedPrintable => "quoted-printable",
        Encoding::None => return body.to_vec(),
    };
    let mut single =
        format!("Content-Transfer-Encoding: {name}\nContent-Type: application/octet-stream\n\n")
            .into_bytes();
    single.extend_from_slice(body);
    MessageParser::default()
        .parse(&single)
        .and_then(|m| m.parts.first().map(|p| p.contents().to_vec()))
        .unwrap_or_default()
}

/// One header field: where its name starts and where its value (folded lines
/// included, the final line end not) lies.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    start: usize,
    value: std::ops::Range<usize>,
}

/// The byte ranges to blank so that every capped field is within the limits.
fn cuts(raw: &[u8]) -> Vec<std::ops::Range<usize>> {
    // No field of a mail this small with this few `;` can be over either limit.
    if raw.len() <= MAX_FIELD && memchr::memchr_iter(b';', raw).nth(MAX_PARAMETERS).is_none() {
        return Vec::new();
    }
    fields(raw, CAPPED)
        .into_iter()
        .filter_map(|f| {
            let value = raw.get(f.value.clone())?;
            let by_size = MAX_FIELD.min(value.len());
            let by_count = value
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b';')
                .nth(MAX_PARAMETERS)
                .map_or(value.len(), |(i, _)| i);
            let keep = by_size.min(by_count);
            // What was blanked before is no cut (so a capped mail needs none).
            let left_out = value.get(keep..).unwrap_or_default();
            left_out
                .iter()
                .any(|b| !b.is_ascii_whitespace())
                .then(|| f.value.start + keep..f.value.end)
        })
        .collect()
}

/// Every field named one of `names` (lower case) wherever a line could start one for
/// mail-parser: at any line start, after blanks, with blanks anywhere in the name (it
/// skips them) — in a header block or not, which only ever finds more.
fn fields(raw: &[u8], names: &[&[u8]]) -> Vec<Field> {
    let mut found = Vec::new();
    let mut line = 0;
    while line < raw.len() {
        let next_line = next_line(raw, line);
        match value_start(raw, line, next_line, names) {
            Some(value_start) => {
                let end = field_end(raw, line);
                found.push(Field {
                    start: line,
                    value: value_start..end,
                });
                // The field's folded lines are its value, and a name cannot start in one.
                line = next_line.max(end);
            }
            None => line = next_line,
        }
    }
    found
}

/// Where the line after the one starting at `at` starts (or the end).
fn next_line(raw: &[u8], at: usize) -> usize {
    raw.get(at..)
        .and_then(|r| memchr::memchr(b'\n', r))
        .map_or(raw.len(), |p| at + p + 1)
}

/// Where the value starts when the line at `line` names one of `names` as mail-parser
/// reads a header name: blanks skipped anywhere, a `:` before the name ignored.
fn value_start(raw: &[u8], line: usize, line_end: usize, names: &[&[u8]]) -> Option<usize> {
    let mut name = [0u8; 32];
    let mut len = 0;
    for (i, &b) in raw.get(line..line_end)?.iter().enumerate() {
        match b {
            b':' if len > 0 => {
                let name = name.get(..len)?;
                return names.contains(&name).then_some(line + i + 1);
            }
            b':' => {}
            b if b.is_ascii_whitespace() => {}
            b => {
                *name.get_mut(len)? = b.to_ascii_lowercase();
                len += 1;
                // Most lines are told apart by their first letter.
                if !names.iter().any(|n| n.get(..len) == name.get(..len)) {
                    return None;
                }
            }
        }
    }
    None
}

/// The end of the field starting at `line`: its last line end that is not followed by
/// a blank (a folded line), excluded; or the end of the mail.
fn field_end(raw: &[u8], line: usize) -> usize {
    let mut at = line;
    loop {
        let Some(p) = raw.get(at..).and_then(|r| memchr::memchr(b'\n', r)) else {
            return raw.len();
        };
        let newline = at + p;
        if !matches!(raw.get(newline + 1), Some(b' ' | b'\t')) {
            return newline;
        }
        at = newline + 1;
    }
}

/// Every byte of `range` but line ends becomes a space.
fn blank(raw: &mut [u8], range: std::ops::Range<usize>) {
    if let Some(bytes) = raw.get_mut(range) {
        for b in bytes.iter_mut().filter(|b| !matches!(b, b'\r' | b'\n')) {
            *b = b' ';
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_type_is_found_in_any_case_and_only_then() {
        for raw in [
            &b"Content-Type: MeSsAgE/rfc822"[..],
            b"x: multipart/DIGEST",
            b"message",
        ] {
            assert!(
                names_a_message_type(raw),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        for raw in [
            &b"Content-Type: text/plain; messag=e"[..],
            b"digesg",
            b"g",
            b"",
        ] {
            assert!(
                !names_a_message_type(raw),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }
    use mail_parser::MimeHeaders;
    use std::fmt::Write as _;

    fn pieces(n: usize) -> String {
        let mut out = String::from("filename*0*=utf-8''a");
        for i in 1..n {
            let _ = write!(out, ";\r\n filename*{i}*=b");
        }
        out
    }

    fn mail(disposition: &str) -> Vec<u8> {
        format!(
            "From: a@b.example\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
             --b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; {disposition}\r\n\r\nx\r\n--b--\r\n"
        )
        .into_bytes()
    }

    fn file_name(raw: &[u8]) -> Option<String> {
        let msg = MessageParser::default().parse(raw)?;
        msg.attachments()
            .next()?
            .attachment_name()
            .map(String::from)
    }

    #[test]
    fn fields_within_the_limits_are_left_alone() {
        let raw = mail(&pieces(MAX_PARAMETERS));
        assert!(cuts(&raw).is_empty());
        let name = file_name(&raw).unwrap_or_default();
        assert_eq!(name.len(), MAX_PARAMETERS, "{name}");
    }

    #[test]
    fn continuations_past_the_limit_are_blanked_byte_for_byte() {
        let raw = mail(&pieces(5_000));
        let capped = cap(raw.as_slice().into());
        assert_eq!(capped.len(), raw.len());
        // Line ends stay where they were.
        let ends = |r: &[u8]| -> Vec<usize> {
            r.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i)
                .collect()
        };
        assert_eq!(ends(&capped), ends(&raw));
        // The first pieces are read; the attachment's content is where it was.
        let name = file_name(&capped).unwrap_or_default();
        // The first 100 pieces.
        assert_eq!(name, format!("a{}", "b".repeat(MAX_PARAMETERS - 1)));
        let msg = MessageParser::default().parse(capped.as_ref());
        let pdf = msg.as_ref().and_then(|m| m.attachments().next());
        assert_eq!(pdf.map(|p| p.contents()), Some(&b"x"[..]));
    }

    #[test]
    fn a_long_field_is_cut_at_the_byte_limit() {
        let raw = mail(&format!("filename=\"{}.pdf\"", "n".repeat(MAX_FIELD)));
        let capped = cap(raw.as_slice().into());
        let name = file_name(&capped).unwrap_or_default();
        let read = name.trim_end();
        assert!(
            read.len() < MAX_FIELD && read.starts_with("nnnn"),
            "{}",
            read.len()
        );
        assert!(cuts(&capped).is_empty(), "capped once is enough");
    }

    #[test]
    fn names_are_found_as_mail_parser_reads_them() {
        let semicolons = ";".repeat(MAX_PARAMETERS + 1);
        for line in [
            format!("Content-Type: text/plain{semicolons}x"),
            format!("CONTENT-DISPOSITION:attachment{semicolons}x"),
            format!("  Con tent-Type :text/plain{semicolons}x"),
            format!(":Content-Type: text/plain{semicolons}x"),
        ] {
            let raw = format!("{line}\r\nX: y\r\n");
            let cut = cuts(raw.as_bytes());
            assert_eq!(cut.len(), 1, "{line}");
            assert_eq!(&raw[cut[0].clone()], ";x\r", "{line}");
        }
        for line in [
            format!("Content-Typo: x{semicolons}"),
            format!("X-Content-Type: x{semicolons}"),
            format!("Subject: Content-Type: x{semicolons}"),
        ] {
            assert!(cuts(format!("{line}\r\n").as_bytes()).is_empty(), "{line}");
        }
    }

    #[test]
    fn a_folded_field_is_cut_across_its_lines_and_ends_where_mail_parser_ends_it() {
        let raw = format!(
            "Content-Type: text/plain{}\r\n\tq=1;\r\n r=2\r\nX-Next: kept;;;\r\n",
            ";".repeat(MAX_PARAMETERS)
        );
        let capped = cap(raw.as_bytes().into());
        let text = String::from_utf8_lossy(&capped);
        assert!(
            text.contains("\r\n\tq=1 \r\n    \r\nX-Next: kept;;;\r\n"),
            "{text}"
        );
    }

    /// A mail with `inner` attached as a message in `encoding` (quoted-printable hides
    /// every line's first letter, as `=43` for `C`).
    fn encoded_message(inner: &[u8], encoding: &str) -> Vec<u8> {
        use base64::Engine as _;
        let text = String::from_utf8_lossy(inner);
        let body = match encoding {
            "base64" => base64::engine::general_purpose::STANDARD
                .encode(inner)
                .as_bytes()
                .chunks(76)
                .map(|l| format!("{}\r\n", String::from_utf8_lossy(l)))
                .collect::<String>(),
            "quoted-printable" => text
                .replace('=', "=3D")
                .lines()
                .map(|l| match l.chars().next() {
                    Some(c) if c.is_ascii_alphabetic() => {
                        format!("={:02X}{}\r\n", c as u32, &l[1..])
                    }
                    _ => format!("{l}\r\n"),
                })
                .collect(),
            _ => text.into_owned(),
        };
        // A boundary of its own at every level.
        let b = format!("o{}", inner.len());
        format!(
            "From: a@b.example\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary={b}\r\n\r\n\
             --{b}\r\nContent-Type: text/plain\r\n\r\nforwarded\r\n\
             --{b}\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n{body}--{b}--\r\n"
        )
        .into_bytes()
    }

    /// As decide reads a mail: capped, then its attached messages checked.
    fn checked(raw: &[u8]) -> Result<(), String> {
        check_attached_messages(&cap(raw.into()))
    }

    #[test]
    fn an_encoded_attached_message_over_the_limits_is_refused() {
        let hostile = mail(&pieces(5_000));
        for encoding in ["base64", "quoted-printable"] {
            let raw = encoded_message(&hostile, encoding);
            let why = checked(&raw).expect_err(encoding);
            assert!(why.contains("attached message"), "{why}");
        }
        // Unencoded, it is read from the mail's own bytes, and capped there.
        assert_eq!(checked(&encoded_message(&hostile, "7bit")), Ok(()));
        // Within the limits, encoded or nested twice, it is read.
        let fine = mail(&pieces(3));
        assert_eq!(checked(&encoded_message(&fine, "base64")), Ok(()));
        let twice = encoded_message(&encoded_message(&hostile, "base64"), "base64");
        assert!(checked(&twice).is_err());
        let twice_fine = encoded_message(&encoded_message(&fine, "base64"), "base64");
        assert_eq!(checked(&twice_fine), Ok(()));
        // Encoded inside an unencoded one.
        let inside = encoded_message(&encoded_message(&hostile, "base64"), "8bit");
        assert!(checked(&inside).is_err());
        // Four levels of encoding down, mail-parser no longer parses it.
        let mut deep = hostile.clone();
        for _ in 0..4 {
            deep = encoded_message(&deep, "base64");
        }
        assert_eq!(checked(&deep), Ok(()));
    }

    #[test]
    fn messages_nested_absurdly_deep_are_refused() {
        let mut nested = mail(&pieces(2));
        for _ in 0..3 {
            nested = encoded_message(&nested, "7bit");
        }
        assert_eq!(checked(&nested), Ok(()));
        for _ in 0..20 {
            nested = encoded_message(&nested, "7bit");
        }
        assert_eq!(
            checked(&nested),
            Err("attached messages are nested too deep".into())
        );
    }

    #[test]
    fn a_digest_part_is_a_message_without_saying_so() {
        use base64::Engine as _;
        let hostile = base64::engine::general_purpose::STANDARD.encode(mail(&pieces(5_000)));
        let raw = format!(
            "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{hostile}\r\n--d--\r\n"
        );
        assert!(checked(raw.as_bytes()).is_err());
    }
}
