//! The personal namespace (RFC 2342), asked right after login. imap-proto, under
//! async-imap, cannot parse a NAMESPACE answer and a line it cannot parse breaks the
//! session, so the command goes over the raw stream while no other command is in
//! flight, and its answer is read line by line up to its own tagged completion.

use super::folder_names::Namespace;
use super::stream::ImapStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TAG: &str = "TMBNS1";
/// Longest line read; a NAMESPACE answer is a few hundred bytes.
const MAX_LINE: usize = 16 << 10;

/// Sends NAMESPACE and returns the first personal namespace; `None` when the server
/// answered without one (then the caller falls back to `LIST "" ""`).
pub(super) async fn query(stream: &mut ImapStream) -> std::io::Result<Option<Namespace>> {
    stream
        .write_all(format!("{TAG} NAMESPACE\r\n").as_bytes())
        .await?;
    stream.flush().await?;
    let mut found = None;
    loop {
        let line = read_line(stream).await?;
        if let Some(rest) = line.strip_prefix("* NAMESPACE ") {
            found = parse_personal(rest);
        } else if line.starts_with(TAG) {
            return Ok(found);
        }
    }
}

async fn read_line(stream: &mut ImapStream) -> std::io::Result<String> {
    let mut line = Vec::new();
    loop {
        let byte = stream.read_u8().await?;
        if byte == b'\n' {
            break;
        }
        if line.len() >= MAX_LINE {
            return Err(std::io::Error::other("NAMESPACE answer line too long"));
        }
        line.push(byte);
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// `(("INBOX." ".")) NIL NIL` → prefix `INBOX.`, delimiter `.`; `NIL …` → none.
pub(super) fn parse_personal(rest: &str) -> Option<Namespace> {
    let rest = rest.trim_start().strip_prefix("((")?;
    let (prefix, rest) = quoted(rest)?;
    let rest = rest.trim_start();
    let delimiter = if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case("NIL") {
        None
    } else {
        let (d, _) = quoted(rest)?;
        d.chars().next()
    };
    Some(Namespace { prefix, delimiter })
}

/// An IMAP quoted string at the start of `s`, and what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let s = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?.1),
            '"' => return Some((out, &s[i + 1..])),
            _ => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_answers_are_read() {
        let ns = |prefix: &str, delimiter| {
            Some(Namespace {
                prefix: prefix.into(),
                delimiter,
            })
        };
        assert_eq!(
            parse_personal(r#"(("INBOX." ".")) NIL NIL"#),
            ns("INBOX.", Some('.'))
        );
        assert_eq!(
            parse_personal(r#"(("" "/")) (("Other Users/" "/")) (("Shared/" "/"))"#),
            ns("", Some('/'))
        );
        assert_eq!(parse_personal(r#"(("" NIL)) NIL NIL"#), ns("", None));
        assert_eq!(
            parse_personal(r#"(("a\"b" "\\")) NIL NIL"#),
            ns("a\"b", Some('\\'))
        );
        assert_eq!(parse_personal("NIL NIL NIL"), None);
        assert_eq!(parse_personal(r#"(("unterminated"#), None);
    }
}
