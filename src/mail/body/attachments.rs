//! The note listing attachments under the body (the Thulium API takes none).

use mail_parser::{Encoding, Message, MimeHeaders, PartType};
use std::collections::HashSet;

/// At most this many are named; the rest are counted.
const MAX_LISTED: usize = 50;

/// One attachment as the note shows it (and a new ticket attaches it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The MIME part (mail-parser's part id), to read its content from.
    pub part: u32,
    pub name: String,
    /// Decoded bytes.
    pub size: u64,
    /// Where its base64 content sits in the parsed (line-end normalized) mail, so a new
    /// ticket streams it from there without parsing the mail again; `None` for other
    /// encodings.
    pub base64_at: Option<std::ops::Range<usize>>,
}

/// The message's attachments, except body parts and `cid:` images already shown as text.
pub(super) fn list(
    msg: &Message<'_>,
    body_parts: &[u32],
    shown_cids: &HashSet<String>,
) -> Vec<Attachment> {
    let mut out = Vec::new();
    for &id in &msg.attachments {
        if body_parts.contains(&id) {
            continue;
        }
        let Some(part) = msg.part(id) else { continue };
        let shown = |cid: &str| {
            let id = super::markers::content_id(cid);
            shown_cids.contains(&id) || shown_cids.contains(&id.to_ascii_lowercase())
        };
        if part.content_id().is_some_and(shown) {
            continue;
        }
        // An empty part without a name is MIME debris, not something the sender attached.
        if part.is_empty() && part.attachment_name().is_none() {
            continue;
        }
        let name = match (&part.body, part.attachment_name()) {
            (_, Some(n)) if !n.trim().is_empty() => n.to_string(),
            (PartType::Message(m), _) => format!("{}.eml", m.subject().unwrap_or("message")),
            _ => part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("unnamed {}/{}", ct.ctype(), sub),
                    None => format!("unnamed {}", ct.ctype()),
                })
                .unwrap_or_else(|| "unnamed".to_string()),
        };
        let base64_at = (part.encoding == Encoding::Base64)
            .then_some(part.offset_body as usize..part.offset_end as usize);
        out.push(Attachment {
            part: id,
            name: one_line(&name),
            size: part.len() as u64,
            base64_at,
        });
    }
    out
}

/// "Attachments: invoice.pdf (120 KiB), photo.jpg (2.1 MiB)", or `None` without any.
pub(super) fn note(list: &[Attachment]) -> Option<String> {
    if list.is_empty() {
        return None;
    }
    Some(format!("Attachments: {}", names(list)))
}

/// "invoice.pdf (120 KiB), photo.jpg (2.1 MiB)"; past [`MAX_LISTED`], "and 12 more".
pub fn names(list: &[Attachment]) -> String {
    let mut items: Vec<String> = list
        .iter()
        .take(MAX_LISTED)
        .map(|a| format!("{} ({})", a.name, human_size(a.size)))
        .collect();
    if list.len() > MAX_LISTED {
        items.push(format!("and {} more", list.len() - MAX_LISTED));
    }
    items.join(", ")
}

/// A size as people read it: 512 B, 8.5 KiB, 120 KiB, 2.1 MiB.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let text = if value < 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    };
    format!("{} {}", text.trim_end_matches(".0"), UNITS[unit])
}

/// A file name fit for one line of the note, without invisible characters.
fn one_line(s: &str) -> String {
    let cleaned: String = crate::mail::invisible::strip(s.to_string())
        .chars()
        .map(|c| {
            if c.is_control() || super::markers::is_marker(c) {
                ' '
            } else {
                c
            }
        })
        .collect();
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    words.join(" ").chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1 KiB");
        assert_eq!(human_size(8704), "8.5 KiB");
        assert_eq!(human_size(120 * 1024), "120 KiB");
        assert_eq!(human_size(2_202_010), "2.1 MiB");
        assert_eq!(human_size(u64::MAX), "16777216 TiB");
    }

    #[test]
    fn lists_real_attachments_only() {
        let raw = concat!(
            "Content-Type: multipart/mixed; boundary=m\r\n\r\n",
            "--m\r\nContent-Type: multipart/related; boundary=r\r\n\r\n",
            "--r\r\nContent-Type: text/html\r\n\r\n<p>Hi <img src=\"cid:logo@x\"></p>\r\n",
            "--r\r\nContent-Type: image/png; name=logo.png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n",
            "--r--\r\n",
            "--m\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"invoice\r\n .pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAAAAAA\r\n",
            "--m--\r\n"
        );
        let msg = MessageParser::default()
            .parse(raw.as_bytes())
            .expect("test mail parses");
        let all = list(&msg, &[], &HashSet::new());
        assert_eq!(all.len(), 2, "{all:?}");
        let shown = HashSet::from(["logo@x".to_string()]);
        let some = list(&msg, &[], &shown);
        assert_eq!(some.len(), 1);
        assert_eq!(
            note(&some).as_deref(),
            Some("Attachments: invoice .pdf (6 B)")
        );
        assert_eq!(note(&[]), None);
    }

    #[test]
    fn names_lose_invisible_characters() {
        assert_eq!(one_line("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        assert_eq!(one_line("a\u{2066}b\u{2069}\u{200F}c\u{061C}"), "abc");
        assert_eq!(
            one_line("in\u{200B}voice\u{FEFF}.pdf\u{E0041}\u{200D}"),
            "invoice.pdf"
        );
    }

    #[test]
    fn long_lists_are_counted() {
        let many: Vec<Attachment> = (0..60)
            .map(|i| Attachment {
                part: i,
                name: format!("f{i}"),
                size: 1,
                base64_at: None,
            })
            .collect();
        let n = note(&many).unwrap_or_default();
        assert!(n.ends_with("f49 (1 B), and 10 more"), "{n}");
    }
}
