//! What became of one mail in a pass, decided or delivered: one type, so that counting,
//! logging and where the mail goes are derived from it in one place.

use super::defer_cause::DeferCause;
use crate::config::{Disposition, MailboxConfig};
use crate::mail::decide::SkipKind;

/// The outcomes `ledger list --state` offers: every one but a deferral (a mail left for
/// a later pass is not decided yet). A new outcome's name goes here too.
pub(crate) const LISTED: &[&str] = &[
    "failed",
    "unverified",
    "unmatched",
    "ignored",
    "approved",
    "forwarded",
    "posted",
    "new_ticket",
    "duplicate",
];

/// What `ledger list` shows without `--state`: the mails that reached no ticket.
pub(crate) const NOT_PLACED: &[&str] = &["failed", "unverified", "unmatched", "ignored"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Accepted by the API now, or found on the ticket after a lost answer.
    Posted,
    /// Posted (or found on the ticket) because a person vouched for it: moved into the
    /// approve folder, it skipped the sender check.
    Approved,
    /// An agent's forward: the forwarded mail posted (or found on the ticket) as the
    /// customer's, without the sender check (the agent vouched for it).
    Forwarded,
    /// Posted before (the ledger says so, or a copy was just posted): only disposed.
    Duplicate,
    /// A mail without a ticket number became this new ticket.
    NewTicket { ticket: u64 },
    /// No ticket number found.
    Unmatched(String),
    /// An auto-reply, a bounce, a refused sender.
    Ignored(String),
    /// `verify_sender = "enforce"` found a stranger.
    Unverified(String),
    /// Rejected for good, given up on, or unreadable.
    Failed(String),
    /// Left where it is for a later pass, which tries it again: counted under the
    /// label SPEC fixes for it, `retried`.
    Deferred(DeferCause),
}

impl Outcome {
    /// A mail `decide` skipped.
    pub(crate) fn skipped(kind: SkipKind, reason: String) -> Outcome {
        match kind {
            SkipKind::Unmatched => Outcome::Unmatched(reason),
            SkipKind::Ignored => Outcome::Ignored(reason),
            SkipKind::Failed => Outcome::Failed(reason),
        }
    }

    /// The name in logs and in `thulium_bridge_mails_total{outcome}`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Outcome::Posted => "posted",
            Outcome::Approved => "approved",
            Outcome::Forwarded => "forwarded",
            Outcome::Duplicate => "duplicate",
            Outcome::NewTicket { .. } => "new_ticket",
            Outcome::Unmatched(_) => "unmatched",
            Outcome::Ignored(_) => "ignored",
            Outcome::Unverified(_) => "unverified",
            Outcome::Failed(_) => "failed",
            Outcome::Deferred(_) => "retried",
        }
    }

    pub(crate) fn reason(&self) -> String {
        match self {
            Outcome::Posted => String::new(),
            Outcome::Approved => "approved by a person (moved into the approve folder)".into(),
            Outcome::Forwarded => "an agent's forward: the forwarded mail was posted".into(),
            Outcome::Duplicate => "already posted".into(),
            Outcome::NewTicket { ticket } => format!("opened ticket {ticket}"),
            Outcome::Unmatched(r)
            | Outcome::Ignored(r)
            | Outcome::Unverified(r)
            | Outcome::Failed(r) => r.clone(),
            Outcome::Deferred(cause) => cause.to_string(),
        }
    }

    /// Where the mail goes; `None` while it waits for a later pass.
    pub(crate) fn disposition<'m>(&self, mb: &'m MailboxConfig) -> Option<&'m Disposition> {
        match self {
            Outcome::Posted
            | Outcome::Approved
            | Outcome::Forwarded
            | Outcome::Duplicate
            | Outcome::NewTicket { .. } => Some(&mb.on_posted),
            Outcome::Unmatched(_) => Some(mb.unmatched_disposition()),
            Outcome::Ignored(_) => Some(&mb.on_ignored),
            Outcome::Unverified(_) => Some(&mb.on_unverified),
            Outcome::Failed(_) => Some(&mb.on_failed),
            Outcome::Deferred(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each outcome; the `match` makes a new variant fail to compile here until
    /// it is placed in [`LISTED`] (or deliberately left out) and maybe [`NOT_PLACED`].
    #[test]
    fn every_decided_outcome_can_be_listed_and_only_unplaced_ones_by_default() {
        let all = [
            Outcome::Posted,
            Outcome::Approved,
            Outcome::Forwarded,
            Outcome::Duplicate,
            Outcome::NewTicket { ticket: 1 },
            Outcome::Unmatched(String::new()),
            Outcome::Ignored(String::new()),
            Outcome::Unverified(String::new()),
            Outcome::Failed(String::new()),
            Outcome::Deferred(DeferCause::Stopping),
        ];
        for outcome in all {
            let (listed, placed) = match outcome {
                Outcome::Posted
                | Outcome::Approved
                | Outcome::Forwarded
                | Outcome::Duplicate
                | Outcome::NewTicket { .. } => (true, true),
                Outcome::Unmatched(_)
                | Outcome::Ignored(_)
                | Outcome::Unverified(_)
                | Outcome::Failed(_) => (true, false),
                Outcome::Deferred(_) => (false, false),
            };
            let name = outcome.name();
            assert_eq!(LISTED.contains(&name), listed, "{name}");
            assert_eq!(NOT_PLACED.contains(&name), listed && !placed, "{name}");
        }
    }
}
