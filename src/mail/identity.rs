//! Which mail is which: the identity the ledger keys on.
//!
//! Some ERP systems, scanners and old clients give different mails the same Message-ID,
//! so the Message-ID alone would call a new reply a duplicate. The identity is the
//! Message-ID plus a hash of the bytes after the header block: stable across copies in
//! two mailboxes and re-appends (servers add headers, never touch the body), unlike a
//! hash of the posted JSON, which changes with the config and the cleaning.

use sha2::{Digest, Sha256};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MailId {
    /// `<local@domain>`, trimmed; `None` when the mail has none.
    pub message_id: Option<String>,
    /// Hex SHA-256 of the body bytes (line ends as LF, trailing white space cut); for a
    /// mail without Message-ID also of its From, Date and Subject, so two "Thanks!" from
    /// different people stay two mails.
    pub content: String,
    /// For a mail without Message-ID: the key the redb ledger (0.1) used, `sha256:` of
    /// the whole raw mail, so an upgrade finds what it recorded.
    pub legacy: Option<String>,
}

impl MailId {
    /// The identity of a raw mail whose parsed Message-ID (brackets optional) is given.
    pub fn of(raw: &[u8], message_id: Option<&str>, from: &str, date: &str, subject: &str) -> Self {
        let mut hash = Sha256::new();
        hash.update(normalized_body(raw));
        let message_id = message_id.map(message_id_key).filter(|id| id.len() > 2);
        let legacy = if message_id.is_none() {
            for part in [from, date, subject] {
                hash.update([0u8]);
                hash.update(part.trim().as_bytes());
            }
            Some(format!("sha256:{}", hex::encode(Sha256::digest(raw))))
        } else {
            None
        };
        MailId {
            message_id,
            content: hex::encode(hash.finalize()),
            legacy,
        }
    }

    /// The first 12 hex digits of the content hash, for logs and `ledger show`.
    pub fn short_content(&self) -> &str {
        self.content.get(..12).unwrap_or(&self.content)
    }
}

impl fmt::Display for MailId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message_id {
            Some(id) => write!(f, "{id} (body sha256:{})", self.short_content()),
            None => write!(f, "(no Message-ID) sha256:{}", self.short_content()),
        }
    }
}

/// The one spelling of a Message-ID: trimmed, in angle brackets.
pub fn message_id_key(id: &str) -> String {
    let id = id.trim();
    let bare = id
        .strip_prefix('<')
        .and_then(|i| i.strip_suffix('>'))
        .unwrap_or(id);
    format!("<{}>", bare.trim())
}

/// The bytes after the first empty line, with CR removed and trailing white space cut
/// (a CR-only mail's line ends read as such first).
fn normalized_body(raw: &[u8]) -> Vec<u8> {
    let raw = super::normalize_line_ends(raw);
    let raw = raw.as_ref();
    let start = header_end(raw).unwrap_or(raw.len());
    let mut body: Vec<u8> = raw[start..]
        .iter()
        .copied()
        .filter(|&b| b != b'\r')
        .collect();
    while body.last().is_some_and(|b| b.is_ascii_whitespace()) {
        body.pop();
    }
    body
}

/// Where the body starts: after the first `\n\n` (CR ignored), or `None` without one.
fn header_end(raw: &[u8]) -> Option<usize> {
    let mut newline_at: Option<usize> = None;
    for (i, &b) in raw.iter().enumerate() {
        match b {
            b'\n' if newline_at.is_some() => return Some(i + 1),
            b'\n' => newline_at = Some(i),
            b'\r' => {}
            _ => newline_at = None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(raw: &str, mid: Option<&str>) -> MailId {
        MailId::of(raw.as_bytes(), mid, "a@x", "Mon, 1 Jan 2026", "Hi")
    }

    #[test]
    fn copies_with_other_headers_and_line_ends_are_the_same_mail() {
        let a = id("Received: one\r\nSubject: Hi\r\n\r\nHello\r\n", Some("m@x"));
        let b = id(
            "Delivered-To: b\nReceived: two\nSubject: Hi\n\nHello\n\n",
            Some("<m@x>"),
        );
        assert_eq!(a, b);
        assert_eq!(a.message_id.as_deref(), Some("<m@x>"));
        assert_eq!(a.legacy, None);
    }

    #[test]
    fn a_reused_message_id_with_another_body_is_another_mail() {
        let a = id("Subject: Hi\r\n\r\nInvoice 1\r\n", Some("same@erp"));
        let b = id("Subject: Hi\r\n\r\nInvoice 2\r\n", Some("same@erp"));
        assert_ne!(a, b);
        assert_eq!(a.message_id, b.message_id);
    }

    #[test]
    fn cr_only_mails_that_reuse_a_message_id_stay_two_mails() {
        let a = id("Subject: Hi\r\rInvoice 1\r", Some("same@erp"));
        let b = id("Subject: Hi\r\rInvoice 2\r", Some("same@erp"));
        assert_ne!(a, b);
        assert_eq!(a, id("Subject: Hi\r\n\r\nInvoice 1\r\n", Some("same@erp")));
    }

    #[test]
    fn without_a_message_id_the_sender_and_date_count() {
        let raw = b"Subject: Hi\r\n\r\nThanks!\r\n";
        let a = MailId::of(raw, None, "a@x", "Mon, 1 Jan 2026", "Hi");
        let b = MailId::of(raw, None, "b@x", "Mon, 1 Jan 2026", "Hi");
        assert_ne!(a, b);
        assert!(
            a.legacy
                .as_deref()
                .is_some_and(|l| l.starts_with("sha256:"))
        );
        assert_eq!(
            MailId::of(raw, Some("  "), "a@x", "Mon, 1 Jan 2026", "Hi"),
            a
        );
    }

    #[test]
    fn the_body_starts_after_the_first_empty_line() {
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), Some(8));
        assert_eq!(header_end(b"A: b\n\nbody"), Some(6));
        assert_eq!(header_end(b"A: b\r\nC: d"), None);
        assert_eq!(normalized_body(b"A: b\r\n\r\nx\r\ny \r\n\r\n"), b"x\ny");
    }

    #[test]
    fn message_ids_are_spelled_one_way() {
        assert_eq!(message_id_key("abc@x"), "<abc@x>");
        assert_eq!(message_id_key(" <abc@x> "), "<abc@x>");
        assert_eq!(message_id_key("< abc@x >"), "<abc@x>");
    }
}
