//! Recognizing mail that must not be posted: auto-replies, bounces, refused senders.
//! (Interface fixed; implementation to be filled in.)

use crate::config::FiltersConfig;
use mail_parser::Message;

/// `deny_senders` / `allow_senders` glob patterns on the From address, compiled.
#[derive(Debug, Clone)]
pub struct SenderRules {}

impl SenderRules {
    /// Compiles the globs; the error is (key within `[filters]`, message), e.g. ("deny_senders[2]", "...").
    pub fn new(_filters: &FiltersConfig) -> Result<Self, (String, String)> {
        Ok(SenderRules {})
    }

    /// Why this sender may not post, if it may not (`from` is the bare address, any case).
    pub fn refusal(&self, _from: &str) -> Option<String> {
        None
    }
}

/// Why this mail is an automatic reply (RFC 3834 and the common vendor headers), if it is.
pub fn auto_reply_reason(_msg: &Message<'_>) -> Option<String> {
    None
}

/// Why this mail is a bounce or delivery report, if it is.
pub fn bounce_reason(_msg: &Message<'_>) -> Option<String> {
    None
}
