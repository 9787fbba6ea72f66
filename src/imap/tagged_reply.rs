//! The server's last tagged answer, in its own words. async-imap hands a NO or BAD over
//! only as its own `Debug` rendering of the parsed response, so the stream under the
//! session keeps the tagged line as the server sent it, and errors quote that.

use std::sync::{Arc, Mutex, PoisonError};

/// A tagged line longer than this is kept cut: it is for a log line, not for parsing.
const KEPT_LINE: usize = 1024;
/// Enough of a line's end to hold a literal's announcement, `{4294967295+}`.
const KEPT_TAIL: usize = 16;

/// Shared between the stream (which feeds it what it reads) and the session (which
/// asks it after a command failed).
#[derive(Debug, Clone, Default)]
pub(super) struct TaggedReplies(Arc<Mutex<Scanner>>);

impl TaggedReplies {
    /// Bytes just read from the server, in order.
    pub(super) fn read(&self, bytes: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .feed(bytes);
    }

    /// The last tagged answer's text (`[CODE] text` as sent) when it was a NO or BAD.
    pub(super) fn last_refusal(&self) -> Option<String> {
        let scanner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match &scanner.last_tagged {
            Some(Tagged {
                refused: true,
                text,
            }) => Some(text.clone()),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Tagged {
    refused: bool,
    text: String,
}

/// Splits what the server sends into lines, stepping over literals (`{n}` at a line's
/// end announces n bytes of data, such as a mail, which may hold anything).
#[derive(Debug, Default)]
struct Scanner {
    literal_left: u64,
    line_head: Vec<u8>,
    line_tail: Vec<u8>,
    last_tagged: Option<Tagged>,
}

impl Scanner {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.literal_left > 0 {
                let skip = usize::try_from(self.literal_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.literal_left -= skip as u64;
                bytes = &bytes[skip..];
                continue;
            }
            let end = bytes.iter().position(|&b| b == b'\n');
            let (part, rest) = match end {
                Some(i) => bytes.split_at(i + 1),
                None => (bytes, &[][..]),
            };
            self.keep(part);
            if end.is_some() {
                self.line_ended();
            }
            bytes = rest;
        }
    }

    fn keep(&mut self, part: &[u8]) {
        let room = KEPT_LINE.saturating_sub(self.line_head.len());
        self.line_head
            .extend_from_slice(&part[..room.min(part.len())]);
        self.line_tail.extend_from_slice(part);
        let extra = self.line_tail.len().saturating_sub(KEPT_TAIL);
        self.line_tail.drain(..extra);
    }

    fn line_ended(&mut self) {
        let head = std::mem::take(&mut self.line_head);
        let tail = std::mem::take(&mut self.line_tail);
        if let Some(n) = literal_announced(&tail) {
            self.literal_left = n;
        } else if let Some(tagged) = tagged_answer(&head) {
            self.last_tagged = Some(tagged);
        }
    }
}

/// `… {123}\r\n` or `… {123+}\r\n`: the length of the literal that follows.
fn literal_announced(tail: &[u8]) -> Option<u64> {
    let line = tail.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inside = line.strip_suffix(b"}")?;
    let inside = inside.strip_suffix(b"+").unwrap_or(inside);
    let open = inside.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&inside[open + 1..]).ok()?.parse().ok()
}

/// `A0007 NO [TRYCREATE] no such folder`: a tag (not `*` or `+`), a status, the text.
fn tagged_answer(line: &[u8]) -> Option<Tagged> {
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end_matches(['\r', '\n']);
    let (tag, rest) = line.split_once(' ')?;
    let is_tag_char = |c: char| c.is_ascii_graphic() && !"(){%*\"\\]+".contains(c);
    if tag.is_empty() || !tag.chars().all(is_tag_char) {
        return None;
    }
    let (status, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let refused = match status.to_ascii_uppercase().as_str() {
        "OK" => false,
        "NO" | "BAD" => true,
        _ => return None,
    };
    Some(Tagged {
        refused,
        text: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(chunks: &[&[u8]]) -> Option<String> {
        let replies = TaggedReplies::default();
        for chunk in chunks {
            replies.read(chunk);
        }
        replies.last_refusal()
    }

    #[test]
    fn a_refusal_is_kept_as_the_server_said_it() {
        assert_eq!(
            after(&[b"* OK ready\r\nA0003 NO [TRYCREATE] Mailbox doesn't exist: \"Nope\"\r\n"]),
            Some("[TRYCREATE] Mailbox doesn't exist: \"Nope\"".into())
        );
        assert_eq!(
            after(&[b"A1 BAD Error in IMAP command: Unknown\r\n"]),
            Some("Error in IMAP command: Unknown".into())
        );
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        assert_eq!(
            after(&[b"A0004 N", b"O no such", b" folder\r", b"\n"]),
            Some("no such folder".into())
        );
    }

    #[test]
    fn only_the_last_tagged_answer_counts() {
        assert_eq!(after(&[b"A1 NO first\r\nA2 OK done\r\n"]), None);
        assert_eq!(after(&[b"A1 OK done\r\n* NO warning\r\n"]), None);
    }

    #[test]
    fn a_mail_in_a_literal_is_not_taken_for_an_answer() {
        let mail = b"Subject: x\r\nA0009 NO forged\r\n";
        let announce = format!("* 1 FETCH (UID 5 BODY[] {{{}}}\r\n", mail.len());
        let chunks: [&[u8]; 5] = [
            b"A0008 NO real\r\n",
            announce.as_bytes(),
            &mail[..7],
            &mail[7..],
            b")\r\n",
        ];
        assert_eq!(after(&chunks), Some("real".into()));
    }

    #[test]
    fn a_long_line_is_kept_cut_and_its_literal_still_seen() {
        let mut long = b"A1 NO ".to_vec();
        long.extend(std::iter::repeat_n(b'x', 5000));
        long.extend_from_slice(b"\r\n");
        let kept = after(&[&long]).unwrap_or_default();
        assert_eq!(kept.len(), KEPT_LINE - "A1 NO ".len());
        let mut fetch = b"* 1 FETCH (BODY[] ".to_vec();
        fetch.extend(std::iter::repeat_n(b' ', 5000));
        fetch.extend_from_slice(b"{9+}\r\nA2 NO x\r\n)\r\nA3 NO y\r\n");
        assert_eq!(after(&[&fetch]), Some("y".into()));
    }
}
