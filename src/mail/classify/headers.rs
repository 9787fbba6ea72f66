//! Reading top-level header fields as text, the way the checks need them.

use mail_parser::Message;
use std::borrow::Cow;

/// The values of every top-level field called `name` (any case), in mail order,
/// unfolded and trimmed. Lossy UTF-8: a stray 8-bit byte must not hide a header.
pub(super) fn values<'a>(msg: &'a Message<'_>, name: &'a str) -> impl Iterator<Item = String> + 'a {
    msg.headers()
        .iter()
        .filter(move |h| h.name().eq_ignore_ascii_case(name))
        .filter_map(|h| {
            let bytes = msg
                .raw_message
                .get(h.offset_start() as usize..h.offset_end() as usize)?;
            Some(unfold(String::from_utf8_lossy(bytes)))
        })
}

/// The first field called `name`, if the mail has one.
pub(super) fn first(msg: &Message<'_>, name: &str) -> Option<String> {
    values(msg, name).next()
}

/// Folded lines become single spaces; surrounding blanks go.
fn unfold(text: Cow<'_, str>) -> String {
    let mut out = String::with_capacity(text.len());
    for piece in text.split(['\r', '\n']) {
        let piece = piece.trim_matches([' ', '\t']);
        if piece.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(piece);
    }
    out
}

/// The first token of a structured value: before any `;` parameter or `(` comment,
/// lower-cased (`Auto-Submitted: Auto-Replied; owner-email=...` -> `auto-replied`).
pub(super) fn keyword(value: &str) -> String {
    value
        .split([';', '('])
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The local part of an address (`MAILER-DAEMON@host` -> `mailer-daemon`), lower-cased.
pub(super) fn local_part(address: &str) -> String {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    match address.rfind('@') {
        Some(at) => address[..at].to_ascii_lowercase(),
        None => address.to_ascii_lowercase(),
    }
}

/// Every From address of the mail, bare.
pub(super) fn from_addresses<'a>(msg: &'a Message<'_>) -> impl Iterator<Item = &'a str> {
    msg.from()
        .into_iter()
        .flat_map(|a| a.iter())
        .filter_map(|a| a.address())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfolds_and_trims() {
        assert_eq!(
            unfold(" auto-replied;\r\n\towner=x\r\n".into()),
            "auto-replied; owner=x"
        );
    }

    #[test]
    fn keyword_drops_parameters_and_comments() {
        assert_eq!(keyword("Auto-Replied; owner-email=a@b"), "auto-replied");
        assert_eq!(keyword("auto-generated (vacation)"), "auto-generated");
        assert_eq!(keyword(""), "");
    }

    #[test]
    fn local_part_of_bare_and_bracketed() {
        assert_eq!(local_part("MAILER-DAEMON@mx.example"), "mailer-daemon");
        assert_eq!(local_part("<postmaster@x>"), "postmaster");
        assert_eq!(local_part("MAILER-DAEMON"), "mailer-daemon");
        assert_eq!(local_part("\"a@b\"@c"), "\"a@b\"");
    }
}
