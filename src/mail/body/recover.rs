//! The text of a body part, including parts mail-parser could not decode.
//!
//! When a MIME structure is broken (a missing inner boundary, as Exchange
//! sometimes writes), mail-parser keeps the part raw and flags it; its
//! quoted-printable or base64 is decoded here, then its charset.

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{Message, MessagePart, MimeHeaders, PartType};
use std::borrow::Cow;
use std::collections::HashSet;

/// The decoded text of a text/* part of `msg`; `None` for other parts.
pub(super) fn text<'a>(msg: &Message<'_>, part: &'a MessagePart<'_>) -> Option<Cow<'a, str>> {
    let (PartType::Text(t) | PartType::Html(t)) = &part.body else {
        return None;
    };
    if !part.is_encoding_problem {
        return Some(Cow::Borrowed(t.as_ref()));
    }
    // The raw part runs on to the end of the message: stop at an enclosing boundary.
    let raw = until_boundary(msg, t);
    let encoding = part
        .content_transfer_encoding()
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let bytes = match encoding.as_str() {
        "quoted-printable" => quoted_printable_decode(raw.as_bytes()),
        "base64" => base64_decode(raw.as_bytes()),
        _ => None,
    };
    let Some(bytes) = bytes else {
        return Some(Cow::Borrowed(raw));
    };
    let decoder = part
        .content_type()
        .and_then(|ct| ct.attribute("charset"))
        .and_then(|c| charset_decoder(c.as_bytes()));
    Some(Cow::Owned(match decoder {
        Some(decode) => decode(&bytes),
        None => String::from_utf8_lossy(&bytes).into_owned(),
    }))
}

/// `text` up to the first line that is a MIME boundary of `msg` (one hash probe per
/// line, however many boundaries a hostile mail declares).
fn until_boundary<'a>(msg: &Message<'_>, text: &'a str) -> &'a str {
    let boundaries: HashSet<&str> = msg
        .parts
        .iter()
        .filter_map(|p| p.content_type()?.attribute("boundary"))
        .filter(|b| !b.is_empty())
        .collect();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let is_boundary = line.trim_end().strip_prefix("--").is_some_and(|rest| {
            boundaries.contains(rest)
                || rest
                    .strip_suffix("--")
                    .is_some_and(|b| boundaries.contains(b))
        });
        if is_boundary {
            return text.get(..offset).unwrap_or(text);
        }
        offset += line.len();
    }
    text
}

/// Whether a part is HTML by its real content type (mail-parser types a raw,
/// undecodable text/html part as plain text).
pub(super) fn is_html(part: &MessagePart<'_>) -> bool {
    match &part.body {
        PartType::Html(_) => true,
        PartType::Text(_) => part.is_content_type("text", "html"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    #[test]
    fn raw_quoted_printable_html_is_decoded() {
        // The inner alternative never closes: mail-parser leaves the HTML raw.
        let raw = concat!(
            "Content-Type: multipart/related; boundary=\"outer\"\r\n\r\n",
            "--outer\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n",
            "--inner\r\nContent-Type: text/plain; charset=\"windows-1250\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nDzie=F1 dobry\r\n",
            "--inner\r\nContent-Type: text/html; charset=\"windows-1250\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p class=3D\"x\">Dzie=F1 dobry</p>\r\n",
            "--outer--\r\n"
        );
        let msg = MessageParser::default()
            .parse(raw.as_bytes())
            .expect("test mail parses");
        let html = msg.parts.iter().find(|p| is_html(p)).expect("an html part");
        assert_eq!(
            text(&msg, html).as_deref().map(str::trim),
            Some("<p class=\"x\">Dzień dobry</p>")
        );
    }
}
