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
mod jwt;
mod jwt_bearer;
mod refresh_token;
mod token;

pub use atomic::write_private_file;
pub use cache::TokenCache;
pub use device::{device_login, login};
pub use error::TokenError;
pub use token::AccessToken;

use crate::config::{MailboxConfig, OAuth2Grant};
use crate::imap::ImapError;

/// The config spelling of a grant, for messages.
pub fn grant_name(grant: OAuth2Grant) -> &'static str {
    match grant {
        OAuth2Grant::ClientCredentials => "client_credentials",
        OAuth2Grant::RefreshToken => "refresh_token",
        OAuth2Grant::JwtBearer => "jwt_bearer",
        OAuth2Grant::Command => "command",
    }
}

/// A token problem as the worker's reconnect loop understands it: an IdP that
/// cannot be reached is a connection problem (retried, down after a few tries);
/// a refusal or a broken setup is a refused login (down at once, loud).
pub fn imap_error(err: TokenError, mb: &MailboxConfig) -> ImapError {
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
pub fn refused_by_server(err: ImapError, mb: &MailboxConfig) -> ImapError {
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
