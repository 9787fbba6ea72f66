//! From the raw bytes of a mail and the config to what the bridge does with it.
//!
//! Pure: no network, no clock, no disk. The daemon and `explain` both call
//! [`decide`], so they can never disagree about a mail.

use crate::mail::address::is_plain_address;
use crate::mail::authentication::{self, AuthVerdict};
use crate::mail::body::{self, Attachment, BodyType};
use crate::mail::classify::{self, PatternList, SenderRules};
use crate::mail::content::ContentConfig;
use crate::mail::date::{self, SentSource};
use crate::mail::forward::{self, Forwarded};
use crate::mail::identity::MailId;
use crate::mail::invisible;
use crate::mail::ticket::{MAX_SUBJECT, SubjectMatch, TicketMatcher};
use crate::mail::{sender, thread};
use chrono::{DateTime, FixedOffset};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The rules `decide` applies, compiled once (from the config, by `config::rules`).
#[derive(Debug, Clone)]
pub struct Rules {
    pub tickets: TicketMatcher,
    pub senders: SenderRules,
    /// `[filters]`: auto-replies and bounces are ignored, not posted.
    pub skip_auto_replies: bool,
    pub skip_bounces: bool,
    pub content: ContentConfig,
    pub timezone: chrono_tz::Tz,
    pub use_references: bool,
    /// The helpdesk's own addresses, lower-cased: mail from them is a loop.
    pub own_addresses: Vec<String>,
    /// Authentication-Results ids whose verdict counts (empty: not checked).
    pub trusted_authserv_id: Vec<String>,
    /// Set when the mailbox turns mails without a ticket into new tickets.
    pub new_ticket: Option<NewTicketSettings>,
    /// A person moved the mail into the approve folder: what would only ignore it
    /// (auto-reply, bounce, the helpdesk's own address, `deny_senders`) does not.
    pub vouched: bool,
    /// `[thulium] agents`: an authenticated mail from them that forwards a mail is
    /// posted as the forwarded mail.
    pub agents: PatternList,
}

impl Rules {
    /// These rules for mails a person vouched for (the approve folder).
    pub fn vouched(&self) -> Rules {
        Rules {
            vouched: true,
            ..self.clone()
        }
    }
}

/// Where a mailbox's new tickets go and what they carry (`[mailbox.new_ticket]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicketSettings {
    /// The helpdesk mailbox's address (it picks the queue when none is given).
    pub to: String,
    pub ticket_queue_id: Option<u64>,
    pub tags: Vec<String>,
    pub category_id: Option<u64>,
    pub status_id: Option<u64>,
    /// New tickets one sender address may open per hour (counted by the daemon).
    pub per_sender_per_hour: u32,
}

/// Message-IDs the bridge already posted, and to which ticket (backed by the ledger).
pub trait References {
    fn ticket_for(&self, message_id: &str) -> Option<u64>;
}

/// For `explain` and tests: nothing was posted before.
pub struct NoReferences;

impl References for NoReferences {
    fn ticket_for(&self, _message_id: &str) -> Option<u64> {
        None
    }
}

/// The JSON body of `POST tickets/{id}/customer_response`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerResponse {
    pub body: String,
    pub body_type: BodyType,
    pub date: String,
}

/// A new ticket for a mail: what `POST tickets` sends, but the attachments, which are
/// uploaded first (their tokens go into the request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    /// The helpdesk mailbox's address.
    pub to: String,
    /// The customer's address.
    pub from: String,
    pub subject: String,
    pub body: String,
    pub body_type: BodyType,
    pub cc: Vec<String>,
    pub ticket_queue_id: Option<u64>,
    pub tags: Vec<String>,
    pub category_id: Option<u64>,
    pub status_id: Option<u64>,
}

/// Where a skipped mail goes: the mailbox's `on_unmatched`, `on_ignored` or `on_failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SkipKind {
    Unmatched,
    Ignored,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Post {
        ticket: u64,
        matched_by: String,
        request: CustomerResponse,
    },
    /// No ticket number, and the mailbox opens tickets: `POST tickets` with the
    /// `attachments` uploaded first (their tokens go into the request).
    NewTicket {
        request: NewTicket,
        attachments: Vec<Attachment>,
    },
    Skip {
        kind: SkipKind,
        reason: String,
    },
}

/// What to do with one mail, and the facts the log and the ledger need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Which mail this is, for the ledger.
    pub id: MailId,
    /// The Message-ID header as written, for `explain`; not `id.message_id`, which is
    /// its key form (and, for an agent's forward, the forwarded mail's).
    pub message_id: Option<String>,
    /// The From address, lower-cased (for `verify_sender`).
    pub from: Option<String>,
    pub subject: String,
    /// When the mail was sent (Date header, else INTERNALDATE); orders posts per ticket.
    pub sent: Option<DateTime<FixedOffset>>,
    /// Where `sent` came from, and why INTERNALDATE replaced the Date header.
    pub sent_source: SentSource,
    /// The receiving server's verdict on the From domain (`trusted_authserv_id`).
    pub authentication: AuthVerdict,
    /// Message-IDs this mail answers (`<id>`): In-Reply-To first, then References
    /// newest first; for `verify_sender`'s thread check.
    pub references: Vec<String>,
    pub action: Action,
    /// An agent's forward: the forwarded mail, which `action` posts (its body, its date)
    /// and `id` names (so it is posted once however often it is forwarded).
    pub forward: Option<Box<Forwarded>>,
}

impl Decision {
    /// A skip decided without reading the mail (too big, unparseable, a panic while
    /// reading it): only its identity and INTERNALDATE are known.
    pub fn unread(
        id: MailId,
        kind: SkipKind,
        reason: String,
        internal_date: Option<DateTime<FixedOffset>>,
    ) -> Decision {
        Decision {
            id,
            message_id: None,
            from: None,
            subject: String::new(),
            sent: internal_date,
            sent_source: match internal_date {
                Some(_) => SentSource::InternalDate("the mail was not read".into()),
                None => SentSource::Unknown,
            },
            authentication: AuthVerdict::NotChecked,
            references: Vec::new(),
            action: Action::Skip { kind, reason },
            forward: None,
        }
    }
}

/// Decides about one mail. `internal_date` is the IMAP INTERNALDATE, the fallback date.
pub fn decide(
    raw: &[u8],
    rules: &Rules,
    refs: &dyn References,
    internal_date: Option<DateTime<FixedOffset>>,
) -> Decision {
    let unread = |reason: String| {
        let id = MailId {
            message_id: None,
            content: hex::encode(Sha256::digest(raw)),
            legacy: None,
        };
        Decision::unread(id, SkipKind::Failed, reason, internal_date)
    };
    if let Some(reason) = oversize(raw, rules) {
        return unread(reason);
    }
    let prepared = crate::mail::prepared(raw);
    let msg = match parse(&prepared) {
        Ok(msg) => msg,
        Err(why) => return unread(why),
    };

    let sender = sender::sender(&msg);
    let facts = Facts::read(
        &msg,
        raw,
        sender.as_ref().ok().cloned(),
        rules,
        internal_date,
    );
    if !rules.vouched
        && let Some(reason) = ignore_reason(&msg, rules, facts.from.as_deref())
    {
        return facts.decision(skip(SkipKind::Ignored, reason));
    }
    // A From that reads two ways is no one's; a person who moved it to Approve vouched
    // for it, and it then goes to the ticket its subject names (never a new ticket).
    if let Err(why) = sender
        && !rules.vouched
    {
        return facts.decision(skip(SkipKind::Ignored, why));
    }
    if let Some(forwarded) = agents_forward(&msg, rules, &facts) {
        return forward_decision(forwarded, rules, facts);
    }
    let action = reply_action(&msg, rules, refs, &facts);
    facts.decision(action)
}

fn skip(kind: SkipKind, reason: String) -> Action {
    Action::Skip { kind, reason }
}

/// Why a mail is too big to be read at all.
fn oversize(raw: &[u8], rules: &Rules) -> Option<String> {
    let max = rules.content.max_message_size.bytes();
    (raw.len() as u64 > max).then(|| {
        format!(
            "mail is {} bytes, over max_message_size ({})",
            raw.len(),
            rules.content.max_message_size
        )
    })
}

/// The mail parsed, or why it is no mail the bridge can read.
fn parse(prepared: &[u8]) -> Result<mail_parser::Message<'_>, String> {
    crate::mail::mime_parameters::check_attached_messages(prepared)?;
    let Some(msg) = mail_parser::MessageParser::default().parse(prepared) else {
        return Err("not a parseable mail".into());
    };
    if msg.headers().is_empty() {
        return Err("not a mail: no header found".into());
    }
    Ok(msg)
}

/// What the log, the ledger and `explain` know of a read mail, whatever is done with it.
struct Facts {
    id: MailId,
    message_id: Option<String>,
    from: Option<String>,
    subject: String,
    sent: Option<DateTime<FixedOffset>>,
    sent_source: SentSource,
    authentication: AuthVerdict,
    references: Vec<String>,
}

impl Facts {
    /// `from` is the sender's address, when it has one.
    fn read(
        msg: &mail_parser::Message<'_>,
        raw: &[u8],
        from: Option<String>,
        rules: &Rules,
        internal_date: Option<DateTime<FixedOffset>>,
    ) -> Facts {
        let message_id = msg
            .message_id()
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(|id| id.to_string());
        let full_subject = msg.subject().unwrap_or("").trim();
        let id = MailId::of(
            raw,
            message_id.as_deref(),
            from.as_deref().unwrap_or(""),
            msg.header_raw("Date").unwrap_or(""),
            full_subject,
        );
        // Logs and `explain` show at most what ticket matching reads, and nothing unseen
        // (a new ticket's subject is what agents read first).
        let subject = invisible::strip(
            full_subject
                .get(..full_subject.floor_char_boundary(MAX_SUBJECT))
                .unwrap_or("")
                .to_string(),
        );
        let (sent, sent_source) = date::choose(date::sent_at(msg), internal_date);
        let from_domain = from
            .as_deref()
            .and_then(|a| a.rsplit_once('@'))
            .map(|(_, d)| d);
        let authentication =
            authentication::authenticate(msg, from_domain, &rules.trusted_authserv_id);
        Facts {
            id,
            message_id,
            from,
            subject,
            sent,
            sent_source,
            authentication,
            references: thread::references(msg),
        }
    }

    fn decision(self, action: Action) -> Decision {
        Decision {
            id: self.id,
            message_id: self.message_id,
            from: self.from,
            subject: self.subject,
            sent: self.sent,
            sent_source: self.sent_source,
            authentication: self.authentication,
            references: self.references,
            action,
            forward: None,
        }
    }
}

/// The mail an agent forwarded, when the mail is one. A forged From is no agent: only
/// the receiving server's verdict makes one.
fn agents_forward(
    msg: &mail_parser::Message<'_>,
    rules: &Rules,
    facts: &Facts,
) -> Option<Forwarded> {
    let is_agent = |address: &str| rules.agents.first_match(address).is_some();
    if !matches!(facts.authentication, AuthVerdict::Pass(_))
        || !facts.from.as_deref().is_some_and(is_agent)
    {
        return None;
    }
    forward::unwrap(
        msg,
        &forward::Context {
            subject: &facts.subject,
            is_agent: &is_agent,
            sent: facts.sent,
            timezone: rules.timezone,
        },
    )
}

/// An agent's forward is decided about as the forwarded mail: its identity, date,
/// references and body.
fn forward_decision(forwarded: Forwarded, rules: &Rules, facts: Facts) -> Decision {
    let (sent, sent_source) = forwarded_date(&forwarded, facts.sent, &facts.sent_source);
    let action = forwarded_action(&forwarded, rules, &facts.subject, sent);
    let mut d = facts.decision(action);
    d.id = forwarded.id.clone();
    d.sent = sent;
    d.sent_source = sent_source;
    d.references = forwarded.references.clone();
    d.forward = Some(Box::new(forwarded));
    d
}

/// A customer's mail: posted to the ticket its subject or its references name; without
/// one, a new ticket (when the mailbox opens tickets).
fn reply_action(
    msg: &mail_parser::Message<'_>,
    rules: &Rules,
    refs: &dyn References,
    facts: &Facts,
) -> Action {
    let (ticket, matched_by) = match rules.tickets.find(&facts.subject) {
        SubjectMatch::Ticket { id, pattern } => (id, format!("subject_patterns[{pattern}]")),
        SubjectMatch::Ambiguous(ids) => {
            let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
            return skip(
                SkipKind::Unmatched,
                format!("subject names more than one ticket ({})", ids.join(", ")),
            );
        }
        SubjectMatch::None => match references_ticket(&facts.references, rules, refs) {
            Some((id, via)) => (id, format!("references ({via})")),
            None => {
                return match (&rules.new_ticket, &facts.from) {
                    (Some(settings), Some(from)) => {
                        new_ticket(msg, rules, settings, from, &facts.subject)
                    }
                    _ => skip(
                        SkipKind::Unmatched,
                        "no ticket number in the subject".into(),
                    ),
                };
            }
        },
    };

    let Some(sent_at) = facts.sent else {
        return skip(
            SkipKind::Failed,
            "no usable Date header and no INTERNALDATE".into(),
        );
    };
    let body = body::extract(msg, &rules.content);
    if body.text.trim().is_empty() {
        return skip(
            SkipKind::Failed,
            "nothing to post: the mail has no text and no attachments".into(),
        );
    }
    Action::Post {
        ticket,
        matched_by,
        request: CustomerResponse {
            body: body.text,
            body_type: body.body_type,
            date: date::thulium_date(sent_at, rules.timezone),
        },
    }
}

/// The forwarded mail's own date, unless it has none or one after the forward's (a
/// day of slack for clocks): then the forward's, said why.
fn forwarded_date(
    forwarded: &Forwarded,
    sent: Option<DateTime<FixedOffset>>,
    sent_source: &SentSource,
) -> (Option<DateTime<FixedOffset>>, SentSource) {
    let why = match (forwarded.date, sent) {
        (Some(date), Some(own)) if date > own + chrono::Duration::days(1) => format!(
            "the forwarded mail's date ({}) is after the forward's",
            date.to_rfc3339()
        ),
        (Some(date), _) => return (Some(date), SentSource::DateHeader),
        (None, _) if forwarded.date_text.is_empty() => "the forwarded mail has no date".into(),
        (None, _) => format!(
            "the forwarded mail's date {:?} cannot be read",
            forwarded.date_text
        ),
    };
    let own = match sent_source {
        SentSource::InternalDate(_) => "the server received the forward",
        _ => "the forward was sent",
    };
    (
        sent,
        SentSource::Forward(format!("{why}; when {own} instead")),
    )
}

/// An agent's forward: posted to the ticket the forward's subject names, as the
/// forwarded mail's customer response; without a ticket number, a new ticket for the
/// forwarded mail's sender (when the mailbox opens tickets).
fn forwarded_action(
    forwarded: &Forwarded,
    rules: &Rules,
    subject: &str,
    sent: Option<DateTime<FixedOffset>>,
) -> Action {
    let Some(msg) = mail_parser::MessageParser::default().parse(&forwarded.raw) else {
        return skip(SkipKind::Failed, "the forwarded mail cannot be read".into());
    };
    match rules.tickets.find(subject) {
        SubjectMatch::Ticket { id, pattern } => {
            let Some(sent) = sent else {
                return skip(
                    SkipKind::Failed,
                    "no usable date for the forwarded mail, the forward or INTERNALDATE".into(),
                );
            };
            let body = body::extract(&msg, &rules.content);
            if body.text.trim().is_empty() {
                return skip(
                    SkipKind::Failed,
                    "nothing to post: the forwarded mail has no text and no attachments".into(),
                );
            }
            Action::Post {
                ticket: id,
                matched_by: format!("subject_patterns[{pattern}], an agent's forward"),
                request: CustomerResponse {
                    body: body.text,
                    body_type: body.body_type,
                    date: date::thulium_date(sent, rules.timezone),
                },
            }
        }
        SubjectMatch::Ambiguous(ids) => {
            let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
            skip(
                SkipKind::Unmatched,
                format!("subject names more than one ticket ({})", ids.join(", ")),
            )
        }
        SubjectMatch::None => match (&rules.new_ticket, &forwarded.from) {
            (Some(settings), Some(from)) => {
                new_ticket(&msg, rules, settings, from, &forwarded.subject)
            }
            (Some(_), None) => skip(
                SkipKind::Unmatched,
                format!(
                    "an agent's forward without a ticket number, of a mail whose sender has no address ({:?}): no ticket can be opened for it",
                    forwarded.sender
                ),
            ),
            (None, _) => skip(
                SkipKind::Unmatched,
                "an agent's forward without a ticket number in the subject".into(),
            ),
        },
    }
}

/// Why a mail is not a customer's reply at all: a bounce, an auto-reply, the helpdesk's
/// own mail, a refused sender.
fn ignore_reason(
    msg: &mail_parser::Message<'_>,
    rules: &Rules,
    from: Option<&str>,
) -> Option<String> {
    if rules.skip_bounces
        && let Some(reason) = classify::bounce_reason(msg)
    {
        return Some(reason);
    }
    if rules.skip_auto_replies
        && let Some(reason) = classify::auto_reply_reason(msg)
    {
        return Some(reason);
    }
    // After the bounce and auto-reply checks, whose reasons say more: whatever the
    // filters, the helpdesk's own mail is never posted.
    if let Some(reason) = classify::loop_reason(msg, &rules.own_addresses) {
        return Some(reason);
    }
    from.and_then(|address| rules.senders.refusal(address))
}

/// A new ticket from a mail: its body cleaned like a reply's and sent as HTML; its
/// attachments (not the images the body shows) attached within the size and count
/// limits, the rest named in the body.
fn new_ticket(
    msg: &mail_parser::Message<'_>,
    rules: &Rules,
    settings: &NewTicketSettings,
    from: &str,
    subject: &str,
) -> Action {
    let mut content = rules.content.clone();
    content.attachment_note = false;
    let body = body::extract(msg, &content);
    let mut html = match body.body_type {
        BodyType::Html => body.text,
        BodyType::Plain => body::plain_to_html(&body.text),
    };
    let (each, total, files) = (
        content.max_attachment_size.bytes(),
        content.max_attachments_total.bytes(),
        content.max_attachments,
    );
    let mut attached = Vec::new();
    let mut left_out = Vec::new();
    let mut sum = 0u64;
    for a in body.attachments {
        if attached.len() < files && a.size <= each && sum + a.size <= total {
            sum += a.size;
            attached.push(a);
        } else {
            left_out.push(a);
        }
    }
    if !left_out.is_empty() {
        html.push_str(&format!(
            "<p>Not attached, over the limits ({} each, {} together, {files} files): {}</p>",
            content.max_attachment_size,
            content.max_attachments_total,
            body::escape_html(&body::attachment_names(&left_out))
        ));
    }
    // A mail without text shows its attachment note instead (body::extract).
    if html.trim().is_empty() {
        return Action::Skip {
            kind: SkipKind::Failed,
            reason: "nothing to open a ticket with: the mail has no text and no attachments".into(),
        };
    }
    let cc = cc_addresses(msg, from);
    let subject = if subject.trim().is_empty() {
        "(no subject)".to_string()
    } else {
        subject.to_string()
    };
    Action::NewTicket {
        request: NewTicket {
            to: settings.to.clone(),
            from: from.to_string(),
            subject,
            body: html,
            body_type: BodyType::Html,
            cc,
            ticket_queue_id: settings.ticket_queue_id,
            tags: settings.tags.clone(),
            category_id: settings.category_id,
            status_id: settings.status_id,
        },
        attachments: attached,
    }
}

/// Cc of a new ticket at most (each is copied on the helpdesk's answers).
const MAX_CC: usize = 50;

/// The mail's Cc that the helpdesk can write to: addresses only (not `'@'`), each once,
/// not the customer's own.
fn cc_addresses(msg: &mail_parser::Message<'_>, from: &str) -> Vec<String> {
    let mut cc: Vec<String> = Vec::new();
    let Some(list) = msg.cc() else {
        return cc;
    };
    for address in list.iter().filter_map(|a| a.address()) {
        let address = address.trim().to_ascii_lowercase();
        if cc.len() == MAX_CC {
            break;
        }
        if address != from && is_plain_address(&address) && !cc.contains(&address) {
            cc.push(address);
        }
    }
    cc
}

/// A posted mail this one answers (In-Reply-To first, then References, newest first).
fn references_ticket(
    references: &[String],
    rules: &Rules,
    refs: &dyn References,
) -> Option<(u64, String)> {
    if !rules.use_references {
        return None;
    }
    references
        .iter()
        .find_map(|id| refs.ticket_for(id).map(|t| (t, id.clone())))
}

/// What an empty config compiles to (`config::default_rules`, held to this by a test
/// there): the core's own tests start from it.
#[cfg(test)]
impl Rules {
    pub(crate) fn for_tests() -> Rules {
        let none: &[String] = &[];
        let compiled = (
            TicketMatcher::new(&[crate::mail::ticket::DEFAULT_SUBJECT_PATTERN.to_string()]),
            SenderRules::new(none, none),
            PatternList::new("agents", none),
        );
        let (Ok(tickets), Ok(senders), Ok(agents)) = compiled else {
            panic!("the default rules compile: {compiled:?}");
        };
        Rules {
            tickets,
            senders,
            skip_auto_replies: true,
            skip_bounces: true,
            content: ContentConfig::default(),
            timezone: chrono_tz::Europe::Warsaw,
            use_references: true,
            own_addresses: Vec::new(),
            trusted_authserv_id: Vec::new(),
            new_ticket: None,
            vouched: false,
            agents,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIVED: &str = "2025-03-04T10:15:30+01:00";

    fn received() -> Option<DateTime<FixedOffset>> {
        DateTime::parse_from_rfc3339(RECEIVED).ok()
    }

    fn mail(headers: &str, body: &str) -> Vec<u8> {
        format!(
            "From: Anna <anna@customer.example>\r\nSubject: Re: [#12] Invoice\r\n\
             Date: Tue, 04 Mar 2025 10:15:00 +0100\r\n{headers}\r\n{body}"
        )
        .into_bytes()
    }

    fn rules() -> Rules {
        Rules::for_tests()
    }

    fn skip(d: &Decision) -> Option<(SkipKind, &str)> {
        match &d.action {
            Action::Skip { kind, reason } => Some((*kind, reason.as_str())),
            Action::Post { .. } | Action::NewTicket { .. } => None,
        }
    }

    /// A challenge-response request, and an Exchange auto-reply in Czech, carrying the
    /// ticket tag they answer: ignored like every auto-reply, and posted when
    /// `skip_auto_replies` is off.
    #[test]
    fn challenges_and_localized_auto_replies_are_ignored_as_auto_replies() {
        let challenge = mail("X-Bluebottle-Request: sender-verification\r\n", "Hi\r\n");
        let czech = b"From: anna@customer.example\r\n\
            Subject: =?UTF-8?Q?Automatick=C3=A1_odpov=C4=9B=C4=8F:_Re:_[#12]_Invoice?=\r\n\
            Date: Tue, 04 Mar 2025 10:15:00 +0100\r\n\r\nJsem mimo kancel\xc3\xa1\xc5\x99.\r\n";
        let d = decide(&challenge, &rules(), &NoReferences, received());
        assert_eq!(
            skip(&d),
            Some((
                SkipKind::Ignored,
                "challenge-response: X-Bluebottle-Request (Bluebottle)"
            ))
        );
        let d = decide(czech, &rules(), &NoReferences, received());
        assert_eq!(
            skip(&d),
            Some((
                SkipKind::Ignored,
                "auto-reply: subject starts with \"Automatická odpověď\""
            ))
        );
        let mut off = rules();
        off.skip_auto_replies = false;
        for raw in [&challenge[..], &czech[..]] {
            let d = decide(raw, &off, &NoReferences, received());
            assert!(matches!(d.action, Action::Post { ticket: 12, .. }), "{d:?}");
        }
    }

    /// Two From headers name no one: ignored with the reason, unless a person moved the
    /// mail to Approve, when it goes to its ticket (and never opens one).
    #[test]
    fn a_from_read_two_ways_is_ignored_unless_a_person_vouched_for_it() {
        let raw = mail("From: eve@evil.example\r\n", "Hi\r\n");
        let d = decide(&raw, &rules(), &NoReferences, received());
        assert_eq!(
            skip(&d),
            Some((
                SkipKind::Ignored,
                "2 From headers: which one wrote the mail is unknown"
            ))
        );
        let d = decide(&raw, &rules().vouched(), &NoReferences, received());
        assert!(matches!(d.action, Action::Post { ticket: 12, .. }), "{d:?}");
        assert_eq!(d.from, None);
    }

    #[test]
    fn the_helpdesk_s_own_mail_is_a_loop() {
        let mut r = rules();
        r.own_addresses = vec!["anna@customer.example".into()];
        let d = decide(&mail("", "Hi\r\n"), &r, &NoReferences, received());
        assert_eq!(
            skip(&d),
            Some((
                SkipKind::Ignored,
                "mail loop: from the helpdesk's own address anna@customer.example"
            ))
        );
        let d = decide(
            &mail("X-Loop: helpdesk\r\n", "Hi\r\n"),
            &rules(),
            &NoReferences,
            received(),
        );
        assert_eq!(
            skip(&d),
            Some((SkipKind::Ignored, "mail loop: X-Loop: helpdesk"))
        );
    }

    #[test]
    fn the_verdict_and_the_thread_are_reported() {
        let raw = mail(
            "Authentication-Results: mx.example.com; dkim=pass header.d=customer.example\r\n\
             In-Reply-To: <b@helpdesk.example>\r\nReferences: <a@helpdesk.example> <b@helpdesk.example>\r\n",
            "Hi\r\n",
        );
        let d = decide(&raw, &rules(), &NoReferences, received());
        assert_eq!(d.authentication, AuthVerdict::NotChecked);
        assert_eq!(
            d.references,
            ["<b@helpdesk.example>", "<a@helpdesk.example>"]
        );
        let r = Rules {
            trusted_authserv_id: vec!["mx.example.com".into()],
            ..rules()
        };
        let d = decide(&raw, &r, &NoReferences, received());
        assert_eq!(
            d.authentication,
            AuthVerdict::Pass("dkim=pass header.d=customer.example".into())
        );
        assert!(matches!(d.action, Action::Post { ticket: 12, .. }));
        // The verdict is reported, never acted on here: `verify_sender` decides.
        let forged = mail(
            "Authentication-Results: mx.example.com; dkim=pass header.d=evil.example\r\n",
            "Hi\r\n",
        );
        let d = decide(&forged, &r, &NoReferences, received());
        assert!(matches!(d.authentication, AuthVerdict::Fail(_)));
        assert!(matches!(d.action, Action::Post { .. }));
    }

    #[test]
    fn references_find_a_ticket_in_their_one_spelling() {
        struct Posted;
        impl References for Posted {
            fn ticket_for(&self, message_id: &str) -> Option<u64> {
                (message_id == "<a@helpdesk.example>").then_some(77)
            }
        }
        let raw = b"From: anna@customer.example\r\nSubject: Re: no tag\r\n\
            Date: Tue, 04 Mar 2025 10:15:00 +0100\r\nReferences: a@helpdesk.example\r\n\r\nHi\r\n";
        let d = decide(raw, &rules(), &Posted, received());
        match d.action {
            Action::Post {
                ticket, matched_by, ..
            } => {
                assert_eq!(ticket, 77);
                assert_eq!(matched_by, "references (<a@helpdesk.example>)");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_implausible_date_header_gives_way_to_internaldate() {
        let raw = b"From: anna@customer.example\r\nSubject: Re: [#1] x\r\n\
            Date: Sat, 01 Jan 2033 10:00:00 +0100\r\n\r\nHi\r\n";
        let d = decide(raw, &rules(), &NoReferences, received());
        assert_eq!(d.sent, received());
        assert!(matches!(&d.sent_source, SentSource::InternalDate(why) if why.contains("after")));
        match &d.action {
            Action::Post { request, .. } => assert_eq!(request.date, "2025-03-04 10:15"),
            other => panic!("{other:?}"),
        }
        // Without INTERNALDATE (explain), the Date header is used as it is.
        let d = decide(raw, &rules(), &NoReferences, None);
        assert_eq!(d.sent_source, SentSource::DateHeader);
        assert_eq!(
            d.sent.map(|t| t.to_rfc3339()).as_deref(),
            Some("2033-01-01T10:00:00+01:00")
        );
    }

    #[test]
    fn a_reply_of_attachments_posts_the_note_and_an_empty_one_fails() {
        let raw = mail(
            "Content-Type: multipart/mixed; boundary=m\r\n",
            "--m\r\nContent-Type: text/plain\r\n\r\n\r\n\
             --m\r\nContent-Type: application/pdf; name=scan.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--m--\r\n",
        );
        let d = decide(&raw, &rules(), &NoReferences, received());
        match &d.action {
            Action::Post { request, .. } => {
                assert_eq!(request.body, "Attachments: scan.pdf (3 B)");
                assert_eq!(request.body_type, BodyType::Plain);
            }
            other => panic!("{other:?}"),
        }
        let d = decide(&mail("", " \r\n"), &rules(), &NoReferences, received());
        assert_eq!(
            skip(&d),
            Some((
                SkipKind::Failed,
                "nothing to post: the mail has no text and no attachments"
            ))
        );
    }

    #[test]
    fn unread_mails_carry_no_facts() {
        let d = decide(b"", &rules(), &NoReferences, received());
        assert_eq!(d.authentication, AuthVerdict::NotChecked);
        assert!(d.references.is_empty());
        assert!(matches!(d.sent_source, SentSource::InternalDate(_)));
        assert!(matches!(skip(&d), Some((SkipKind::Failed, _))));
    }

    /// A mailbox that opens tickets in queue 3.
    fn ticketing() -> Rules {
        Rules {
            own_addresses: vec!["support@acme.example".into()],
            new_ticket: Some(NewTicketSettings {
                to: "help@acme.example".into(),
                ticket_queue_id: Some(3),
                tags: Vec::new(),
                category_id: None,
                status_id: None,
                per_sender_per_hour: 10,
            }),
            ..rules()
        }
    }

    /// A first mail: HTML with an inline image, a PDF and a spreadsheet attached.
    fn first_mail(pdf_size: usize) -> Vec<u8> {
        use base64::Engine;
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
        format!(
            "From: Anna <Anna@Customer.Example>\r\nTo: help@acme.example\r\nCc: Bob <bob@customer.example>\r\n\
             Subject: Printer on fire\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\nMessage-ID: <first@customer.example>\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n\
             --m\r\nContent-Type: multipart/related; boundary=r\r\n\r\n\
             --r\r\nContent-Type: text/html\r\n\r\n<p>It burns <img src=\"cid:logo@x\" alt=\"logo\"></p>\r\n\
             --r\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--r--\r\n\
             --m\r\nContent-Type: application/pdf; name=photo.pdf\r\nContent-Disposition: attachment; filename=photo.pdf\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n\
             --m\r\nContent-Type: application/vnd.ms-excel; name=list.xls\r\nContent-Disposition: attachment; filename=list.xls\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--m--\r\n",
            b64(100),
            b64(pdf_size),
            b64(300)
        )
        .into_bytes()
    }

    #[test]
    fn a_mail_without_a_ticket_becomes_one_with_its_attachments_but_not_its_inline_image() {
        let d = decide(&first_mail(2000), &ticketing(), &NoReferences, None);
        let Action::NewTicket {
            request,
            attachments,
        } = &d.action
        else {
            panic!("{:?}", d.action);
        };
        assert_eq!(request.to, "help@acme.example");
        assert_eq!(request.from, "anna@customer.example");
        assert_eq!(request.cc, ["bob@customer.example"]);
        assert_eq!(request.subject, "Printer on fire");
        assert_eq!(request.ticket_queue_id, Some(3));
        assert_eq!(request.body_type, BodyType::Html);
        assert!(request.body.contains("It burns"), "{}", request.body);
        let names: Vec<(&str, u64)> = attachments
            .iter()
            .map(|a| (a.name.as_str(), a.size))
            .collect();
        assert_eq!(names, [("photo.pdf", 2000), ("list.xls", 300)]);
    }

    #[test]
    fn an_attachment_over_the_limit_is_named_in_the_body_instead() {
        let rules = ticketing();
        let mut rules = rules;
        rules.content.max_attachment_size = crate::mail::size::ByteSize(1000);
        let d = decide(&first_mail(2000), &rules, &NoReferences, None);
        let Action::NewTicket {
            request,
            attachments,
        } = &d.action
        else {
            panic!("{:?}", d.action);
        };
        assert_eq!(attachments.len(), 1, "only the spreadsheet");
        assert!(
            request.body.contains("Not attached") && request.body.contains("photo.pdf"),
            "{}",
            request.body
        );
    }

    /// Jan, an agent, forwards Anna's mail inline; `auth` is the receiving server's
    /// verdict on acme.pl.
    fn agents_forward(subject: &str, auth: &str) -> Vec<u8> {
        format!(
            "Authentication-Results: mx.acme.pl; dmarc={auth} header.from=acme.pl\r\n\
             From: Jan <Jan@Acme.pl>\r\nTo: support@acme.pl\r\nSubject: {subject}\r\n\
             Date: Wed, 05 Mar 2025 09:00:00 +0100\r\nMessage-ID: <fwd@acme.pl>\r\n\r\n\
             Anna called me about this.\r\n\r\n---------- Forwarded message ---------\r\n\
             From: Anna Nowak <anna@customer.example>\r\nDate: Tue, Mar 4, 2025 at 10:15 AM\r\n\
             Subject: Printer\r\nTo: <jan@acme.pl>\r\n\r\nThe printer is on fire.\r\n"
        )
        .into_bytes()
    }

    fn with_agents(mut rules: Rules) -> Rules {
        rules.agents = PatternList::new("agents", &["*@acme.pl".into()]).expect("a glob");
        rules.trusted_authserv_id = vec!["mx.acme.pl".into()];
        rules
    }

    #[test]
    fn an_authenticated_agents_forward_posts_the_customers_mail() {
        let raw = agents_forward("Fwd: [#12] Printer", "pass");
        let d = decide(&raw, &with_agents(rules()), &NoReferences, received());
        let Action::Post {
            ticket,
            matched_by,
            request,
        } = &d.action
        else {
            panic!("{:?}", d.action);
        };
        assert_eq!(*ticket, 12);
        assert_eq!(matched_by, "subject_patterns[0], an agent's forward");
        assert_eq!(request.body, "The printer is on fire.");
        assert_eq!(request.date, "2025-03-04 10:15", "the customer's date");
        assert_eq!(d.sent_source, SentSource::DateHeader);
        assert_eq!(d.from.as_deref(), Some("jan@acme.pl"));
        let f = d.forward.as_deref().expect("the forwarded mail");
        assert_eq!(f.from.as_deref(), Some("anna@customer.example"));
        assert_eq!(f.note, "Anna called me about this.");
        assert_eq!(d.id, f.id, "the ledger knows it as the forwarded mail");
        // The same forward moved in again, or sent again, is the same mail.
        let again = decide(&raw, &with_agents(rules()), &NoReferences, None);
        assert_eq!(again.id, d.id);
    }

    #[test]
    fn a_forged_or_unchecked_agent_is_any_sender() {
        for (rules, auth) in [
            (with_agents(rules()), "fail"),
            (with_agents(rules()), "none"),
            // No trusted Authentication-Results id: nothing is authenticated.
            (
                Rules {
                    trusted_authserv_id: Vec::new(),
                    ..with_agents(self::rules())
                },
                "pass",
            ),
        ] {
            let d = decide(
                &agents_forward("Fwd: [#12] Printer", auth),
                &rules,
                &NoReferences,
                received(),
            );
            assert!(d.forward.is_none(), "{auth}");
            let Action::Post { request, .. } = &d.action else {
                panic!("{:?}", d.action);
            };
            assert!(request.body.contains("Anna called me"), "{}", request.body);
        }
    }

    #[test]
    fn an_agents_forward_without_a_ticket_opens_one_for_the_customer_or_is_unmatched() {
        let raw = agents_forward("Fwd: Printer", "pass");
        let d = decide(&raw, &with_agents(ticketing()), &NoReferences, received());
        let Action::NewTicket { request, .. } = &d.action else {
            panic!("{:?}", d.action);
        };
        assert_eq!(request.from, "anna@customer.example");
        assert_eq!(request.subject, "Printer");
        assert_eq!(request.body, "<p>The printer is on fire.</p>");
        let d = decide(&raw, &with_agents(rules()), &NoReferences, received());
        assert_eq!(
            skip(&d),
            Some((
                SkipKind::Unmatched,
                "an agent's forward without a ticket number in the subject"
            ))
        );
    }

    #[test]
    fn a_forwarded_date_after_the_forward_gives_way_to_the_forwards() {
        let raw = String::from_utf8(agents_forward("Fwd: [#12] Printer", "pass"))
            .expect("utf-8")
            .replace(
                "Tue, Mar 4, 2025 at 10:15 AM",
                "Tue, Mar 4, 2031 at 10:15 AM",
            );
        let d = decide(
            raw.as_bytes(),
            &with_agents(rules()),
            &NoReferences,
            received(),
        );
        assert!(
            matches!(&d.sent_source, SentSource::Forward(why) if why.contains("after the forward's")),
            "{:?}",
            d.sent_source
        );
        let Action::Post { request, .. } = &d.action else {
            panic!("{:?}", d.action);
        };
        assert_eq!(request.date, "2025-03-05 09:00");
    }

    #[test]
    fn an_agents_mail_that_forwards_nothing_is_handled_as_any() {
        let raw = b"Authentication-Results: mx.acme.pl; dmarc=pass header.from=acme.pl\r\n\
            From: jan@acme.pl\r\nSubject: [#12] Printer\r\nDate: Wed, 05 Mar 2025 09:00:00 +0100\r\n\r\n\
            I called Anna.\r\n";
        let d = decide(raw, &with_agents(rules()), &NoReferences, received());
        assert!(d.forward.is_none());
        assert!(
            matches!(&d.action, Action::Post { ticket: 12, request, .. } if request.body == "I called Anna.")
        );
    }

    #[test]
    fn a_plain_first_mail_is_sent_as_escaped_html_and_a_mailbox_without_tickets_skips_it() {
        let raw = b"From: a@customer.example\r\nSubject: Hi <there>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\n\r\nLine 1 & co\r\nLine 2\r\n\r\nNext\r\n";
        let d = decide(raw, &ticketing(), &NoReferences, None);
        let Action::NewTicket { request, .. } = &d.action else {
            panic!("{:?}", d.action);
        };
        assert_eq!(request.body, "<p>Line 1 &amp; co<br>Line 2</p><p>Next</p>");
        let plain = decide(raw, &rules(), &NoReferences, None);
        assert!(matches!(skip(&plain), Some((SkipKind::Unmatched, _))));
    }
}
