//! What went wrong talking to an IMAP server, in the terms an admin acts on. A command's
//! failure keeps what it was: the server refused (NO/BAD: the session still works, the
//! request did not) or the connection broke (the session is gone: reconnect).

use super::certificate::Presented;
use super::folder_names::FolderNameError;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
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
    pub fn kind(&self) -> &'static str {
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

    /// Sorts a command's failure into refused or broken.
    pub fn command(command: &str, err: async_imap::error::Error) -> ImapError {
        let command = command.to_string();
        match err {
            async_imap::error::Error::No(response) | async_imap::error::Error::Bad(response) => {
                ImapError::Refused {
                    command,
                    response: server_words(&response),
                }
            }
            source => ImapError::Connection { command, source },
        }
    }
}

/// The server's own words in a failed command or login: NO/BAD as the server said it,
/// anything else (a broken connection) as async-imap describes it.
pub(super) fn server_reply(err: &async_imap::error::Error) -> String {
    match err {
        async_imap::error::Error::No(response) | async_imap::error::Error::Bad(response) => {
            server_words(response)
        }
        other => other.to_string(),
    }
}

/// async-imap writes a NO/BAD as `code: Some(..), info: Some("text")` (command
/// answers) or `outcome: Outcome { code: .., information: Some("text") }` (SELECT and
/// friends): keep the server's text (and the code when there is one), as it said them.
fn server_words(response: &str) -> String {
    let info = ["info: Some(\"", "information: Some(\""]
        .iter()
        .find_map(|key| response.split_once(key))
        .and_then(|(_, rest)| rest.rsplit_once("\")"))
        .map(|(text, _)| text.replace("\\\"", "\""));
    let code = response
        .split_once("code: Some(")
        .and_then(|(_, rest)| {
            rest.split_once("), info:")
                .or_else(|| rest.split_once("), information:"))
        })
        .map(|(code, _)| code);
    match (code, info) {
        (Some(code), Some(info)) => format!("[{code}] {info}"),
        (None, Some(info)) => info,
        _ => response.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_own_words_are_kept() {
        assert_eq!(
            server_words(r#"code: None, info: Some("Mailbox doesn't exist: Nope")"#),
            "Mailbox doesn't exist: Nope"
        );
        assert_eq!(
            server_words(r#"code: Some(TryCreate), info: Some("no such \"box\"")"#),
            r#"[TryCreate] no such "box""#
        );
        assert_eq!(
            server_words(
                r#"outcome: Outcome { code: None, information: Some("Mailbox doesn't exist: Support (0.024 + 0.001 + 0.023 secs).") }"#
            ),
            "Mailbox doesn't exist: Support (0.024 + 0.001 + 0.023 secs)."
        );
        assert_eq!(
            server_words(r#"outcome: Outcome { code: Some(Alert), information: Some("x") }"#),
            "[Alert] x"
        );
        assert_eq!(server_words("odd"), "odd");
    }
}
