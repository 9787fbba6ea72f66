//! grant = "jwt_bearer": a Google service account with domain-wide delegation
//! signs an assertion naming the mailbox user as `sub` (RFC 7523).

use super::endpoint::post_form;
use super::error::TokenError;
use super::jwt::{self, Claims, ServiceAccountKey};
use super::token::AccessToken;
use crate::config::{MailboxConfig, OAuth2Config, expand_credentials_dir};
use secrecy::ExposeSecret;
use std::time::{SystemTime, UNIX_EPOCH};

const GRANT: &str = "jwt_bearer";
/// Gmail's IMAP scope, the one domain-wide delegation must list.
pub(crate) const GOOGLE_MAIL_SCOPE: &str = "https://mail.google.com/";

pub(crate) async fn fetch(
    http: &reqwest::Client,
    mb: &MailboxConfig,
    o: &OAuth2Config,
) -> Result<AccessToken, TokenError> {
    let (Some(token_url), Some(key_file)) = (&o.token_url, &o.service_account_key_file) else {
        return Err(TokenError::setup(
            GRANT,
            "token_url and service_account_key_file are required",
            "",
        ));
    };
    let key_path = expand_credentials_dir(key_file)
        .map_err(|e| TokenError::setup(GRANT, e.to_string(), ""))?;
    let text = std::fs::read_to_string(&key_path).map_err(|e| {
        TokenError::setup(
            GRANT,
            format!("cannot read {}: {e}", key_path.display()),
            "check service_account_key_file",
        )
    })?;
    let key = ServiceAccountKey::parse(&text).map_err(|e| {
        TokenError::setup(
            GRANT,
            format!("{}: {e}", key_path.display()),
            "download a new JSON key for the service account",
        )
    })?;
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| TokenError::setup(GRANT, "the system clock is before 1970", ""))?
        .as_secs();
    let claims = Claims {
        iss: &key.client_email,
        sub: &mb.username,
        scope: o.scope.as_deref().unwrap_or(GOOGLE_MAIL_SCOPE),
        aud: token_url,
        iat,
    };
    let assertion = jwt::assertion(&key, &claims).map_err(|e| {
        TokenError::setup(
            GRANT,
            format!("{}: {e}", key_path.display()),
            "download a new JSON key for the service account",
        )
    })?;
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("assertion", assertion.expose_secret()),
    ];
    Ok(post_form(http, token_url, GRANT, &mb.name, &form)
        .await?
        .into_access_token())
}
