//! Recognizing mail that must not be posted: auto-replies (challenge-response requests
//! among them), bounces, the helpdesk's own mail, refused senders.
//!
//! Each check answers a short, specific reason (for the log and `explain`), or
//! `None` for mail a person wrote. All checks read only the top-level headers
//! and MIME tree: a customer who forwards a bounce as an attachment still wrote
//! an ordinary mail.

mod auto_reply;
mod bounce;
mod challenge;
mod headers;
mod loops;
mod senders;

pub use auto_reply::auto_reply_reason;
pub use bounce::bounce_reason;
pub use loops::loop_reason;
pub use senders::{PatternList, SenderRules};
