//! An agent's forward of a customer's mail, unwrapped into the forwarded mail.
//!
//! An agent who finds a customer's mail in the wrong place (their own inbox, say)
//! forwards it to the helpdesk; what must reach the ticket is the customer's mail — its
//! sender, date, text and attachments — not the forward around it. It comes attached
//! whole (`message/rfc822`: "forward as attachment" in Outlook, Gmail, Thunderbird), or
//! inline below the header block a client writes: Gmail's "---------- Forwarded message
//! ---------", Thunderbird's "-------- Forwarded Message --------", Apple Mail's "Begin
//! forwarded message:" (and their translations), Outlook's bare "From: … Sent: … To: …
//! Subject:" ("Od: … Wysłane: …", "Von: … Gesendet: …"). The forwarded mail is handed
//! back as a mail of its own — the attached bytes, or a mail rebuilt from the text below
//! the header block and the forward's attachments — so it is read, cleaned and attached
//! exactly as any mail is.
//!
//! Outlook writes the same bare block above the quoted history of a reply, so that shape
//! counts only under a forward's subject ("FW:", "WG:", "PD:", …); a subject that starts
//! as a reply's ("Re:", "AW:", "Odp:", …) quotes history, and only an attached mail is
//! a forward then.
//!
//! A forward of a forward is unwrapped while the forwarded mail's sender is an agent too
//! (a colleague passed the customer's mail on): the first mail not written by an agent
//! is the customer's, and that is what is posted. The innermost mail is not always the
//! customer's: a customer who forwarded their supplier's mail with a word of their own
//! wrote the outer one.

use crate::mail::body::{self, ForwardStart, Label, Line};
use crate::mail::date;
use crate::mail::identity::MailId;
use crate::mail::thread;
use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, TimeZone};
use mail_parser::{Encoding, Message, MessageParser, PartType};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fmt;

/// Forwards of forwards unwrapped, at most.
const MAX_DEPTH: usize = 8;
/// The agent's note is kept to this many characters (it is only logged and shown).
const MAX_NOTE: usize = 2000;
/// A forward's header block is looked for this far into the text: an agent's note is
/// short, and the search stays bounded whatever the mail.
const MAX_SEARCH: usize = 2 << 20;

/// Subject prefixes mail clients give a forward: English (Outlook, Gmail, Apple Mail,
/// Thunderbird), and Outlook's German, French, Spanish, Italian, Polish, Dutch,
/// Portuguese, Swedish and Finnish ones.
const FORWARD_PREFIXES: &[&str] = &[
    "fw", "fwd", "wg", "tr", "rv", "i", "pd", "doorst", "enc", "vb", "vl",
];
/// Subject prefixes of a reply in the same languages (`VS` is left out of both lists:
/// a Finnish reply, a Danish or Norwegian forward).
const REPLY_PREFIXES: &[&str] = &["re", "aw", "odp", "sv", "antw", "r", "rif", "res"];

/// The forwarded mail.
#[derive(Clone, PartialEq, Eq)]
pub struct Forwarded {
    pub shape: Shape,
    /// 1 for a forward, 2 when an agent forwarded another agent's forward, …
    pub depth: usize,
    /// Its sender as written (`Anna Nowak <anna@customer.example>`).
    pub sender: String,
    /// Its sender's address, lower-cased; `None` when the header block names only a
    /// person (Outlook does for senders of its own organization).
    pub from: Option<String>,
    /// Its date as written.
    pub date_text: String,
    /// Its date; a date written without a zone is placed in the agent's zone (below).
    pub date: Option<DateTime<FixedOffset>>,
    pub subject: String,
    /// Only an attached mail keeps its Message-ID and its thread.
    pub message_id: Option<String>,
    pub references: Vec<String>,
    /// What the (outermost) agent wrote above or around it: logged, never posted.
    pub note: String,
    /// Its identity for the ledger: an attached mail's is the one it had when it arrived
    /// itself, so a mail forwarded twice, or forwarded and approved, is one mail.
    pub id: MailId,
    /// The forwarded mail as a mail of its own (LF line ends as `decide` reads mail).
    pub raw: Vec<u8>,
}

impl fmt::Debug for Forwarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forwarded")
            .field("shape", &self.shape)
            .field("depth", &self.depth)
            .field("sender", &self.sender)
            .field("from", &self.from)
            .field("date_text", &self.date_text)
            .field("date", &self.date)
            .field("subject", &self.subject)
            .field("message_id", &self.message_id)
            .field("note", &self.note)
            .field("raw_bytes", &self.raw.len())
            .finish_non_exhaustive()
    }
}

/// How the mail was forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// As a `message/rfc822` attachment.
    Attached,
    /// In the text, below the client's separator line if it wrote one (Outlook writes
    /// only its header block).
    Inline { separator: Option<String> },
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Attached => f.write_str("attached (message/rfc822)"),
            Shape::Inline {
                separator: Some(line),
            } => write!(f, "inline, below {line:?}"),
            Shape::Inline { separator: None } => {
                f.write_str("inline, below a \"From: … Sent: …\" header block")
            }
        }
    }
}

/// What unwrapping needs to know besides the mail.
pub struct Context<'a> {
    /// The forward's decoded subject.
    pub subject: &'a str,
    /// Whether an address is an agent's (for forwards of forwards).
    pub is_agent: &'a dyn Fn(&str) -> bool,
    /// When the forward was sent: its zone is the agent's, for dates written without one.
    pub sent: Option<DateTime<FixedOffset>>,
    /// The helpdesk's zone (`thulium.timezone`), where agents usually are.
    pub timezone: chrono_tz::Tz,
}

/// The mail `msg` forwards, if it forwards one.
pub fn unwrap(msg: &Message<'_>, ctx: &Context<'_>) -> Option<Forwarded> {
    let mut found = level(msg, ctx.subject, ctx.sent, ctx.timezone)?;
    while found.depth < MAX_DEPTH && found.from.as_deref().is_some_and(ctx.is_agent) {
        let inner = {
            let Some(msg) = MessageParser::default().parse(&found.raw) else {
                break;
            };
            level(&msg, &found.subject, found.date.or(ctx.sent), ctx.timezone)
        };
        let Some(mut inner) = inner else { break };
        inner.depth = found.depth + 1;
        inner.note = std::mem::take(&mut found.note);
        found = inner;
    }
    Some(found)
}

/// One level: an inline forward (unless the subject is a reply's), else an attached mail.
fn level(
    msg: &Message<'_>,
    subject: &str,
    sent: Option<DateTime<FixedOffset>>,
    tz: chrono_tz::Tz,
) -> Option<Forwarded> {
    let prefix = first_prefix(subject);
    let is = |list: &[&str]| prefix.as_deref().is_some_and(|p| list.contains(&p));
    if !is(REPLY_PREFIXES)
        && let Some(found) = inline(msg, is(FORWARD_PREFIXES), sent, tz)
    {
        return Some(found);
    }
    attached(msg)
}

/// The first of a subject's prefixes, lower-cased, past bracketed tags:
/// `[#12] Fwd: Re: Invoice` gives `fwd`, `AW[2]: x` gives `aw`.
fn first_prefix(subject: &str) -> Option<String> {
    let mut rest = subject.trim_start();
    for _ in 0..8 {
        if let Some(after) = rest.strip_prefix('[') {
            rest = after.get(after.find(']')? + 1..)?.trim_start();
            continue;
        }
        let word = rest
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(rest.len());
        if word == 0 || word > 8 {
            return None;
        }
        let mut after = rest.get(word..)?;
        if let Some(count) = after.strip_prefix('[') {
            after = count.get(count.find(']')? + 1..)?;
        }
        return after
            .trim_start()
            .starts_with(':')
            .then(|| rest.get(..word).unwrap_or("").to_lowercase());
    }
    None
}

/// The attached mail (the first `message/rfc822` part).
fn attached(msg: &Message<'_>) -> Option<Forwarded> {
    let raw = msg
        .attachments
        .iter()
        .filter_map(|&id| msg.part(id))
        .find_map(|part| match &part.body {
            // Sent as it is, the mail's bytes are those of the part; encoded (base64),
            // mail-parser decoded them into the nested message.
            PartType::Message(inner) => Some(match part.encoding {
                Encoding::None => Cow::Borrowed(
                    msg.raw_message
                        .get(part.offset_body as usize..part.offset_end as usize)?,
                ),
                _ => Cow::Borrowed(inner.raw_message.as_ref()),
            }),
            _ => None,
        })?;
    let raw = crate::mail::into_prepared(raw.into_owned());
    let inner = MessageParser::default().parse(&raw)?;
    if inner.headers().is_empty() {
        return None;
    }
    let mailbox = inner.from().and_then(|a| a.first());
    // Read as the agent's own From is: none where it could be read two ways.
    let from = crate::mail::sender::sender(&inner).ok();
    let sender = match (mailbox.and_then(|a| a.name()), &from) {
        (Some(name), Some(address)) => format!("{} <{address}>", name.trim()),
        (_, Some(address)) => address.clone(),
        (Some(name), None) => name.trim().to_string(),
        (None, None) => String::new(),
    };
    let message_id = inner
        .message_id()
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_string);
    let subject = inner.subject().unwrap_or("").trim().to_string();
    let date_text = inner.header_raw("Date").unwrap_or("").trim().to_string();
    let id = MailId::of(
        &raw,
        message_id.as_deref(),
        from.as_deref().unwrap_or(""),
        inner.header_raw("Date").unwrap_or(""),
        &subject,
    );
    let date = date::sent_at(&inner);
    let references = thread::references(&inner);
    drop(inner);
    let (plain, html) = body::sources(msg);
    let note = match (plain, html) {
        (Some(text), _) => text,
        (None, Some(html)) => body::html_to_text(&html),
        (None, None) => String::new(),
    };
    Some(Forwarded {
        shape: Shape::Attached,
        depth: 1,
        sender,
        from,
        date_text,
        date,
        subject,
        message_id,
        references,
        note: short(&note),
        id,
        raw,
    })
}

/// A forward found in one rendering of the body (its text or its HTML).
struct Found {
    separator: Option<String>,
    sender: String,
    date_text: String,
    subject: String,
    /// What comes before the forward (the agent's note), as text.
    note: String,
    /// What follows the header block: the forwarded mail's own body, in the rendering
    /// it was found in.
    body: String,
}

/// A forward in the text: in the text part, the HTML part, or both (then the text
/// part's header block is read: it has no markup in the way).
fn inline(
    msg: &Message<'_>,
    block_alone: bool,
    sent: Option<DateTime<FixedOffset>>,
    tz: chrono_tz::Tz,
) -> Option<Forwarded> {
    let (plain, html) = body::sources(msg);
    let in_plain = plain.as_deref().and_then(|t| in_text(t, block_alone));
    let in_html = html.as_deref().and_then(|h| in_html(h, block_alone));
    let head = in_plain.as_ref().or(in_html.as_ref())?;
    let from = address_in(&head.sender);
    let written = date::parse_wall_clock(&head.date_text);
    let date = written.and_then(|w| place_in_zone(w, sent, tz));
    let shown = in_plain
        .as_ref()
        .or(in_html.as_ref())
        .map_or("", |f| f.body.as_str());
    let id = MailId::of(
        format!("\n\n{shown}").as_bytes(),
        None,
        from.as_deref().unwrap_or(&head.sender),
        &head.date_text,
        &head.subject,
    );
    let raw = rebuilt(
        msg,
        in_plain.as_ref().map(|f| f.body.as_str()),
        in_html.as_ref().map(|f| f.body.as_str()),
    );
    Some(Forwarded {
        shape: Shape::Inline {
            separator: head.separator.clone(),
        },
        depth: 1,
        sender: head.sender.clone(),
        from,
        date_text: head.date_text.clone(),
        date,
        subject: head.subject.clone(),
        message_id: None,
        references: Vec::new(),
        note: short(&head.note),
        id,
        raw,
    })
}

/// A forward in plain text. Lines quoted with `>` are history, not a forward; but a
/// separator followed by quoted lines (Apple Mail on iOS quotes what it forwards) has
/// them unquoted first (for the first such separator only: each try copies the text).
fn in_text(text: &str, block_alone: bool) -> Option<Found> {
    let searched = &text[..text.floor_char_boundary(MAX_SEARCH)];
    let lines = body::text_lines(searched);
    let mut unquoting_tried = false;
    for (i, line) in lines.iter().enumerate() {
        if line.text.trim_start().starts_with('>') {
            continue;
        }
        if let Some(start) = body::forward_start(&lines, i, block_alone) {
            return Some(found_in_text(text, &lines, i, &start));
        }
        if !unquoting_tried
            && body::is_forward_separator(&line.text)
            && let Some(next) = lines.get(i + 1)
        {
            unquoting_tried = true;
            let unquoted = format!("{}{}", &text[..next.start], unquote(&text[next.start..]));
            let searched = &unquoted[..unquoted.floor_char_boundary(MAX_SEARCH)];
            let lines = body::text_lines(searched);
            if let Some(start) = body::forward_start(&lines, i, block_alone) {
                return Some(found_in_text(&unquoted, &lines, i, &start));
            }
        }
    }
    None
}

fn found_in_text(text: &str, lines: &[Line], at: usize, start: &ForwardStart) -> Found {
    let (sender, date_text, subject) = fields(lines, start);
    let note = text.get(..lines[at].start).unwrap_or("");
    let body_at = body_start(lines, start, text.len());
    Found {
        separator: start.separator.clone(),
        sender,
        date_text,
        subject,
        note: note.to_string(),
        body: text.get(body_at..).unwrap_or("").to_string(),
    }
}

/// A forward in HTML; quoted lines count (Apple Mail puts the whole forward in a
/// `<blockquote type="cite">`).
fn in_html(html: &str, block_alone: bool) -> Option<Found> {
    let searched = &html[..html.floor_char_boundary(MAX_SEARCH)];
    let lines = body::html_lines(searched);
    let (at, start) =
        (0..lines.len()).find_map(|i| Some((i, body::forward_start(&lines, i, block_alone)?)))?;
    let (sender, date_text, subject) = fields(&lines, &start);
    let body_at = body_start(&lines, &start, html.len());
    Some(Found {
        separator: start.separator.clone(),
        sender,
        date_text,
        subject,
        note: body::html_to_text(html.get(..lines[at].start).unwrap_or("")),
        body: html.get(body_at..).unwrap_or("").to_string(),
    })
}

/// Where the forwarded mail's body begins: its first line with text after the header
/// block (or the end, for a forward of an empty mail).
fn body_start(lines: &[Line], start: &ForwardStart, end: usize) -> usize {
    lines
        .get(start.block.end..)
        .unwrap_or(&[])
        .iter()
        .find(|l| !l.text.trim().is_empty())
        .map_or(end, |l| l.start)
}

/// The sender, date and subject of a header block (the first of each).
fn fields(lines: &[Line], start: &ForwardStart) -> (String, String, String) {
    let (mut sender, mut date, mut subject) = (None, None, None);
    for line in lines.get(start.block.clone()).unwrap_or(&[]) {
        let Some((label, value)) = body::field(&line.text) else {
            continue;
        };
        let slot = match label {
            Label::From => &mut sender,
            Label::Date => &mut date,
            Label::Subject => &mut subject,
            Label::To | Label::Cc => continue,
        };
        slot.get_or_insert_with(|| value.to_string());
    }
    (
        sender.unwrap_or_default(),
        date.unwrap_or_default(),
        subject.unwrap_or_default(),
    )
}

/// Each line's first `>` (and one blank after it) taken away.
fn unquote(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            let body = line.trim_start_matches([' ', '\t']);
            match body.strip_prefix('>') {
                Some(rest) => rest.strip_prefix(' ').unwrap_or(rest),
                None => line,
            }
        })
        .collect()
}

/// The address in `Anna <anna@x>`, `Anna [mailto:anna@x]`, `anna@x`, lower-cased.
fn address_in(value: &str) -> Option<String> {
    let bracketed = value
        .rfind('<')
        .and_then(|open| Some(&value[open + 1..open + 1 + value[open + 1..].find('>')?]));
    let candidate = bracketed
        .filter(|a| a.contains('@'))
        .or_else(|| value.split_whitespace().find(|w| w.contains('@')))?;
    let address = candidate
        .trim_matches(|c: char| {
            matches!(
                c,
                '<' | '>' | '[' | ']' | '(' | ')' | '"' | '\'' | ',' | ';'
            )
        })
        .trim_start_matches("mailto:")
        .trim()
        .to_ascii_lowercase();
    let (local, domain) = address.split_once('@')?;
    let plausible = !local.is_empty()
        && domain.contains('.')
        && !domain.contains('@')
        && !address.contains(char::is_whitespace);
    plausible.then_some(address)
}

/// A date written without a zone is in the agent's: the mail client wrote it in the
/// zone it runs in, as it wrote the forward's own Date. When that zone is the
/// helpdesk's at the forward's date, the helpdesk's zone places it (daylight saving
/// time included), else the forward's offset does.
fn place_in_zone(
    (local, zone): (NaiveDateTime, Option<FixedOffset>),
    sent: Option<DateTime<FixedOffset>>,
    tz: chrono_tz::Tz,
) -> Option<DateTime<FixedOffset>> {
    let at = match zone {
        Some(zone) => zone.from_local_datetime(&local).single()?,
        None => {
            let agent_in_tz = sent
                .is_none_or(|s| tz.offset_from_utc_datetime(&s.naive_utc()).fix() == *s.offset());
            match (agent_in_tz, sent) {
                (false, Some(s)) => s.offset().from_local_datetime(&local).single()?,
                _ => tz.from_local_datetime(&local).earliest()?.fixed_offset(),
            }
        }
    };
    date::in_range(at)
}

/// A mail of the forwarded text (and HTML), with the forward's attachments, which are
/// the forwarded mail's: mail clients carry them over.
fn rebuilt(msg: &Message<'_>, plain: Option<&str>, html: Option<&str>) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update(plain.unwrap_or(""));
    hash.update([0]);
    hash.update(html.unwrap_or(""));
    let boundary = format!("=_forwarded_{}", &hex::encode(hash.finalize())[..32]);
    let text_part = |out: &mut Vec<u8>, subtype: &str, text: &str| {
        out.extend_from_slice(
            format!(
                "Content-Type: text/{subtype}; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(text.as_bytes());
        out.push(b'\n');
    };
    let mut out =
        format!("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\n\n")
            .into_bytes();
    out.extend_from_slice(format!("--{boundary}\n").as_bytes());
    match (plain, html) {
        (Some(plain), Some(html)) => {
            let alt = format!("{boundary}_alt");
            out.extend_from_slice(
                format!("Content-Type: multipart/alternative; boundary=\"{alt}\"\n\n--{alt}\n")
                    .as_bytes(),
            );
            text_part(&mut out, "plain", plain);
            out.extend_from_slice(format!("--{alt}\n").as_bytes());
            text_part(&mut out, "html", html);
            out.extend_from_slice(format!("--{alt}--\n").as_bytes());
        }
        (Some(plain), None) => text_part(&mut out, "plain", plain),
        (None, Some(html)) => text_part(&mut out, "html", html),
        (None, None) => text_part(&mut out, "plain", ""),
    }
    for &id in &msg.attachments {
        if msg.text_body.contains(&id) || msg.html_body.contains(&id) {
            continue;
        }
        let Some(part) = msg.part(id) else { continue };
        let Some(bytes) = msg
            .raw_message
            .get(part.offset_header as usize..part.offset_end as usize)
        else {
            continue;
        };
        out.extend_from_slice(format!("--{boundary}\n").as_bytes());
        out.extend_from_slice(bytes);
        if !bytes.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    out.extend_from_slice(format!("--{boundary}--\n").as_bytes());
    crate::mail::into_prepared(out)
}

/// The note trimmed and cut to [`MAX_NOTE`] characters.
fn short(note: &str) -> String {
    let note = note.trim();
    match note.char_indices().nth(MAX_NOTE) {
        Some((at, _)) => format!("{}…", &note[..at]),
        None => note.to_string(),
    }
}

#[cfg(test)]
mod tests;
