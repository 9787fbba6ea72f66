//! From the raw bytes of a mail and the config to what the bridge does with it.
//!
//! Pure: no network, no clock, no disk. The daemon and `explain` both call
//! [`decide`], so they can never disagree about a mail.

use crate::config::{Config, ContentConfig, FiltersConfig, Invalid, MatchConfig};
use crate::mail::body::{self, BodyType};
use crate::mail::classify::{self, SenderRules};
use crate::mail::date;
use crate::mail::identity::MailId;
use crate::mail::ticket::{SubjectMatch, TicketMatcher};
use chrono::{DateTime, FixedOffset};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The config's deciding rules, compiled once.
#[derive(Debug, Clone)]
pub struct Rules {
    pub tickets: TicketMatcher,
    pub senders: SenderRules,
    pub filters: FiltersConfig,
    pub content: ContentConfig,
    pub timezone: chrono_tz::Tz,
    pub use_references: bool,
}

impl Rules {
    /// Compiles the rules of a config that `Config::parse` already validated.
    pub fn new(config: &Config) -> Result<Rules, Invalid> {
        Rules::from_parts(
            &config.matching,
            &config.filters,
            &config.content,
            config.timezone(),
        )
    }

    /// The rules of an empty config (for `explain` without a config file).
    pub fn defaults() -> Result<Rules, Invalid> {
        Rules::from_parts(
            &MatchConfig::default(),
            &FiltersConfig::default(),
            &ContentConfig::default(),
            chrono_tz::Europe::Warsaw,
        )
    }

    fn from_parts(
        matching: &MatchConfig,
        filters: &FiltersConfig,
        content: &ContentConfig,
        timezone: chrono_tz::Tz,
    ) -> Result<Rules, Invalid> {
        Ok(Rules {
            tickets: TicketMatcher::new(&matching.subject_patterns)
                .map_err(|(i, e)| Invalid::new(format!("match.subject_patterns[{i}]"), e))?,
            senders: SenderRules::new(filters)
                .map_err(|(k, e)| Invalid::new(format!("filters.{k}"), e))?,
            filters: filters.clone(),
            content: content.clone(),
            timezone,
            use_references: matching.use_references,
        })
    }
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
    pub message_id: Option<String>,
    /// The From address, lower-cased (for `verify_sender`).
    pub from: Option<String>,
    pub subject: String,
    /// When the mail was sent (Date header, else INTERNALDATE); orders posts per ticket.
    pub sent: Option<DateTime<FixedOffset>>,
    pub action: Action,
}

/// Decides about one mail. `internal_date` is the IMAP INTERNALDATE, the fallback date.
pub fn decide(
    raw: &[u8],
    rules: &Rules,
    refs: &dyn References,
    internal_date: Option<DateTime<FixedOffset>>,
) -> Decision {
    let id_of_raw = || MailId {
        message_id: None,
        content: hex::encode(Sha256::digest(raw)),
        legacy: None,
    };
    let skip = |id: MailId, kind, reason: String| Decision {
        id,
        message_id: None,
        from: None,
        subject: String::new(),
        sent: internal_date,
        action: Action::Skip { kind, reason },
    };
    let max = rules.content.max_message_size.bytes();
    if raw.len() as u64 > max {
        return skip(
            id_of_raw(),
            SkipKind::Failed,
            format!(
                "mail is {} bytes, over max_message_size ({})",
                raw.len(),
                rules.content.max_message_size
            ),
        );
    }
    let normalized = crate::mail::normalize_line_ends(raw);
    let Some(msg) = mail_parser::MessageParser::default().parse(normalized.as_ref()) else {
        return skip(id_of_raw(), SkipKind::Failed, "not a parseable mail".into());
    };
    if msg.headers().is_empty() {
        return skip(
            id_of_raw(),
            SkipKind::Failed,
            "not a mail: no header found".into(),
        );
    }

    let message_id = msg
        .message_id()
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(|id| id.to_string());
    let from = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(|a| a.trim().to_ascii_lowercase());
    let subject = msg.subject().unwrap_or("").trim().to_string();
    let id = MailId::of(
        raw,
        message_id.as_deref(),
        from.as_deref().unwrap_or(""),
        msg.header_raw("Date").unwrap_or(""),
        &subject,
    );
    let sent = date::sent_at(&msg).or(internal_date);
    let decision = |action| Decision {
        id: id.clone(),
        message_id: message_id.clone(),
        from: from.clone(),
        subject: subject.clone(),
        sent,
        action,
    };
    let skipped = |kind, reason: String| decision(Action::Skip { kind, reason });

    if rules.filters.skip_bounces
        && let Some(reason) = classify::bounce_reason(&msg)
    {
        return skipped(SkipKind::Ignored, reason);
    }
    if rules.filters.skip_auto_replies
        && let Some(reason) = classify::auto_reply_reason(&msg)
    {
        return skipped(SkipKind::Ignored, reason);
    }
    match &from {
        Some(address) => {
            if let Some(reason) = rules.senders.refusal(address) {
                return skipped(SkipKind::Ignored, reason);
            }
        }
        None => return skipped(SkipKind::Ignored, "no From address".into()),
    }

    let (ticket, matched_by) = match rules.tickets.find(&subject) {
        SubjectMatch::Ticket { id, pattern } => (id, format!("subject_patterns[{pattern}]")),
        SubjectMatch::Ambiguous(ids) => {
            let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
            return skipped(
                SkipKind::Unmatched,
                format!("subject names more than one ticket ({})", ids.join(", ")),
            );
        }
        SubjectMatch::None => match references_ticket(&msg, rules, refs) {
            Some((id, via)) => (id, format!("references ({via})")),
            None => {
                return skipped(
                    SkipKind::Unmatched,
                    "no ticket number in the subject".into(),
                );
            }
        },
    };

    let Some(sent_at) = sent else {
        return skipped(
            SkipKind::Failed,
            "no usable Date header and no INTERNALDATE".into(),
        );
    };
    let body = body::extract(&msg, &rules.content);
    decision(Action::Post {
        ticket,
        matched_by,
        request: CustomerResponse {
            body: body.text,
            body_type: body.body_type,
            date: date::thulium_date(sent_at, rules.timezone),
        },
    })
}

/// A posted mail this one answers (In-Reply-To first, then References, newest first).
fn references_ticket(
    msg: &mail_parser::Message<'_>,
    rules: &Rules,
    refs: &dyn References,
) -> Option<(u64, String)> {
    if !rules.use_references {
        return None;
    }
    let in_reply_to = msg.in_reply_to().as_text_list().unwrap_or_default();
    let references = msg.references().as_text_list().unwrap_or_default();
    let ids = in_reply_to.iter().chain(references.iter().rev());
    ids.into_iter().find_map(|id| {
        refs.ticket_for(&format!("<{}>", id.trim()))
            .map(|t| (t, format!("<{}>", id.trim())))
    })
}
