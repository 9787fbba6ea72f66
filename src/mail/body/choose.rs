//! Which MIME parts become the body.
//!
//! mail-parser lists body parts per JMAP (RFC 8621 §4.1.4) and fills a
//! missing alternative with the other one, so `html_body` names a text/plain
//! part when there is no HTML. The real part types decide here: a text-only
//! mail is PLAIN even with `prefer = "html"`.

use super::{BodyType, recover};
use crate::mail::content::Prefer;
use mail_parser::{Message, MimeHeaders, PartType};

/// The parts that make the body, in order, and how they are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub body_type: BodyType,
    /// Indexes into the message's parts (text/* parts only; inline images are attachments).
    pub parts: Vec<u32>,
}

/// Chooses the body parts of `msg`: HTML when preferred and present, else text,
/// else HTML to be converted to text. No text part at all gives no parts.
pub fn choose(msg: &Message<'_>, prefer: Prefer) -> Choice {
    let textual = |ids: &[u32]| -> Vec<u32> {
        ids.iter()
            .copied()
            .filter(|&id| {
                matches!(
                    msg.part(id).map(|p| &p.body),
                    Some(PartType::Text(_) | PartType::Html(_))
                )
            })
            .collect()
    };
    let is_html = |id: &u32| msg.part(*id).is_some_and(recover::is_html);
    let html = textual(&msg.html_body);
    let text = textual(&msg.text_body);
    if prefer == Prefer::Html {
        if html.iter().any(is_html) {
            return Choice {
                body_type: BodyType::Html,
                parts: html,
            };
        }
        if let Some(id) = undecoded_html_alternative(msg, &text) {
            return Choice {
                body_type: BodyType::Html,
                parts: vec![id],
            };
        }
    }
    Choice {
        body_type: BodyType::Plain,
        parts: if text.is_empty() { html } else { text },
    }
}

/// The text/html sibling of a text body part that mail-parser left undecoded
/// (and so listed as an attachment, not as the HTML body).
fn undecoded_html_alternative(msg: &Message<'_>, text: &[u32]) -> Option<u32> {
    msg.parts.iter().find_map(|p| {
        let PartType::Multipart(children) = &p.body else {
            return None;
        };
        if !p.is_content_type("multipart", "alternative")
            || !children.iter().any(|c| text.contains(c))
        {
            return None;
        }
        children.iter().copied().find(|&c| {
            msg.part(c)
                .is_some_and(|part| part.is_encoding_problem && recover::is_html(part))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn choice(raw: &str, prefer: Prefer) -> Choice {
        let msg = MessageParser::default()
            .parse(raw.as_bytes())
            .expect("test mail parses");
        choose(&msg, prefer)
    }

    const ALTERNATIVE: &str = "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nplain\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--b--\r\n";

    #[test]
    fn html_when_preferred_and_present() {
        assert_eq!(
            choice(ALTERNATIVE, Prefer::Html),
            Choice {
                body_type: BodyType::Html,
                parts: vec![2]
            }
        );
        assert_eq!(
            choice(ALTERNATIVE, Prefer::Plain),
            Choice {
                body_type: BodyType::Plain,
                parts: vec![1]
            }
        );
    }

    #[test]
    fn text_only_mail_is_plain_even_when_html_is_preferred() {
        let raw = "Subject: x\r\nContent-Type: text/plain\r\n\r\nhello\r\n";
        assert_eq!(
            choice(raw, Prefer::Html),
            Choice {
                body_type: BodyType::Plain,
                parts: vec![0]
            }
        );
    }

    #[test]
    fn html_only_mail_with_plain_preferred_is_converted() {
        let raw = "Subject: x\r\nContent-Type: text/html\r\n\r\n<p>hello</p>\r\n";
        let c = choice(raw, Prefer::Plain);
        assert_eq!(
            c,
            Choice {
                body_type: BodyType::Plain,
                parts: vec![0]
            }
        );
    }

    #[test]
    fn no_text_part_gives_no_parts() {
        let raw = "Subject: x\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n\r\nAAAA\r\n";
        assert!(choice(raw, Prefer::Html).parts.is_empty());
    }
}
