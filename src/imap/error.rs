//! What went wrong talking to an IMAP server, in the terms an admin acts on.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// DNS, TCP or the server's greeting: the server is down or unreachable.
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// The TLS handshake failed (certificate, name, protocol).
    #[error("TLS with {addr} failed: {reason} (for a private CA set ca_file)")]
    Tls { addr: String, reason: String },
    /// The server refused the login: wrong username or password, or the account is disabled.
    #[error("login as {user} refused by {addr}: {reason}")]
    Auth {
        addr: String,
        user: String,
        reason: String,
    },
    /// A command got no answer in time; the connection is dropped.
    #[error("{command} timed out after {after:?}")]
    Timeout { command: String, after: Duration },
    /// The server said NO/BAD, or the connection broke mid-command.
    #[error("{command} failed: {reason}")]
    Command { command: String, reason: String },
}

impl ImapError {
    pub fn command(command: &str, err: impl std::fmt::Display) -> ImapError {
        ImapError::Command {
            command: command.to_string(),
            reason: err.to_string(),
        }
    }
}
