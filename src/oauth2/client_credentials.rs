//! grant = "client_credentials": an app's own token (Microsoft 365 app-only
//! access with IMAP.AccessAsApp), from client_id and client secret.

use super::endpoint::{Provider, post_form};
use super::error::TokenError;
use super::token::AccessToken;
use crate::config::{MailboxConfig, OAuth2Config};
use secrecy::ExposeSecret;

const GRANT: &str = "client_credentials";

/// Exchange Online's app-only scope, when none is configured.
pub(crate) const MICROSOFT_IMAP_APP_SCOPE: &str = "https://outlook.office365.com/.default";

pub(crate) async fn fetch(
    http: &reqwest::Client,
    mb: &MailboxConfig,
    o: &OAuth2Config,
) -> Result<AccessToken, TokenError> {
    let (Some(token_url), Some(client_id)) = (&o.token_url, &o.client_id) else {
        return Err(TokenError::setup(
            GRANT,
            "token_url and client_id are required",
            "",
        ));
    };
    let secret = client_secret(o, GRANT)?
        .ok_or_else(|| TokenError::setup(GRANT, "no client secret", "set client_secret_file"))?;
    let scope = o.scope.as_deref().or(match Provider::of(token_url) {
        Provider::Microsoft => Some(MICROSOFT_IMAP_APP_SCOPE),
        _ => None,
    });
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", client_id.as_str()),
        ("client_secret", secret.expose_secret()),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    Ok(post_form(http, token_url, GRANT, &mb.name, &form)
        .await?
        .into_access_token())
}

/// The client secret, read afresh each time so a rotated secret file is
/// picked up without a restart; `None` for a public client.
pub(crate) fn client_secret(
    o: &OAuth2Config,
    grant: &'static str,
) -> Result<Option<secrecy::SecretString>, TokenError> {
    match (&o.client_secret, &o.client_secret_file) {
        (Some(s), _) => Ok(Some(s.clone())),
        (None, Some(path)) => crate::config::read_secret_file(path)
            .map(Some)
            .map_err(|e| TokenError::setup(grant, e.to_string(), "check client_secret_file")),
        (None, None) => Ok(None),
    }
}
