//! What went wrong talking to an IMAP server, in the terms an admin acts on. A command's
//! failure keeps what it was: the server refused (NO/BAD: the session still works, the
//! request did not) or the connection broke (the session is gone: reconnect).

use super::certificate::Presented;
use super::folder_names::FolderNameError;
use super::tagged_reply::TaggedReplies;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ImapError {
    /// DNS, TCP or the server's greeting: the server is down or unreachable.
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// The TLS handshake failed (certificate, name, protocol); `reason` says why and what
    /// to change, `presented` is the server's certificate when it got that far.
    #[error("TLS with {addr} failed: {reason}")]
    Tls {
        addr: String,
        reason: String,
        presented: Option<Box<Presented>>,
    },
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
    /// A folder name from the config cannot be written on this server.
    #[error("folder {name:?}: {problem}")]
    Folder {
        name: String,
        problem: FolderNameError,
    },
    /// The watched folder cannot be selected; `existing` are the folders there are.
    #[error("folder {name:?} cannot be opened ({response}); the folders on the server are: {}; set folder to one of them", existing.join(", "))]
    NoSuchFolder {
        name: String,
        response: String,
        existing: Vec<String>,
    },
    /// The server lacks what a disposition needs (MOVE/UIDPLUS, keywords).
    #[error("{reason}")]
    Unsupported { reason: String },
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
    /// The kind of trouble, for `/healthz` (which must not echo user names).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ImapError::Connect { .. } => "unreachable",
            ImapError::Tls { .. } => "tls",
            ImapError::Auth { .. } => "login refused",
            ImapError::Timeout { .. } => "timeout",
            ImapError::Folder { .. } | ImapError::NoSuchFolder { .. } => "folder",
            ImapError::Unsupported { .. } => "server lacks a needed feature",
            ImapError::Refused { .. } => "command refused",
            ImapError::Connection { .. } => "connection lost",
        }
    }

    /// Sorts a command's failure into refused (quoting the server) or broken.
    pub(super) fn command(
        command: &str,
        err: async_imap::error::Error,
        replies: &TaggedReplies,
    ) -> ImapError {
        let command = command.to_string();
        match err {
            async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_) => {
                ImapError::Refused {
                    command,
                    response: server_reply(&err, replies),
                }
            }
            source => ImapError::Connection { command, source },
        }
    }
}

/// The server's own words in a failed command or login: a NO/BAD as the server sent it
/// (its tagged line), anything else (a broken connection) as async-imap describes it.
pub(super) fn server_reply(err: &async_imap::error::Error, replies: &TaggedReplies) -> String {
    match err {
        async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_) => {
            replies.last_refusal().unwrap_or_else(|| err.to_string())
        }
        other => other.to_string(),
    }
}
