//! A fake OAuth2 identity provider, standing in for Microsoft's and Google's
//! (which tests cannot reach): a token endpoint for the client_credentials,
//! refresh_token, jwt-bearer and device_code grants, an RFC 8628 device
//! authorization endpoint, and the RFC 7662 introspection endpoint that
//! Dovecot's `oauth2` passdb calls to check the tokens the bridge logs in with.
//!
//! Everything it hands out is random and listed by [`FakeIdp::secrets`], so a
//! test can grep logs for leaks. Errors follow RFC 6749 5.2 with
//! `error_description`s in the providers' style.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD as B64URL};
use rand::Rng as _;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The scope Google requires for IMAP.
pub const GOOGLE_MAIL_SCOPE: &str = "https://mail.google.com/";

/// A registered application (Microsoft: app registration; Google: OAuth client).
#[derive(Clone, Debug)]
struct Client {
    /// `None` for a public client (device flow without a secret).
    secret: Option<String>,
    /// More secrets it accepts, as during a rotation (Entra ID allows several).
    other_secrets: Vec<String>,
    /// The mailbox its app-only (client_credentials) tokens may open, as
    /// Exchange's `Add-MailboxPermission` grants it.
    mailbox: Option<String>,
}

/// A Google service account with domain-wide delegation (or without).
struct ServiceAccount {
    public_key: Vec<u8>,
    delegated: bool,
}

#[derive(Clone, Debug)]
struct AccessToken {
    seq: u64,
    user: String,
    expires: Instant,
    revoked: bool,
}

#[derive(Clone, Debug)]
struct RefreshToken {
    client_id: String,
    user: String,
    revoked: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum DeviceState {
    Pending,
    Approved(String),
    Denied,
}

#[derive(Clone, Debug)]
struct Device {
    client_id: String,
    user_code: String,
    expires: Instant,
    state: DeviceState,
    slow_downs: u32,
    polls: u32,
}

/// An access token the IdP issued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IssuedToken {
    /// Order of issue, from 1.
    pub seq: u64,
    /// `client_credentials`, `refresh_token`, `jwt_bearer`, `device_code` or `direct`.
    pub grant: String,
    /// The mailbox it opens.
    pub user: String,
    pub lifetime_secs: u64,
    /// Whether it has expired by now.
    pub expired: bool,
}

/// One call of the introspection endpoint (by Dovecot).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Introspection {
    /// The token's `seq`, `None` when the IdP never issued it.
    pub token_seq: Option<u64>,
    pub active: bool,
    /// Why it was inactive: `unknown`, `expired`, `revoked`.
    pub reason: Option<String>,
}

/// One call of the token or device endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenRequest {
    pub endpoint: String,
    pub grant_type: String,
    /// The `scope` parameter, when sent.
    pub scope: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// The OAuth2 `error` answered, if any.
    pub error: Option<String>,
    /// The client secret presented (form or HTTP Basic), if any: tells which of
    /// an app's secrets a client used.
    pub client_secret: Option<String>,
}

struct Shared {
    addr: SocketAddr,
    state: Mutex<IdpState>,
    requests: watch::Sender<Vec<TokenRequest>>,
}

#[derive(Default)]
struct IdpState {
    clients: HashMap<String, Client>,
    service_accounts: HashMap<String, ServiceAccount>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    devices: HashMap<String, Device>,
    issued: Vec<(IssuedToken, Instant)>,
    introspections: Vec<Introspection>,
    /// Every secret ever handed out or registered, for leak checks.
    secrets: Vec<String>,
    lifetime: Duration,
    rotate_refresh_tokens: bool,
    /// `slow_down` answers to give before anything else, per device code.
    slow_down_first: u32,
    /// How long the token endpoint waits after deciding, before it answers: the token
    /// is issued (and a refresh token rotated) whether or not the client waits for it.
    answer_delay: Duration,
    /// Token requests decided so far (recorded in `requests` only once answered).
    decided: usize,
    seq: u64,
}

/// The fake IdP, serving until dropped.
pub struct FakeIdp {
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FakeIdp {
    /// Starts on a free loopback port; tokens live an hour until
    /// [`set_token_lifetime`](Self::set_token_lifetime) says otherwise.
    pub async fn start() -> Result<FakeIdp> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("bind the fake IdP")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            addr,
            state: Mutex::new(IdpState {
                lifetime: Duration::from_secs(3600),
                ..IdpState::default()
            }),
            requests: watch::Sender::new(Vec::new()),
        });
        let router = Router::new()
            .route("/token", post(token))
            .route("/devicecode", post(device_authorization))
            .route("/introspect", post(introspect))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(FakeIdp { shared, server })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The token endpoint (`token_url`).
    pub fn token_url(&self) -> String {
        format!("{}/token", self.url())
    }

    /// The RFC 8628 device authorization endpoint (`device_authorization_url`).
    pub fn device_authorization_url(&self) -> String {
        format!("{}/devicecode", self.url())
    }

    /// The RFC 7662 endpoint for Dovecot's `introspection_url`.
    pub fn introspection_url(&self) -> String {
        format!("{}/introspect", self.url())
    }

    /// Registers an application; `secret` `None` makes it a public client.
    pub fn add_client(&self, client_id: &str, secret: Option<&str>) {
        let mut s = self.lock();
        if let Some(secret) = secret {
            s.secrets.push(secret.to_string());
        }
        s.clients.insert(
            client_id.to_string(),
            Client {
                secret: secret.map(str::to_string),
                other_secrets: Vec::new(),
                mailbox: None,
            },
        );
    }

    /// Lets the app's client_credentials tokens open `user`'s mailbox.
    pub fn grant_mailbox(&self, client_id: &str, user: &str) {
        if let Some(c) = self.lock().clients.get_mut(client_id) {
            c.mailbox = Some(user.to_string());
        }
    }

    /// Replaces an app's secret (as an admin rotating it, or the old one expiring).
    pub fn set_client_secret(&self, client_id: &str, secret: &str) {
        let mut s = self.lock();
        s.secrets.push(secret.to_string());
        if let Some(c) = s.clients.get_mut(client_id) {
            c.secret = Some(secret.to_string());
        }
    }

    /// Makes the app accept `secret` too, beside its current one (a rotation's overlap).
    pub fn add_client_secret(&self, client_id: &str, secret: &str) {
        let mut s = self.lock();
        s.secrets.push(secret.to_string());
        if let Some(c) = s.clients.get_mut(client_id) {
            c.other_secrets.push(secret.to_string());
        }
    }

    /// Lifetime of access tokens issued from now on (whole seconds, at least 1).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().lifetime = lifetime.max(Duration::from_secs(1));
    }

    /// Whether each refresh_token grant answers a new refresh token and revokes the old one.
    pub fn set_rotate_refresh_tokens(&self, rotate: bool) {
        self.lock().rotate_refresh_tokens = rotate;
    }

    /// Answer `slow_down` this many times to each new device code before anything else.
    /// Answers the token endpoint `delay` late, after issuing (a slow IdP, or a slow
    /// network on the way back).
    pub fn set_answer_delay(&self, delay: Duration) {
        self.lock().answer_delay = delay;
    }

    /// Token requests decided so far, answered or not yet (see
    /// [`set_answer_delay`](Self::set_answer_delay)).
    pub fn token_requests_decided(&self) -> usize {
        self.lock().decided
    }

    pub fn set_slow_down_first(&self, count: u32) {
        self.lock().slow_down_first = count;
    }

    /// A refresh token for `user`, as a past interactive sign-in would have left.
    pub fn issue_refresh_token(&self, client_id: &str, user: &str) -> String {
        let mut s = self.lock();
        s.new_refresh_token(client_id, user)
    }

    /// An access token for `user` without any grant (what a `command` prints).
    pub fn issue_access_token(&self, user: &str) -> String {
        let mut s = self.lock();
        s.new_access_token("direct", user).0
    }

    /// Revokes one refresh token (the user changed their password, an admin revoked sessions).
    pub fn revoke_refresh_token(&self, token: &str) {
        if let Some(t) = self.lock().refresh.get_mut(token) {
            t.revoked = true;
        }
    }

    /// Revokes every refresh token of `user`.
    pub fn revoke_refresh_tokens_of(&self, user: &str) {
        for t in self.lock().refresh.values_mut() {
            if t.user == user {
                t.revoked = true;
            }
        }
    }

    /// Makes every access token issued so far inactive for introspection.
    pub fn revoke_access_tokens(&self) {
        for t in self.lock().access.values_mut() {
            t.revoked = true;
        }
    }

    /// The refresh tokens of `user` that still work.
    pub fn live_refresh_tokens(&self, user: &str) -> Vec<String> {
        self.lock()
            .refresh
            .iter()
            .filter(|(_, t)| t.user == user && !t.revoked)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Creates a service account with a fresh RSA key pair; returns its key
    /// file in Google's JSON format. `delegated` is domain-wide delegation of
    /// [`GOOGLE_MAIL_SCOPE`].
    pub fn add_service_account(&self, client_email: &str, delegated: bool) -> Result<String> {
        let key = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
        let pkcs8 = key
            .as_der()
            .map_err(|_| anyhow::anyhow!("RSA key export failed"))?;
        let pem = pem_wrap("PRIVATE KEY", pkcs8.as_ref());
        let key_id = random_hex(20);
        let json = json!({
            "type": "service_account",
            "project_id": "testbed",
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": client_email,
            "client_id": "1000000000000000000001",
            "token_uri": self.token_url(),
        });
        let mut s = self.lock();
        s.secrets.push(pem.clone());
        s.service_accounts.insert(
            client_email.to_string(),
            ServiceAccount {
                public_key: key.public_key().as_ref().to_vec(),
                delegated,
            },
        );
        Ok(serde_json::to_string_pretty(&json)?)
    }

    /// Grants or withdraws domain-wide delegation of a service account.
    pub fn set_delegated(&self, client_email: &str, delegated: bool) {
        if let Some(sa) = self.lock().service_accounts.get_mut(client_email) {
            sa.delegated = delegated;
        }
    }

    /// The user code of every device authorization still pending.
    pub fn pending_user_codes(&self) -> Vec<String> {
        self.lock()
            .devices
            .values()
            .filter(|d| d.state == DeviceState::Pending)
            .map(|d| d.user_code.clone())
            .collect()
    }

    /// The user signs in with `user_code` and consents, as `user`.
    pub fn approve_device(&self, user_code: &str, user: &str) -> bool {
        self.set_device(user_code, DeviceState::Approved(user.to_string()))
    }

    /// The user declines the consent screen.
    pub fn deny_device(&self, user_code: &str) -> bool {
        self.set_device(user_code, DeviceState::Denied)
    }

    /// How often the device with `user_code` was polled.
    pub fn device_polls(&self, user_code: &str) -> u32 {
        self.lock()
            .devices
            .values()
            .find(|d| d.user_code == user_code)
            .map_or(0, |d| d.polls)
    }

    fn set_device(&self, user_code: &str, state: DeviceState) -> bool {
        let mut s = self.lock();
        match s.devices.values_mut().find(|d| d.user_code == user_code) {
            Some(d) => {
                d.state = state;
                true
            }
            None => false,
        }
    }

    /// Every access token issued, in order.
    pub fn issued(&self) -> Vec<IssuedToken> {
        let now = Instant::now();
        self.lock()
            .issued
            .iter()
            .map(|(t, expires)| IssuedToken {
                expired: now >= *expires,
                ..t.clone()
            })
            .collect()
    }

    /// Every introspection call (Dovecot checking a login), in order.
    pub fn introspections(&self) -> Vec<Introspection> {
        self.lock().introspections.clone()
    }

    /// Every token/device endpoint call, in order.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared.requests.borrow().clone()
    }

    /// Waits until `cond` holds for the requests so far.
    pub async fn wait_requests(
        &self,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&[TokenRequest]) -> bool,
    ) -> Result<()> {
        let mut rx = self.shared.requests.subscribe();
        match tokio::time::timeout(timeout, rx.wait_for(|r| cond(r))).await {
            Ok(Ok(_)) => Ok(()),
            _ => anyhow::bail!(
                "timed out after {timeout:?} waiting for {what}; requests: {:?}",
                self.requests()
            ),
        }
    }

    /// Every secret handed out or registered (tokens, client secrets, device
    /// codes, private keys, JWT signatures seen): none may appear in a log.
    pub fn secrets(&self) -> Vec<String> {
        self.lock().secrets.clone()
    }

    fn lock(&self) -> MutexGuard<'_, IdpState> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FakeIdp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl IdpState {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn new_access_token(&mut self, grant: &str, user: &str) -> (String, u64) {
        let seq = self.next_seq();
        let token = format!("at{seq}.{}", random_hex(24));
        let expires = Instant::now() + self.lifetime;
        self.access.insert(
            token.clone(),
            AccessToken {
                seq,
                user: user.to_string(),
                expires,
                revoked: false,
            },
        );
        self.issued.push((
            IssuedToken {
                seq,
                grant: grant.to_string(),
                user: user.to_string(),
                lifetime_secs: self.lifetime.as_secs(),
                expired: false,
            },
            expires,
        ));
        self.secrets.push(token.clone());
        (token, self.lifetime.as_secs())
    }

    fn new_refresh_token(&mut self, client_id: &str, user: &str) -> String {
        let seq = self.next_seq();
        let token = format!("rt{seq}.{}", random_hex(32));
        self.refresh.insert(
            token.clone(),
            RefreshToken {
                client_id: client_id.to_string(),
                user: user.to_string(),
                revoked: false,
            },
        );
        self.secrets.push(token.clone());
        token
    }

    /// RFC 6749 2.3.1: the secret in the form or in HTTP Basic.
    fn authenticate_client(
        &self,
        form: &HashMap<String, String>,
        headers: &HeaderMap,
    ) -> Result<(String, Client), OAuthError> {
        let (id, secret) = match basic_credentials(headers) {
            Some((id, secret)) => (Some(id), Some(secret)),
            None => (
                form.get("client_id").cloned(),
                form.get("client_secret").cloned(),
            ),
        };
        let id = id.ok_or_else(|| OAuthError::invalid_request("client_id is missing"))?;
        let client = self.clients.get(&id).ok_or_else(|| {
            OAuthError::invalid_client(&format!(
                "AADSTS700016: Application with identifier '{id}' was not found in the directory."
            ))
        })?;
        match (&client.secret, secret) {
            (None, _) => {}
            (Some(want), Some(got)) if *want == got || client.other_secrets.contains(&got) => {}
            (Some(_), Some(_)) => {
                return Err(OAuthError::invalid_client(
                    "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                ));
            }
            (Some(_), None) => {
                return Err(OAuthError::invalid_client(
                    "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                ));
            }
        }
        Ok((id, client.clone()))
    }
}

/// An RFC 6749 5.2 error answer.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: &str) -> OAuthError {
        OAuthError {
            status,
            error,
            description: description.to_string(),
        }
    }
    fn invalid_request(d: &str) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    fn invalid_client(d: &str) -> OAuthError {
        OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
    }
    fn invalid_grant(d: &str) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }
}

type Params = Form<HashMap<String, String>>;

async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Params,
) -> Response {
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    let (result, delay) = {
        let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let result = match grant_type.as_str() {
            "client_credentials" => client_credentials(&mut s, &form, &headers),
            "refresh_token" => refresh_token(&mut s, &form, &headers),
            "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
                jwt_bearer(&mut s, &form, &shared.addr)
            }
            "urn:ietf:params:oauth:grant-type:device_code" => device_code(&mut s, &form, &headers),
            other => Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("grant_type {other:?} is not supported"),
            )),
        };
        s.decided += 1;
        (result, s.answer_delay)
    };
    tokio::time::sleep(delay).await;
    answer(
        &shared,
        "token",
        grant_type,
        form.get("scope").cloned(),
        presented_secret(&form, &headers),
        result,
    )
}

/// The client secret in HTTP Basic, else in the form.
fn presented_secret(form: &HashMap<String, String>, headers: &HeaderMap) -> Option<String> {
    match basic_credentials(headers) {
        Some((_, secret)) => Some(secret),
        None => form.get("client_secret").cloned(),
    }
}

/// Records the call and renders the answer.
fn answer(
    shared: &Shared,
    endpoint: &str,
    grant_type: String,
    scope: Option<String>,
    client_secret: Option<String>,
    result: Result<Value, OAuthError>,
) -> Response {
    let (status, error, response) = match result {
        Ok(body) => (
            StatusCode::OK,
            None,
            (StatusCode::OK, Json(body)).into_response(),
        ),
        Err(e) => (
            e.status,
            Some(e.error.to_string()),
            (
                e.status,
                Json(json!({"error": e.error, "error_description": e.description})),
            )
                .into_response(),
        ),
    };
    shared.requests.send_modify(|r| {
        r.push(TokenRequest {
            endpoint: endpoint.to_string(),
            grant_type,
            scope,
            status: status.as_u16(),
            error,
            client_secret,
        })
    });
    response
}

fn token_answer(s: &mut IdpState, grant: &str, user: &str, refresh: Option<String>) -> Value {
    let (access, expires_in) = s.new_access_token(grant, user);
    let mut body = json!({
        "token_type": "Bearer",
        "access_token": access,
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
    });
    if let Some(r) = refresh {
        body["refresh_token"] = Value::String(r);
    }
    body
}

fn client_credentials(
    s: &mut IdpState,
    form: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Value, OAuthError> {
    let (_, client) = s.authenticate_client(form, headers)?;
    if client.secret.is_none() {
        return Err(OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "AADSTS700025: Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
        ));
    }
    let mailbox = client.mailbox.ok_or_else(|| {
        OAuthError::invalid_grant(
            "AADSTS65001: The user or administrator has not consented to use the application.",
        )
    })?;
    Ok(token_answer(s, "client_credentials", &mailbox, None))
}

fn refresh_token(
    s: &mut IdpState,
    form: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Value, OAuthError> {
    let (client_id, _) = s.authenticate_client(form, headers)?;
    let presented = form
        .get("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    let rt = match s.refresh.get(presented) {
        Some(rt) if rt.client_id == client_id && !rt.revoked => rt.clone(),
        Some(rt) if rt.revoked => {
            return Err(OAuthError::invalid_grant(
                "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity or was revoked.",
            ));
        }
        _ => {
            return Err(OAuthError::invalid_grant(
                "AADSTS9002313: Invalid request. Request is malformed or invalid.",
            ));
        }
    };
    let rotated = if s.rotate_refresh_tokens {
        if let Some(old) = s.refresh.get_mut(presented) {
            old.revoked = true;
        }
        Some(s.new_refresh_token(&client_id, &rt.user))
    } else {
        None
    };
    Ok(token_answer(s, "refresh_token", &rt.user, rotated))
}

/// RFC 7523 with Google's rules: iss is the service account, sub the mailbox,
/// aud the token endpoint, a scope, and at most an hour between iat and exp.
fn jwt_bearer(
    s: &mut IdpState,
    form: &HashMap<String, String>,
    addr: &SocketAddr,
) -> Result<Value, OAuthError> {
    let assertion = form
        .get("assertion")
        .ok_or_else(|| OAuthError::invalid_request("assertion is missing"))?;
    let bad = |d: &str| OAuthError::invalid_grant(d);
    let mut parts = assertion.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("Invalid JWT: not three parts"));
    };
    let decode = |p: &str| -> Result<Value, OAuthError> {
        let bytes = B64URL
            .decode(p)
            .map_err(|_| bad("Invalid JWT: bad base64url"))?;
        serde_json::from_slice(&bytes).map_err(|_| bad("Invalid JWT: bad JSON"))
    };
    let header = decode(header)?;
    let claims_json = decode(claims)?;
    if header["alg"] != "RS256" {
        return Err(bad("Invalid JWT: alg must be RS256"));
    }
    let iss = claims_json["iss"].as_str().unwrap_or_default().to_string();
    let sa = s
        .service_accounts
        .get(&iss)
        .ok_or_else(|| OAuthError::invalid_client("The OAuth client was not found."))?;
    let signed = format!(
        "{}.{}",
        assertion.split('.').next().unwrap_or_default(),
        claims
    );
    let sig = B64URL
        .decode(signature)
        .map_err(|_| bad("Invalid JWT Signature."))?;
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &sa.public_key)
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| bad("Invalid JWT Signature."))?;
    s.secrets.push(signature.to_string());
    let now = unix_now();
    let iat = claims_json["iat"].as_u64().unwrap_or(0);
    let exp = claims_json["exp"].as_u64().unwrap_or(0);
    if exp <= now || iat > now + 60 || exp.saturating_sub(iat) > 3600 {
        return Err(bad(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
        ));
    }
    if claims_json["aud"].as_str() != Some(format!("http://{addr}/token").as_str()) {
        return Err(bad("Invalid JWT: aud must be the token endpoint"));
    }
    if claims_json["scope"].as_str() != Some(GOOGLE_MAIL_SCOPE) || !sa.delegated {
        return Err(OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
        ));
    }
    let sub = claims_json["sub"]
        .as_str()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad("Invalid JWT: sub is missing (domain-wide delegation needs the user)"))?
        .to_string();
    Ok(token_answer(s, "jwt_bearer", &sub, None))
}

async fn device_authorization(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Params,
) -> Response {
    let result = {
        let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        s.authenticate_client(&form, &headers).map(|(client_id, _)| {
            let device_code = format!("dc.{}", random_hex(32));
            let user_code = format!("{}-{}", random_code(4), random_code(4));
            s.secrets.push(device_code.clone());
            let slow_downs = s.slow_down_first;
            s.devices.insert(
                device_code.clone(),
                Device {
                    client_id,
                    user_code: user_code.clone(),
                    expires: Instant::now() + Duration::from_secs(900),
                    state: DeviceState::Pending,
                    slow_downs,
                    polls: 0,
                },
            );
            json!({
                "device_code": device_code,
                "user_code": user_code,
                "verification_uri": format!("http://{}/device", shared.addr),
                "expires_in": 900,
                "interval": 1,
                "message": format!("To sign in, use a web browser to open the page http://{}/device and enter the code {user_code} to authenticate.", shared.addr),
            })
        })
    };
    answer(
        &shared,
        "devicecode",
        "device".into(),
        form.get("scope").cloned(),
        presented_secret(&form, &headers),
        result,
    )
}

fn device_code(
    s: &mut IdpState,
    form: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Value, OAuthError> {
    let (client_id, _) = s.authenticate_client(form, headers)?;
    let code = form
        .get("device_code")
        .ok_or_else(|| OAuthError::invalid_request("device_code is missing"))?;
    let device = s
        .devices
        .get_mut(code)
        .filter(|d| d.client_id == client_id)
        .ok_or_else(|| OAuthError::invalid_grant("AADSTS70000: unknown device code"))?;
    device.polls += 1;
    let pending = |e: &'static str, d: &str| OAuthError::new(StatusCode::BAD_REQUEST, e, d);
    if device.slow_downs > 0 {
        device.slow_downs -= 1;
        return Err(pending("slow_down", "polling too fast"));
    }
    if Instant::now() >= device.expires {
        return Err(pending(
            "expired_token",
            "AADSTS70020: The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
        ));
    }
    match device.state.clone() {
        DeviceState::Pending => Err(pending(
            "authorization_pending",
            "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        )),
        DeviceState::Denied => Err(pending(
            "access_denied",
            "AADSTS70000: The user has declined to authorize the application.",
        )),
        DeviceState::Approved(user) => {
            s.devices.remove(code);
            let refresh = s.new_refresh_token(&client_id, &user);
            Ok(token_answer(s, "device_code", &user, Some(refresh)))
        }
    }
}

/// RFC 7662 as Dovecot's `introspection_mode = post` calls it: `token=...` in a form.
async fn introspect(State(shared): State<Arc<Shared>>, Form(form): Params) -> Json<Value> {
    let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    let token = form.get("token").cloned().unwrap_or_default();
    let now = Instant::now();
    let (seq, active, reason, user) = match s.access.get(&token) {
        None => (None, false, Some("unknown"), None),
        Some(t) if t.revoked => (Some(t.seq), false, Some("revoked"), None),
        Some(t) if now >= t.expires => (Some(t.seq), false, Some("expired"), None),
        Some(t) => (Some(t.seq), true, None, Some(t.user.clone())),
    };
    s.introspections.push(Introspection {
        token_seq: seq,
        active,
        reason: reason.map(str::to_string),
    });
    match user {
        Some(user) => Json(json!({"active": true, "email": user, "token_type": "Bearer"})),
        None => Json(json!({"active": false})),
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(BASE64.decode(encoded).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

fn pem_wrap(label: &str, der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// RFC 8628 6.1: user codes from a small alphabet without look-alikes.
fn random_code(len: usize) -> String {
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
