//! What went wrong talking to an IMAP server, in the terms an admin acts on. A command's
//! failure keeps what it was: the server refused (NO/BAD: the session still works, the
//! request did not) or the connection broke (the session is gone: reconnect).

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
    /// The server answered NO or BAD.
    #[error("{command} refused by the server: {response}")]
    Refused { command: String, response: String },
    /// The connection broke, or the server's answer could not be read.
    #[error("{command} failed: {source}")]
    Connection {
        command: String,
        #[source]
        source: async_imap::error::Error,
    },
}

impl ImapError {
    /// Sorts a command's failure into refused or broken.
    pub fn command(command: &str, err: async_imap::error::Error) -> ImapError {
        let command = command.to_string();
        match err {
            async_imap::error::Error::No(response) | async_imap::error::Error::Bad(response) => {
                ImapError::Refused { command, response }
            }
            source => ImapError::Connection { command, source },
        }
    }
}
