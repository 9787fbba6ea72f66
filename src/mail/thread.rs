//! The mails a reply answers: the Message-IDs of its In-Reply-To and References.
//!
//! They find the ticket of a reply whose subject lost its tag, and tell `verify_sender`
//! that a reply belongs to a thread already posted to the ticket. A References header
//! can name any number of mails; only the newest [`MAX_REFERENCES`] are read, so a
//! hostile one cannot make the bridge ask its ledger a hundred thousand questions.

use crate::mail::identity::message_id_key;
use mail_parser::Message;

/// Message-IDs read from one mail, at most (a real thread names a few dozen).
pub(crate) const MAX_REFERENCES: usize = 100;

/// In-Reply-To first, then References newest first; spelled `<id>`, without repeats.
pub(crate) fn references(msg: &Message<'_>) -> Vec<String> {
    // mail-parser's accessors index the root part; a hand-made empty Message has none.
    if msg.parts.is_empty() {
        return Vec::new();
    }
    let in_reply_to = msg.in_reply_to().as_text_list().unwrap_or_default();
    let references = msg.references().as_text_list().unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    let ids = in_reply_to.iter().chain(references.iter().rev());
    for id in ids.take(2 * MAX_REFERENCES) {
        if out.len() == MAX_REFERENCES {
            break;
        }
        let key = message_id_key(id);
        if key.len() > 2 && !out.contains(&key) {
            out.push(key);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn refs(headers: &str) -> Vec<String> {
        let raw = format!("{headers}Subject: x\r\n\r\nbody\r\n");
        let msg = MessageParser::default()
            .parse(raw.as_bytes())
            .expect("test mail parses");
        references(&msg)
    }

    #[test]
    fn in_reply_to_first_then_references_newest_first() {
        assert_eq!(
            refs("In-Reply-To: <c@x>\r\nReferences: <a@x> <b@x>\r\n <c@x>\r\n"),
            ["<c@x>", "<b@x>", "<a@x>"]
        );
        assert_eq!(refs("References: <a@x>\r\n"), ["<a@x>"]);
        assert!(refs("").is_empty());
        assert!(references(&Message::default()).is_empty());
    }

    #[test]
    fn a_flood_of_references_is_cut_to_the_newest() {
        let many: String = (0..10_000).map(|i| format!(" <r{i}@x>")).collect();
        let got = refs(&format!("In-Reply-To: <p@x>\r\nReferences:{many}\r\n"));
        assert_eq!(got.len(), MAX_REFERENCES);
        assert_eq!(got[0], "<p@x>");
        assert_eq!(got[1], "<r9999@x>");
    }
}
