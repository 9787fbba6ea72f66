//! SASL XOAUTH2 and OAUTHBEARER (RFC 7628) initial responses for OAuth2 logins.

use crate::config::SaslMechanism;
use secrecy::{ExposeSecret, SecretString};

/// Answers the server's challenge with the token; a second challenge (an error report) gets an empty reply.
pub(super) struct OAuth2Auth {
    response: SecretString,
    sent: bool,
}

impl async_imap::Authenticator for OAuth2Auth {
    type Response = String;

    fn process(&mut self, _challenge: &[u8]) -> String {
        if self.sent {
            // RFC 7628 3.2.3: the client answers an error challenge with a dummy response.
            return "\u{1}".into();
        }
        self.sent = true;
        self.response.expose_secret().to_string()
    }
}

/// The mechanism name and authenticator for `user` with access token `token`.
pub(super) fn oauth2(
    user: &str,
    token: &SecretString,
    mechanism: SaslMechanism,
) -> (&'static str, OAuth2Auth) {
    let t = token.expose_secret();
    let (name, response) = match mechanism {
        SaslMechanism::Xoauth2 => (
            "XOAUTH2",
            format!("user={user}\u{1}auth=Bearer {t}\u{1}\u{1}"),
        ),
        SaslMechanism::Oauthbearer => (
            "OAUTHBEARER",
            format!("n,a={user},\u{1}auth=Bearer {t}\u{1}\u{1}"),
        ),
    };
    (
        name,
        OAuth2Auth {
            response: SecretString::from(response),
            sent: false,
        },
    )
}
