//! grant = "refresh_token": a delegated sign-in (`oauth2 login`) left a
//! refresh token in refresh_token_file; each exchange may rotate it, and the
//! new one must be on disk before the old one is forgotten.

use super::client_credentials::client_secret;
use super::endpoint::post_form;
use super::error::TokenError;
use super::token::AccessToken;
use crate::config::{MailboxConfig, OAuth2Config, expand_credentials_dir, read_secret_file};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

const GRANT: &str = "refresh_token";

/// One exchange at a time in the process: two mailboxes sharing a file must
/// not both spend the same rotating token.
static EXCHANGE: Mutex<()> = Mutex::const_new(());

/// `unsaved` holds a rotated token that could not be written yet; it is
/// used instead of the file's (now spent) one and saved at the next chance.
pub(crate) async fn fetch(
    http: &reqwest::Client,
    mb: &MailboxConfig,
    o: &OAuth2Config,
    unsaved: &mut Option<SecretString>,
) -> Result<AccessToken, TokenError> {
    let (Some(token_url), Some(client_id), Some(file)) =
        (&o.token_url, &o.client_id, &o.refresh_token_file)
    else {
        return Err(TokenError::setup(
            GRANT,
            "token_url, client_id and refresh_token_file are required",
            "",
        ));
    };
    let path =
        expand_credentials_dir(file).map_err(|e| TokenError::setup(GRANT, e.to_string(), ""))?;
    let _one_at_a_time = EXCHANGE.lock().await;
    let current = match unsaved.clone() {
        Some(t) => t,
        None => read_secret_file(&path).map_err(|e| {
            TokenError::setup(
                GRANT,
                format!("no refresh token: {e}"),
                format!(
                    "run `thulium-mail-bridge oauth2 login --mailbox {}` once",
                    mb.name
                ),
            )
        })?,
    };
    let secret = client_secret(o, GRANT)?;
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", current.expose_secret()),
        ("client_id", client_id.as_str()),
    ];
    if let Some(s) = &secret {
        form.push(("client_secret", s.expose_secret()));
    }
    if let Some(scope) = &o.scope {
        form.push(("scope", scope));
    }
    let answer = post_form(http, token_url, GRANT, &mb.name, &form).await?;
    let rotated = answer
        .refresh_token
        .clone()
        .filter(|new| new.expose_secret() != current.expose_secret());
    if let Some(to_save) = rotated.or_else(|| unsaved.take()) {
        match super::atomic::write_private_file(&path, to_save.expose_secret()) {
            Ok(()) => {
                *unsaved = None;
                tracing::info!(mailbox = %mb.name, file = %path.display(), "saved the rotated OAuth2 refresh token");
            }
            Err(e) => {
                tracing::error!(
                    mailbox = %mb.name,
                    file = %path.display(),
                    error = %e,
                    "cannot save the rotated OAuth2 refresh token; it is kept in memory only and a restart will need `oauth2 login`: make the file's directory writable for the service user"
                );
                *unsaved = Some(to_save);
            }
        }
    }
    Ok(answer.into_access_token())
}
