//! Access tokens per mailbox, kept in memory with their lifetime: a login
//! reuses the cached token until 80 % of its lifetime has passed, then a
//! new one is fetched. One fetch at a time per mailbox.

use super::endpoint::http_client;
use super::error::TokenError;
use super::token::AccessToken;
use super::{client_credentials, command, jwt_bearer, refresh_token};
use crate::config::{MailboxConfig, OAuth2Grant};
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// The tokens of a process's mailboxes.
pub(crate) struct TokenCache {
    /// Built at the first OAuth2 use: password-only setups never need it.
    http: OnceLock<Result<reqwest::Client, String>>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

/// One mailbox's token, valid for one version of its settings.
struct Slot {
    /// Settings the token was fetched with; a reload that changes them starts afresh.
    fingerprint: String,
    state: tokio::sync::Mutex<SlotState>,
    refresh_at: Mutex<Option<Instant>>,
}

#[derive(Default)]
struct SlotState {
    token: Option<AccessToken>,
    /// A rotated refresh token not yet written to its file.
    unsaved_refresh_token: Option<SecretString>,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new()
    }
}

impl TokenCache {
    pub(crate) fn new() -> TokenCache {
        TokenCache {
            http: OnceLock::new(),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The process's cache: workers reconnect and are restarted on reload,
    /// tokens outlive both.
    pub(crate) fn global() -> &'static TokenCache {
        static GLOBAL: OnceLock<TokenCache> = OnceLock::new();
        GLOBAL.get_or_init(TokenCache::new)
    }

    /// An access token for `mb`: the cached one while fresh, else a new one.
    /// `renew` skips the cache (the IMAP server just refused the cached token).
    pub(crate) async fn token(
        &self,
        mb: &MailboxConfig,
        renew: bool,
    ) -> Result<SecretString, TokenError> {
        let Some(o) = &mb.oauth2 else {
            return Err(TokenError::setup(
                "none",
                "the mailbox has no [mailbox.oauth2]",
                "",
            ));
        };
        let slot = self.slot(mb);
        let mut state = slot.state.lock().await;
        if !renew && let Some(t) = state.token.as_ref().filter(|t| t.is_fresh(Instant::now())) {
            return Ok(t.secret.clone());
        }
        state.token = None;
        *slot.refresh_at.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let http =
            self.http.get_or_init(http_client).as_ref().map_err(|e| {
                TokenError::setup(o.grant.name(), format!("no HTTP client: {e}"), "")
            })?;
        let token = match o.grant {
            OAuth2Grant::ClientCredentials => client_credentials::fetch(http, mb, o).await?,
            OAuth2Grant::RefreshToken => {
                refresh_token::fetch(http, mb, o, &mut state.unsaved_refresh_token).await?
            }
            OAuth2Grant::JwtBearer => jwt_bearer::fetch(http, mb, o).await?,
            OAuth2Grant::Command => command::fetch(&o.command).await?,
        };
        tracing::debug!(
            mailbox = %mb.name,
            grant = o.grant.name(),
            lifetime = ?token.lifetime,
            "got a new OAuth2 access token"
        );
        let secret = token.secret.clone();
        *slot.refresh_at.lock().unwrap_or_else(|e| e.into_inner()) = token.refresh_at();
        if token.lifetime.is_some() {
            state.token = Some(token);
        }
        Ok(secret)
    }

    /// When the cached token of `mailbox` is due for replacement (80 % of its
    /// lifetime); a session opened with it can be renewed by then.
    pub(crate) fn refresh_at(&self, mailbox: &str) -> Option<Instant> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = slots.get(mailbox)?;
        *slot.refresh_at.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self, mb: &MailboxConfig) -> Arc<Slot> {
        let fingerprint = mb.fingerprint();
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match slots.get(&mb.name) {
            Some(slot) if slot.fingerprint == fingerprint => Arc::clone(slot),
            _ => {
                let slot = Arc::new(Slot {
                    fingerprint,
                    state: tokio::sync::Mutex::default(),
                    refresh_at: Mutex::new(None),
                });
                slots.insert(mb.name.clone(), Arc::clone(&slot));
                slot
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SaslMechanism;
    use secrecy::ExposeSecret;

    fn mailbox(command: &str) -> MailboxConfig {
        let text = format!(
            "name = \"m\"\nhost = \"127.0.0.1\"\ntls = \"none\"\nusername = \"u\"\n[oauth2]\ngrant = \"command\"\ncommand = [\"sh\", \"-c\", {command:?}]\n"
        );
        toml::from_str(&text).unwrap()
    }

    #[tokio::test]
    async fn tokens_with_a_lifetime_are_reused_until_due_and_renewed_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let counter = dir.path().join("n");
        // Prints a new token each run, valid for an hour.
        let script = format!(
            "n=$(cat {0} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {0}; echo '{{\"access_token\":\"t'$n'\",\"expires_in\":3600}}'",
            counter.display()
        );
        let mb = mailbox(&script);
        assert_eq!(
            mb.oauth2.as_ref().unwrap().mechanism,
            SaslMechanism::Xoauth2
        );
        let cache = TokenCache::new();
        assert_eq!(cache.token(&mb, false).await.unwrap().expose_secret(), "t1");
        assert_eq!(cache.token(&mb, false).await.unwrap().expose_secret(), "t1");
        assert!(cache.refresh_at("m").is_some());
        assert_eq!(cache.token(&mb, true).await.unwrap().expose_secret(), "t2");
        // A changed setting is a different token source.
        let mut changed = mb.clone();
        changed.username = "v".into();
        assert_eq!(
            cache.token(&changed, false).await.unwrap().expose_secret(),
            "t3"
        );
    }

    #[tokio::test]
    async fn bare_tokens_of_unknown_lifetime_are_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let counter = dir.path().join("n");
        let script = format!(
            "n=$(cat {0} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {0}; echo t$n",
            counter.display()
        );
        let mb = mailbox(&script);
        let cache = TokenCache::new();
        assert_eq!(cache.token(&mb, false).await.unwrap().expose_secret(), "t1");
        assert_eq!(cache.token(&mb, false).await.unwrap().expose_secret(), "t2");
        assert_eq!(cache.refresh_at("m"), None);
    }
}
