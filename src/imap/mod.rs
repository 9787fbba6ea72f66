//! Talking to IMAP servers: connect (tls/starttls/none, auth), session commands, IDLE.

mod connect;
mod error;
mod sasl;
mod session;
mod stream;
pub mod tls;
mod uidset;

pub use connect::{Login, connect};
pub use error::ImapError;
pub use session::{IdleEnd, MailMeta, MailSession};
