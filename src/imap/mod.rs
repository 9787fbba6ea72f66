//! Talking to IMAP servers: connect (tls/starttls/none, auth), session commands, IDLE.

mod certificate;
mod connect;
mod error;
pub(crate) mod folder_names;
mod namespace;
mod sasl;
mod session;
mod stream;
mod tagged_reply;
pub(crate) mod tls;
mod tls_failure;
mod uidset;
pub(crate) mod utf7;

pub(crate) use connect::{CHECK_GREETING, DAEMON_GREETING, Login, connect};
pub(crate) use error::ImapError;
pub(crate) use session::{IdleEnd, MailMeta, MailSession, RawMail};
