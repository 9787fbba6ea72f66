//! `oauth2 login --mailbox NAME`: the RFC 8628 device authorization grant.
//! The admin opens a URL anywhere, enters a code and signs in as the mailbox
//! user; the refresh token that comes back goes to refresh_token_file (0600,
//! atomically) for grant = "refresh_token".

use super::client_credentials::client_secret;
use super::endpoint::{Provider, display_url, error_chain, http_client, post_form};
use super::error::TokenError;
use super::token::{TokenResponse, lenient_seconds};
use crate::config::{Config, MailboxConfig, OAuth2Config, OAuth2Grant, expand_credentials_dir};
use anyhow::{Context, anyhow, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

const GRANT: &str = "refresh_token";
const DEVICE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Google's device endpoint (its token_url names no device endpoint to derive).
const GOOGLE_DEVICE_URL: &str = "https://oauth2.googleapis.com/device/code";
/// RFC 8628 3.5: poll every 5 s unless told otherwise; `slow_down` adds 5 s.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// A code without a stated lifetime is given this long.
const DEFAULT_CODE_LIFETIME: Duration = Duration::from_secs(900);

/// The device endpoint's answer (RFC 8628 3.2); Google says `verification_url`.
#[derive(Deserialize)]
struct DeviceAuthorization {
    device_code: SecretString,
    user_code: String,
    #[serde(alias = "verification_url")]
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    #[serde(default, deserialize_with = "lenient_seconds")]
    expires_in: Option<u64>,
    #[serde(default, deserialize_with = "lenient_seconds")]
    interval: Option<u64>,
}

/// For `main`: runs [`device_login`] on its own runtime; Ok(true) once the token is saved.
pub(crate) fn login(config: Config, mailbox: &str) -> anyhow::Result<bool> {
    crate::imap::tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(device_login(&config, mailbox))?;
    Ok(true)
}

/// Signs `mailbox` in with the device flow, printing the URL and code for the
/// admin, and writes the refresh token to its refresh_token_file.
pub async fn device_login(config: &Config, mailbox: &str) -> anyhow::Result<()> {
    let mb = config
        .mailboxes
        .iter()
        .find(|m| m.name == mailbox)
        .ok_or_else(|| {
            let names: Vec<&str> = config.mailboxes.iter().map(|m| m.name.as_str()).collect();
            anyhow!(
                "no mailbox named {mailbox:?} (the config has: {})",
                names.join(", ")
            )
        })?;
    let o = match &mb.oauth2 {
        Some(o) if o.grant == OAuth2Grant::RefreshToken => o,
        Some(o) => bail!(
            "mailbox {mailbox:?} uses grant = {:?}; `oauth2 login` seeds grant = \"refresh_token\" only",
            o.grant.name()
        ),
        None => bail!("mailbox {mailbox:?} has no [mailbox.oauth2] section"),
    };
    let (Some(token_url), Some(client_id), Some(file)) =
        (&o.token_url, &o.client_id, &o.refresh_token_file)
    else {
        bail!("mailbox {mailbox:?}: token_url, client_id and refresh_token_file are required");
    };
    let path = expand_credentials_dir(file).map_err(|e| anyhow!(e))?;
    let device_url = device_endpoint(o)?;
    let secret = client_secret(o, GRANT).map_err(|e| anyhow!(e.to_string()))?;
    let scope = device_scope(o);
    let http = http_client().map_err(|e| anyhow!(e))?;

    let auth = authorize(
        &http,
        &device_url,
        client_id,
        secret.as_ref(),
        scope.as_deref(),
    )
    .await?;
    print_instructions(mb, &auth);
    let interval = auth
        .interval
        .map_or(DEFAULT_INTERVAL, Duration::from_secs)
        .max(Duration::from_secs(1));
    let lifetime = auth
        .expires_in
        .map_or(DEFAULT_CODE_LIFETIME, Duration::from_secs);
    let (http, auth, secret) = (&http, &auth, &secret);
    let answer = poll(
        || async move {
            let mut form = vec![
                ("grant_type", DEVICE_GRANT_TYPE),
                ("device_code", auth.device_code.expose_secret()),
                ("client_id", client_id.as_str()),
            ];
            if let Some(s) = &secret {
                form.push(("client_secret", s.expose_secret()));
            }
            post_form(http, token_url, "device_code", &mb.name, &form).await
        },
        interval,
        lifetime,
    )
    .await?;
    let refresh = answer.refresh_token.ok_or_else(|| {
        anyhow!(
            "{} signed the user in but issued no refresh token: add offline_access to scope (Microsoft) or check the app's settings",
            display_url(token_url)
        )
    })?;
    save(&path, &refresh)?;
    println!(
        "Signed in. The refresh token for mailbox {:?} is in {} (mode 0600).",
        mb.name,
        path.display()
    );
    Ok(())
}

/// `device_authorization_url`, else derived from token_url for the two big providers.
fn device_endpoint(o: &OAuth2Config) -> anyhow::Result<String> {
    if let Some(url) = &o.device_authorization_url {
        return Ok(url.clone());
    }
    let token_url = o.token_url.as_deref().unwrap_or("");
    match Provider::of(token_url) {
        Provider::Microsoft => {
            let mut url = reqwest::Url::parse(token_url).context("token_url")?;
            match url.path().strip_suffix("/token") {
                Some(base) => {
                    let path = format!("{base}/devicecode");
                    url.set_path(&path);
                    Ok(url.to_string())
                }
                None => bail!("token_url does not end in /token; set device_authorization_url"),
            }
        }
        Provider::Google => Ok(GOOGLE_DEVICE_URL.to_string()),
        Provider::Other => bail!(
            "cannot tell the device authorization endpoint from token_url {}: set device_authorization_url in [mailbox.oauth2]",
            display_url(token_url)
        ),
    }
}

/// The configured scope, else what IMAP plus a refresh token needs at the provider.
fn device_scope(o: &OAuth2Config) -> Option<String> {
    if let Some(s) = &o.scope {
        return Some(s.clone());
    }
    match Provider::of(o.token_url.as_deref().unwrap_or("")) {
        Provider::Microsoft => {
            Some("https://outlook.office.com/IMAP.AccessAsUser.All offline_access".into())
        }
        Provider::Google => Some(super::jwt_bearer::GOOGLE_MAIL_SCOPE.into()),
        Provider::Other => None,
    }
}

async fn authorize(
    http: &reqwest::Client,
    url: &str,
    client_id: &str,
    secret: Option<&SecretString>,
    scope: Option<&str>,
) -> anyhow::Result<DeviceAuthorization> {
    let mut form = vec![("client_id", client_id)];
    if let Some(s) = secret {
        form.push(("client_secret", s.expose_secret()));
    }
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let shown = display_url(url);
    let response = http
        .post(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&form)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "device authorization endpoint {shown} unreachable: {}",
                error_chain(&e)
            )
        })?;
    let status = response.status().as_u16();
    let body = crate::http_read::read_capped(response, super::endpoint::ANSWER_CAP)
        .await
        .map_err(|e| anyhow!("device authorization endpoint {shown}: {e}"))?;
    if (200..300).contains(&status) {
        return serde_json::from_slice(&body).map_err(|_| {
            anyhow!("{shown} answered HTTP {status} without device_code, user_code and verification_uri: is it a device authorization endpoint?")
        });
    }
    // Errors here take the token endpoint's form (RFC 8628 3.2).
    match super::endpoint::classify(status, &body, &shown, "device_code", "") {
        Err(TokenError::Rejected {
            error, description, ..
        }) => bail!(
            "{shown} refused the device authorization: {error}{}; check client_id, the app's \"allow public client flows\" setting and scope",
            description.map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        Err(e) => bail!("{e}"),
        Ok(_) => bail!("{shown} answered HTTP {status}"),
    }
}

fn print_instructions(mb: &MailboxConfig, auth: &DeviceAuthorization) {
    println!(
        "To let thulium-mail-bridge read mailbox {:?}, sign in as {}:",
        mb.name, mb.username
    );
    match &auth.verification_uri_complete {
        Some(complete) => println!(
            "  open   {complete}\n  (or open {} and enter the code {})",
            auth.verification_uri, auth.user_code
        ),
        None => println!(
            "  open   {}\n  enter  {}",
            auth.verification_uri, auth.user_code
        ),
    }
    let minutes = auth
        .expires_in
        .map_or(DEFAULT_CODE_LIFETIME.as_secs(), |s| s)
        / 60;
    println!("Waiting for the sign-in (the code expires in {minutes} minutes)...");
}

/// Polls the token endpoint (RFC 8628 3.4/3.5) until the user signed in,
/// declined, or the code expired.
async fn poll<F, Fut>(
    mut ask: F,
    mut interval: Duration,
    lifetime: Duration,
) -> anyhow::Result<TokenResponse>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<TokenResponse, TokenError>>,
{
    let deadline = tokio::time::Instant::now() + lifetime;
    loop {
        tokio::time::sleep(interval).await;
        if tokio::time::Instant::now() >= deadline {
            bail!("the code expired before anyone signed in; run `oauth2 login` again");
        }
        match ask().await {
            Ok(answer) => return Ok(answer),
            Err(e) => match e.oauth_error() {
                Some("authorization_pending") => {}
                Some("slow_down") => interval += SLOW_DOWN_STEP,
                Some("expired_token") => {
                    bail!("the code expired before anyone signed in; run `oauth2 login` again")
                }
                Some("access_denied") => bail!(
                    "the sign-in was declined (access_denied); run `oauth2 login` again and accept the consent screen"
                ),
                _ if matches!(e, TokenError::Unreachable { .. }) => {
                    // RFC 8628 3.5: back off on connection trouble, keep the code.
                    tracing::warn!(error = %e, "polling the token endpoint failed; retrying");
                    interval = (interval * 2).min(Duration::from_secs(60));
                }
                _ => return Err(anyhow!(e.to_string())),
            },
        }
    }
}

fn save(path: &Path, token: &SecretString) -> anyhow::Result<()> {
    super::atomic::write_private_file(path, token.expose_secret()).with_context(|| {
        format!(
            "cannot write {} (the directory must exist and be writable; the systemd credentials directory is read-only, use the state directory)",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::time::Instant;

    fn rejected(error: &str) -> TokenError {
        TokenError::Rejected {
            endpoint: "e".into(),
            grant: "device_code",
            error: error.into(),
            description: None,
            hint: String::new(),
        }
    }

    fn ok() -> TokenResponse {
        serde_json::from_str(r#"{"access_token":"a","refresh_token":"r"}"#).unwrap()
    }

    /// Answers the scripted errors in order, then success.
    fn script(
        errors: &'static [&'static str],
    ) -> (
        Arc<AtomicU32>,
        impl FnMut() -> std::future::Ready<Result<TokenResponse, TokenError>>,
    ) {
        let calls = Arc::new(AtomicU32::new(0));
        let c = Arc::clone(&calls);
        (calls, move || {
            let n = c.fetch_add(1, Ordering::SeqCst) as usize;
            std::future::ready(match errors.get(n) {
                Some(e) => Err(rejected(e)),
                None => Ok(ok()),
            })
        })
    }

    #[tokio::test(start_paused = true)]
    async fn pending_polls_at_the_interval_and_slow_down_adds_five_seconds() {
        let start = Instant::now();
        let (calls, ask) = script(&[
            "authorization_pending",
            "slow_down",
            "authorization_pending",
        ]);
        poll(ask, Duration::from_secs(2), Duration::from_secs(600))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // 2 + 2 + (2+5) + (2+5)
        assert_eq!(start.elapsed(), Duration::from_secs(18));
    }

    #[tokio::test(start_paused = true)]
    async fn declined_and_expired_codes_end_the_login() {
        let (_, ask) = script(&["authorization_pending", "access_denied"]);
        let e = poll(ask, Duration::from_secs(1), Duration::from_secs(600))
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("declined"), "{e}");
        let (_, ask) = script(&["expired_token"]);
        let e = poll(ask, Duration::from_secs(1), Duration::from_secs(600))
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("expired"), "{e}");
        let (_, ask) = script(&["authorization_pending"; 20]);
        let e = poll(ask, Duration::from_secs(5), Duration::from_secs(30))
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("expired"), "{e}");
        let (_, ask) = script(&["invalid_client"]);
        let e = poll(ask, Duration::from_secs(5), Duration::from_secs(30))
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("invalid_client"), "{e}");
    }

    fn oauth(token_url: &str, device: Option<&str>) -> OAuth2Config {
        let mut text = format!("grant = \"refresh_token\"\ntoken_url = {token_url:?}\n");
        if let Some(d) = device {
            text.push_str(&format!("device_authorization_url = {d:?}\n"));
        }
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn device_endpoints_are_derived_for_microsoft_and_google_only() {
        assert_eq!(
            device_endpoint(&oauth(
                "https://login.microsoftonline.com/acme.example/oauth2/v2.0/token",
                None
            ))
            .unwrap(),
            "https://login.microsoftonline.com/acme.example/oauth2/v2.0/devicecode"
        );
        assert_eq!(
            device_endpoint(&oauth("https://oauth2.googleapis.com/token", None)).unwrap(),
            GOOGLE_DEVICE_URL
        );
        let e = device_endpoint(&oauth("https://idp.example/oauth/token", None))
            .err()
            .unwrap();
        assert!(e.to_string().contains("device_authorization_url"), "{e}");
        assert_eq!(
            device_endpoint(&oauth(
                "https://idp.example/oauth/token",
                Some("https://idp.example/device")
            ))
            .unwrap(),
            "https://idp.example/device"
        );
        assert!(
            device_scope(&oauth(
                "https://login.microsoftonline.com/t/oauth2/v2.0/token",
                None
            ))
            .unwrap()
            .contains("offline_access")
        );
    }
}
