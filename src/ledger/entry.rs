//! One mail's record in the ledger, and the inputs that create and finish it.

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a mail stands. `Pending` with no later state means the POST's outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryState {
    /// Recorded before a POST; still so after a crash, a lost answer or a transient error.
    Pending,
    /// The API accepted it: never post again, only dispose.
    Posted,
    /// Rejected for good (or given up on); `reason` says why.
    Failed,
}

/// One mail, stored as compact JSON (self-describing, so fields can be added later).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub state: EntryState,
    pub ticket: u64,
    /// Hex SHA-256 of the exact JSON body posted (`thulium::body_hash`).
    pub body_hash: String,
    /// The `date` sent with the post (`YYYY-MM-DD HH:MM`, the account's zone).
    pub date: String,
    /// POSTs begun, counting the one in hand.
    pub attempts: u32,
    /// Unix seconds of the first attempt.
    pub first_seen: u64,
    /// Unix seconds of the last change.
    pub updated: u64,
    /// Where the mail was last seen (a copy may sit in another mailbox).
    pub mailbox: String,
    pub uid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Entry {
    /// How long ago the first attempt was (zero if the clock went back).
    pub fn age(&self) -> Duration {
        Duration::from_secs(unix_now().saturating_sub(self.first_seen))
    }
}

/// What [`crate::ledger::Ledger::begin_attempts`] records before a POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// `Decision.key`: `<message-id>` or `sha256:<hex>` of the raw mail.
    pub key: String,
    pub ticket: u64,
    pub body_hash: String,
    pub date: String,
    pub mailbox: String,
    pub uid: u32,
}

/// A mail the API accepted, for [`crate::ledger::Ledger::mark_posted`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedMail {
    pub key: String,
    /// Its Message-ID (with or without angle brackets), remembered for `use_references`.
    pub message_id: Option<String>,
    pub ticket: u64,
}

/// Entries by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub pending: u64,
    pub posted: u64,
    pub failed: u64,
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The one spelling of a Message-ID in the ledger: trimmed, in angle brackets, as
/// `Decision.key` and `decide`'s References lookups write it.
pub fn message_id_key(id: &str) -> String {
    let id = id.trim();
    let bare = id
        .strip_prefix('<')
        .and_then(|i| i.strip_suffix('>'))
        .unwrap_or(id);
    format!("<{}>", bare.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_spelled_one_way() {
        assert_eq!(message_id_key("abc@x"), "<abc@x>");
        assert_eq!(message_id_key(" <abc@x> "), "<abc@x>");
        assert_eq!(message_id_key("< abc@x >"), "<abc@x>");
    }

    #[test]
    fn an_entry_is_compact_json_and_reads_back() {
        let e = Entry {
            state: EntryState::Pending,
            ticket: 42,
            body_hash: "ab".repeat(32),
            date: "2025-03-01 10:15".into(),
            attempts: 1,
            first_seen: 1_700_000_000,
            updated: 1_700_000_000,
            mailbox: "support".into(),
            uid: 7,
            reason: None,
        };
        let json = serde_json::to_string(&e).unwrap();
        assert!(
            json.contains(r#""state":"pending""#) && !json.contains("reason"),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Entry>(&json).unwrap(), e);
    }
}
