//! A small blocking IMAP client: how the Cyrus and Courier harnesses seed
//! and read mail (Cyrus keeps no maildir, and IMAP shows keywords and UIDs
//! exactly as a client sees them). Only what the harnesses need: LOGIN,
//! CREATE, LIST, SELECT, APPEND with a literal, UID FETCH, LOGOUT.
//!
//! Mailbox names are UTF-8 in this API and modified UTF-7 on the wire.
//! Nothing the server sends is trusted: bad input is an error, never a panic.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::utf7::{decode_mutf7, encode_mutf7};

/// Generous: only reached when a server hangs.
const TIMEOUT: Duration = Duration::from_secs(20);
/// Larger literals are refused rather than allocated.
const MAX_LITERAL: usize = 256 << 20;

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
}

/// Everything a command got back.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Untagged responses, each raw with its literals inline, without `* `.
    pub untagged: Vec<Vec<u8>>,
    pub status: Status,
    /// The tagged line after the status, e.g. `[APPENDUID 1 5] Completed`.
    pub text: String,
}

impl Reply {
    /// The untagged responses as lossy text, for asserts and messages.
    pub fn lines(&self) -> Vec<String> {
        self.untagged
            .iter()
            .map(|l| String::from_utf8_lossy(l).trim_end().to_string())
            .collect()
    }
}

/// One mail as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImapMail {
    pub uid: u32,
    /// System flags (`\Seen`) and keywords, as the server names them.
    pub flags: Vec<String>,
    /// The raw message (`BODY.PEEK[]`).
    pub raw: Vec<u8>,
}

impl ImapMail {
    /// Whether the mail carries `flag` (case-insensitive, as in IMAP).
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    /// The value of the first header `name` (unfolded, not MIME-decoded).
    pub fn header(&self, name: &str) -> Option<String> {
        crate::headers::header_value(&self.raw, name)
    }

    /// The `Subject` header, raw.
    pub fn subject(&self) -> Option<String> {
        self.header("Subject")
    }
}

/// One `LIST` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    /// `\HasNoChildren`, `\Noselect`, ...
    pub attributes: Vec<String>,
    /// The hierarchy separator (`.` on Cyrus and Courier), `None` for NIL.
    pub delimiter: Option<String>,
    /// The name as sent, modified UTF-7 (`INBOX.Obs&AUI-u&AXw-one`).
    pub raw_name: String,
    /// The name decoded to UTF-8 (`INBOX.Obsłużone`).
    pub name: String,
}

/// A logged-out or logged-in connection; one command at a time.
pub struct ImapClient {
    reader: BufReader<TcpStream>,
    tag: u32,
    greeting: String,
}

impl ImapClient {
    /// Connects and reads the greeting (`* OK` or `* PREAUTH`).
    pub fn connect(host: &str, port: u16) -> Result<ImapClient> {
        let addr: SocketAddr = (host, port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| anyhow!("no address for {host}"))?;
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)
            .with_context(|| format!("connect to IMAP at {addr}"))?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let mut client = ImapClient {
            reader: BufReader::new(stream),
            tag: 0,
            greeting: String::new(),
        };
        let greeting = client.read_response()?;
        let text = String::from_utf8_lossy(&greeting).trim_end().to_string();
        if !(text.starts_with("* OK") || text.starts_with("* PREAUTH")) {
            bail!("IMAP server at {addr} greeted with {text:?}");
        }
        client.greeting = text;
        Ok(client)
    }

    /// Connects and logs in with `LOGIN`.
    pub fn login_to(host: &str, port: u16, user: &str, password: &str) -> Result<ImapClient> {
        let mut client = ImapClient::connect(host, port)?;
        client.login(user, password)?;
        Ok(client)
    }

    /// The greeting line, e.g. `* OK [CAPABILITY ...] ... ready`.
    pub fn greeting(&self) -> &str {
        &self.greeting
    }

    /// `LOGIN` (the password as a literal when it cannot be quoted).
    pub fn login(&mut self, user: &str, password: &str) -> Result<()> {
        let reply = self.command_with(&[
            Arg::Text("LOGIN "),
            Arg::String(user.as_bytes()),
            Arg::Text(" "),
            Arg::String(password.as_bytes()),
        ])?;
        if reply.status != Status::Ok {
            bail!(
                "LOGIN as {user:?} refused: {:?} {}",
                reply.status,
                reply.text
            );
        }
        Ok(())
    }

    /// Runs one command given as text (mailbox names already encoded).
    pub fn command(&mut self, command: &str) -> Result<Reply> {
        self.command_with(&[Arg::Text(command)])
    }

    /// Like [`command`](Self::command), but fails unless the answer is `OK`.
    pub fn command_ok(&mut self, command: &str) -> Result<Reply> {
        let reply = self.command(command)?;
        if reply.status != Status::Ok {
            bail!("{command:?} failed: {:?} {}", reply.status, reply.text);
        }
        Ok(reply)
    }

    /// `CREATE`; the answer as it came (servers differ on an existing name).
    pub fn create(&mut self, mailbox: &str) -> Result<Reply> {
        self.command(&format!("CREATE {}", quote_mailbox(mailbox)))
    }

    /// `LIST "" "*"`: every mailbox the user sees.
    pub fn list(&mut self) -> Result<Vec<ListEntry>> {
        let reply = self.command_ok("LIST \"\" \"*\"")?;
        let mut entries = Vec::new();
        for line in &reply.untagged {
            let values = parse_values(line)?;
            let [Value::Atom(kind), Value::List(attrs), delimiter, name] = values.as_slice() else {
                continue;
            };
            if !kind.eq_ignore_ascii_case("LIST") {
                continue;
            }
            let attributes = attrs.iter().filter_map(|a| a.as_text()).collect::<Vec<_>>();
            let delimiter = match delimiter {
                Value::Nil => None,
                other => Some(
                    other
                        .as_text()
                        .ok_or_else(|| anyhow!("bad LIST delimiter in {line:?}"))?,
                ),
            };
            let raw_name = name
                .as_text()
                .ok_or_else(|| anyhow!("bad LIST name in {:?}", String::from_utf8_lossy(line)))?;
            let name = decode_mutf7(&raw_name)?;
            entries.push(ListEntry {
                attributes,
                delimiter,
                raw_name,
                name,
            });
        }
        Ok(entries)
    }

    /// `SELECT`; fails unless `OK`.
    pub fn select(&mut self, mailbox: &str) -> Result<Reply> {
        self.command_ok(&format!("SELECT {}", quote_mailbox(mailbox)))
    }

    /// `APPEND` with flags; returns the new UID when the server says
    /// `[APPENDUID v uid]` (UIDPLUS).
    pub fn append(&mut self, mailbox: &str, flags: &[&str], raw: &[u8]) -> Result<Option<u32>> {
        for flag in flags {
            if flag.is_empty() || flag.contains([' ', '(', ')', '"', '\r', '\n']) {
                bail!("bad flag {flag:?}");
            }
        }
        let head = format!("APPEND {} ({}) ", quote_mailbox(mailbox), flags.join(" "));
        let reply = self.command_with(&[Arg::Text(&head), Arg::Literal(raw)])?;
        if reply.status != Status::Ok {
            bail!(
                "APPEND to {mailbox:?} failed: {:?} {}",
                reply.status,
                reply.text
            );
        }
        Ok(response_code_number(&reply.text, "APPENDUID", 2))
    }

    /// Every mail of the selected mailbox by UID: flags and raw bytes,
    /// without setting `\Seen`.
    pub fn fetch_all(&mut self) -> Result<Vec<ImapMail>> {
        let reply = self.command_ok("UID FETCH 1:* (UID FLAGS BODY.PEEK[])")?;
        let mut mails = Vec::new();
        for line in &reply.untagged {
            let values = parse_values(line)?;
            let [Value::Atom(_seq), Value::Atom(kind), Value::List(items)] = values.as_slice()
            else {
                continue;
            };
            if !kind.eq_ignore_ascii_case("FETCH") {
                continue;
            }
            let (mut uid, mut flags, mut raw) = (None, None, None);
            for pair in items.chunks(2) {
                let [Value::Atom(key), value] = pair else {
                    bail!("bad FETCH item in {:?}", String::from_utf8_lossy(line));
                };
                match (key.to_ascii_uppercase().as_str(), value) {
                    ("UID", Value::Atom(n)) => uid = n.parse::<u32>().ok(),
                    ("FLAGS", Value::List(list)) => {
                        flags = Some(list.iter().filter_map(|f| f.as_text()).collect())
                    }
                    ("BODY[]", Value::Str(bytes)) => raw = Some(bytes.clone()),
                    ("BODY[]", Value::Nil) => raw = Some(Vec::new()),
                    _ => {}
                }
            }
            // A FETCH without a body is an unsolicited flag update.
            if let (Some(uid), Some(raw)) = (uid, raw) {
                mails.push(ImapMail {
                    uid,
                    flags: flags.unwrap_or_default(),
                    raw,
                });
            }
        }
        mails.sort_by_key(|m| m.uid);
        mails.dedup_by_key(|m| m.uid);
        Ok(mails)
    }

    /// `LOGOUT`, ignoring a connection that closes first.
    pub fn logout(mut self) -> Result<()> {
        match self.command("LOGOUT") {
            Ok(_) => Ok(()),
            Err(e) if format!("{e:#}").contains("closed") => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn command_with(&mut self, args: &[Arg<'_>]) -> Result<Reply> {
        self.tag += 1;
        let tag = format!("h{}", self.tag);
        let mut untagged = Vec::new();
        let mut pending = format!("{tag} ").into_bytes();
        for arg in args {
            match arg {
                Arg::Text(text) => pending.extend_from_slice(text.as_bytes()),
                Arg::String(bytes) if quotable(bytes) => {
                    pending.push(b'"');
                    for b in *bytes {
                        if matches!(b, b'"' | b'\\') {
                            pending.push(b'\\');
                        }
                        pending.push(*b);
                    }
                    pending.push(b'"');
                }
                Arg::String(bytes) | Arg::Literal(bytes) => {
                    // A synchronizing literal: every server takes it.
                    pending.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
                    self.write(&pending)?;
                    pending.clear();
                    loop {
                        let response = self.read_response()?;
                        if response.starts_with(b"+") {
                            break;
                        }
                        if let Some(rest) = response.strip_prefix(b"* ".as_slice()) {
                            untagged.push(rest.to_vec());
                            continue;
                        }
                        // Refused before the literal was sent.
                        return finish(&tag, &response, untagged);
                    }
                    pending.extend_from_slice(bytes);
                }
            }
        }
        pending.extend_from_slice(b"\r\n");
        self.write(&pending)?;
        loop {
            let response = self.read_response()?;
            if let Some(rest) = response.strip_prefix(b"* ".as_slice()) {
                untagged.push(rest.to_vec());
            } else if response.starts_with(b"+") {
                bail!("unexpected continuation request: {:?}", lossy(&response));
            } else {
                return finish(&tag, &response, untagged);
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let stream = self.reader.get_mut();
        stream.write_all(bytes).context("write to IMAP")?;
        stream.flush().context("write to IMAP")?;
        Ok(())
    }

    /// One response: a line, and for each `{n}` at its end n bytes and the
    /// line that follows them.
    fn read_response(&mut self) -> Result<Vec<u8>> {
        let mut response = Vec::new();
        loop {
            let start = response.len();
            let n = self
                .reader
                .read_until(b'\n', &mut response)
                .context("read from IMAP")?;
            if n == 0 {
                bail!("IMAP connection closed");
            }
            match literal_length(&response[start..])? {
                Some(size) => {
                    let mut literal = vec![0; size];
                    self.reader
                        .read_exact(&mut literal)
                        .context("read an IMAP literal")?;
                    response.extend_from_slice(&literal);
                }
                None => return Ok(response),
            }
        }
    }
}

/// Pieces of a command line.
enum Arg<'a> {
    /// Sent as is.
    Text(&'a str),
    /// An astring: quoted when possible, else a literal.
    String(&'a [u8]),
    /// Always a literal (message bodies).
    Literal(&'a [u8]),
}

fn finish(tag: &str, response: &[u8], untagged: Vec<Vec<u8>>) -> Result<Reply> {
    let line = lossy(response);
    let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) else {
        bail!("expected the answer to {tag}, got {line:?}");
    };
    let (status, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let status = match status.to_ascii_uppercase().as_str() {
        "OK" => Status::Ok,
        "NO" => Status::No,
        "BAD" => Status::Bad,
        _ => bail!("bad tagged response {line:?}"),
    };
    Ok(Reply {
        untagged,
        status,
        text: text.to_string(),
    })
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim_end().to_string()
}

/// Whether an astring can go as a quoted string (no CR, LF, NUL or 8-bit).
fn quotable(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| (1..0x80).contains(b) && !matches!(b, b'\r' | b'\n'))
}

/// A mailbox name on the wire: modified UTF-7, quoted.
pub(crate) fn quote_mailbox(mailbox: &str) -> String {
    let encoded = encode_mutf7(mailbox);
    format!("\"{}\"", encoded.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The `n`-th number (0-based, after the code name) of a response code like
/// `[APPENDUID 1700000000 5]`.
fn response_code_number(text: &str, code: &str, index: usize) -> Option<u32> {
    let inner = text.strip_prefix('[')?.split(']').next()?;
    let mut words = inner.split_ascii_whitespace();
    if !words.next()?.eq_ignore_ascii_case(code) {
        return None;
    }
    words.nth(index - 1)?.parse().ok()
}

/// The size of the literal announced at the end of `line` (`{n}`, `{n+}`,
/// `~{n}`), if any.
pub(crate) fn literal_length(line: &[u8]) -> Result<Option<usize>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(inner) = line.strip_suffix(b"}") else {
        return Ok(None);
    };
    let Some(open) = inner.iter().rposition(|b| *b == b'{') else {
        return Ok(None);
    };
    let digits = &inner[open + 1..];
    let digits = digits
        .strip_suffix(b"+")
        .or_else(|| digits.strip_suffix(b"-"))
        .unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Ok(None);
    }
    let size: usize = std::str::from_utf8(digits)?
        .parse()
        .context("literal size")?;
    if size > MAX_LITERAL {
        bail!("literal of {size} bytes is too large");
    }
    Ok(Some(size))
}

/// A parsed piece of a response.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    /// Atoms and numbers; `BODY[...]` stays one atom.
    Atom(String),
    /// Quoted strings and literals.
    Str(Vec<u8>),
    List(Vec<Value>),
    Nil,
}

impl Value {
    /// Atoms and strings as text (mailbox names, flags).
    fn as_text(&self) -> Option<String> {
        match self {
            Value::Atom(a) => Some(a.clone()),
            Value::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }
}

/// Parses one untagged response (without `* `, literals inline) into values.
fn parse_values(response: &[u8]) -> Result<Vec<Value>> {
    let mut parser = Parser {
        input: response,
        pos: 0,
    };
    let values = parser.values(false)?;
    Ok(values)
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn values(&mut self, in_list: bool) -> Result<Vec<Value>> {
        let mut values = Vec::new();
        loop {
            while self.peek() == Some(b' ') {
                self.pos += 1;
            }
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') => {
                    if in_list {
                        bail!("unclosed list in {:?}", lossy(self.input));
                    }
                    return Ok(values);
                }
                Some(b')') => {
                    if !in_list {
                        bail!("stray `)` in {:?}", lossy(self.input));
                    }
                    self.pos += 1;
                    return Ok(values);
                }
                Some(b'(') => {
                    self.pos += 1;
                    values.push(Value::List(self.values(true)?));
                }
                Some(b'"') => values.push(self.quoted()?),
                Some(b'{') => values.push(self.literal()?),
                Some(_) => {
                    let atom = self.atom();
                    if atom.eq_ignore_ascii_case("NIL") {
                        values.push(Value::Nil);
                    } else if let Some(prefix) = atom.strip_suffix('~')
                        && self.peek() == Some(b'{')
                    {
                        // `~{n}` (literal8) after an atom is rare; keep the atom.
                        if !prefix.is_empty() {
                            values.push(Value::Atom(prefix.to_string()));
                        }
                        values.push(self.literal()?);
                    } else {
                        values.push(Value::Atom(atom));
                    }
                }
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn atom(&mut self) -> String {
        let start = self.pos;
        let mut depth = 0usize;
        while let Some(b) = self.peek() {
            match b {
                b'[' => depth += 1,
                b']' => depth = depth.saturating_sub(1),
                b' ' | b'(' | b')' | b'\r' | b'\n' | b'{' | b'"' if depth == 0 => break,
                _ => {}
            }
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.input[start..self.pos]).into_owned()
    }

    fn quoted(&mut self) -> Result<Value> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') => {
                    bail!("unterminated quoted string in {:?}", lossy(self.input))
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Value::Str(out));
                }
                Some(b'\\') => {
                    let escaped = self
                        .input
                        .get(self.pos + 1)
                        .copied()
                        .ok_or_else(|| anyhow!("bad escape in {:?}", lossy(self.input)))?;
                    out.push(escaped);
                    self.pos += 2;
                }
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> Result<Value> {
        let rest = &self.input[self.pos..];
        let close = rest
            .iter()
            .position(|b| *b == b'}')
            .ok_or_else(|| anyhow!("bad literal in {:?}", lossy(self.input)))?;
        let size: usize = std::str::from_utf8(&rest[1..close])?
            .trim_end_matches(['+', '-'])
            .parse()
            .context("literal size")?;
        let mut start = self.pos + close + 1;
        if self.input.get(start) == Some(&b'\r') {
            start += 1;
        }
        if self.input.get(start) == Some(&b'\n') {
            start += 1;
        }
        let end = start
            .checked_add(size)
            .filter(|end| *end <= self.input.len())
            .ok_or_else(|| anyhow!("literal runs past the response"))?;
        self.pos = end;
        Ok(Value::Str(self.input[start..end].to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fetch_and_list_answers() {
        let fetch = b"3 FETCH (UID 7 FLAGS (\\Seen $label1) BODY[] {5}\r\nhi)\r\n)\r\n";
        let values = parse_values(fetch).ok();
        let expected = vec![
            Value::Atom("3".into()),
            Value::Atom("FETCH".into()),
            Value::List(vec![
                Value::Atom("UID".into()),
                Value::Atom("7".into()),
                Value::Atom("FLAGS".into()),
                Value::List(vec![
                    Value::Atom("\\Seen".into()),
                    Value::Atom("$label1".into()),
                ]),
                Value::Atom("BODY[]".into()),
                Value::Str(b"hi)\r\n".to_vec()),
            ]),
        ];
        assert_eq!(values, Some(expected));

        let list = b"LIST (\\HasNoChildren) \".\" \"INBOX.Obs&AUI-u&AXw-one\"\r\n";
        assert_eq!(parse_values(list).ok().map(|v| v.len()), Some(4));
        assert_eq!(
            parse_values(b"LIST () NIL INBOX\r\n")
                .ok()
                .map(|v| v[2].clone()),
            Some(Value::Nil)
        );
        assert!(parse_values(b"1 FETCH (UID 1\r\n").is_err());
        assert!(parse_values(b"1 FETCH (BODY[] {99}\r\nshort)\r\n").is_err());
    }

    #[test]
    fn finds_literals_and_response_codes() {
        assert_eq!(literal_length(b"a APPEND x {12}\r\n").ok(), Some(Some(12)));
        assert_eq!(literal_length(b"a APPEND x {12+}\r\n").ok(), Some(Some(12)));
        assert_eq!(literal_length(b"* OK {x}\r\n").ok(), Some(None));
        assert_eq!(literal_length(b"* OK done\r\n").ok(), Some(None));
        assert_eq!(
            response_code_number("[APPENDUID 1700 42] Append completed.", "APPENDUID", 2),
            Some(42)
        );
        assert_eq!(response_code_number("Completed", "APPENDUID", 2), None);
        assert_eq!(
            quote_mailbox("INBOX.Obsłużone"),
            "\"INBOX.Obs&AUI-u&AXw-one\""
        );
    }
}
