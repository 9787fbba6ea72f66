//! OAuth2 for IMAP logins (SASL XOAUTH2/OAUTHBEARER): four ways to get an
//! access token (`grant`), a cache that replaces tokens at 80 % of their
//! lifetime, and `oauth2 login`, the RFC 8628 device flow that seeds a
//! refresh token. Tokens and secrets stay in `SecretString`s and never reach a log.

mod atomic;
mod cache;
mod client_credentials;
mod command;
mod device;
mod endpoint;
mod error;
mod hint;
mod jwt;
mod jwt_bearer;
mod refresh_token;
mod token;

pub(crate) use cache::TokenCache;
pub use device::device_login;
pub(crate) use device::login;
pub(crate) use error::TokenError;

use crate::config::MailboxConfig;
use crate::imap::ImapError;

/// A token problem as the worker's reconnect loop understands it: an IdP that
/// cannot be reached is a connection problem (retried, down after a few tries);
/// a refusal or a broken setup is a refused login (down at once, loud).
pub(crate) fn imap_error(err: TokenError, mb: &MailboxConfig) -> ImapError {
    match err {
        TokenError::Unreachable { endpoint, reason } => ImapError::Connect {
            addr: format!("identity provider {endpoint}"),
            reason,
        },
        TokenError::Rejected { ref endpoint, .. } => ImapError::Auth {
            addr: format!("identity provider {endpoint}"),
            user: mb.username.clone(),
            reason: err.detail(),
        },
        TokenError::Setup { grant, .. } => ImapError::Auth {
            addr: format!("OAuth2 ({grant})"),
            user: mb.username.clone(),
            reason: err.detail(),
        },
    }
}

/// The IMAP server refused a token the IdP had just issued: what to check.
pub(crate) fn refused_by_server(err: ImapError, mb: &MailboxConfig) -> ImapError {
    match err {
        ImapError::Auth { addr, user, reason } => ImapError::Auth {
            addr,
            user,
            reason: format!(
                "{reason} (a new OAuth2 token was refused too: check that the app may open the mailbox {:?} \
                 (Microsoft 365: Exchange service principal and Add-MailboxPermission; Google: domain-wide \
                 delegation of https://mail.google.com/) and that `username` is the mailbox's address)",
                mb.username
            ),
        },
        other => other,
    }
}
