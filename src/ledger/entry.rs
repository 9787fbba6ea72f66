//! One mail's record in the ledger, and what creates and finishes it.

use crate::mail::MailId;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a mail stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum EntryState {
    /// Recorded before a POST; still so after a crash, a lost answer or a transient error.
    Pending,
    /// The API accepted it: never post again, only dispose.
    Posted,
    /// Rejected for good (or given up on); `reason` says why.
    Failed,
}

impl EntryState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EntryState::Pending => "pending",
            EntryState::Posted => "posted",
            EntryState::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<EntryState> {
        match s {
            "pending" => Some(EntryState::Pending),
            "posted" => Some(EntryState::Posted),
            "failed" => Some(EntryState::Failed),
            _ => None,
        }
    }
}

/// Where a mail sat when it was last handled. At a failure this tells a crash before the
/// disposal (the same UID again) from a person moving the mail back (a new UID).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Location {
    pub mailbox: String,
    pub folder: String,
    pub uid_validity: u32,
    pub uid: u32,
}

/// One mail as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub id: MailId,
    pub state: EntryState,
    pub ticket: u64,
    /// Hex SHA-256 of the exact JSON body last sent.
    pub body_hash: String,
    /// Hex SHA-256 of the reply reduced to text (`thulium::read_back`): counts the
    /// helpdesk messages other posted mails already account for.
    pub text_hash: String,
    /// The `date` sent (`YYYY-MM-DD HH:MM`, the account's zone).
    pub date: String,
    /// Failed attempts that counted (the API worked for other mails meanwhile).
    pub attempts: u32,
    /// Unix seconds of the first attempt (`max_age` counts from here).
    pub first_seen: u64,
    /// Unix milliseconds of the latest POST begun.
    pub last_attempt_ms: Option<u64>,
    /// Unix seconds of the last change.
    pub updated: u64,
    /// A POST may have reached the helpdesk unseen: read the ticket back before posting.
    pub outcome_unknown: bool,
    /// Unix seconds of the first POST since the outcome was last known: a read-back
    /// looks for the reply stored from then on.
    pub unknown_since: Option<u64>,
    pub location: Location,
    pub reason: Option<String>,
    /// `ledger retry` asked for a failed mail to be tried again.
    pub retry: bool,
}

impl Entry {
    /// How long ago the first attempt was (zero if the clock went back).
    pub(crate) fn age(&self) -> Duration {
        Duration::from_secs(unix_now().saturating_sub(self.first_seen))
    }
}

/// What [`crate::ledger::Ledger::begin`] records before a POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempt {
    pub id: MailId,
    /// The ticket replied to; 0 for a new ticket until it is created.
    pub ticket: u64,
    pub body_hash: String,
    pub text_hash: String,
    pub date: String,
    pub location: Location,
    /// For a new ticket: its sender, for `per_sender_per_hour`.
    pub new_ticket_from: Option<String>,
}

/// How a mail ended in a pass, for [`crate::ledger::Ledger::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Finish {
    Posted {
        id: MailId,
        ticket: u64,
    },
    Failed {
        id: MailId,
        reason: String,
        outcome_unknown: bool,
        location: Location,
    },
    /// Left for a later pass; `counted` adds one to its attempts.
    Deferred {
        id: MailId,
        counted: bool,
        outcome_unknown: bool,
    },
    /// Not posted and not to be retried from here (`on_unverified`): a mail with no
    /// history leaves no entry; one with history keeps it.
    Released {
        id: MailId,
        outcome_unknown: bool,
    },
}

/// Entries by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    pub pending: u64,
    pub posted: u64,
    pub failed: u64,
    /// Failed ones `ledger retry` marked.
    pub retry: u64,
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
