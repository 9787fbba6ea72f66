//! Checks a parsed config beyond its types, so that every mistake is a config error
//! naming its key (exit 2) rather than a surprise at run time; secrets from `*_file`
//! keys are read here.

use super::secret::{self, SecretError};
use super::{
    Config, Disposition, Invalid, MailboxConfig, OAuth2Config, OAuth2Grant, ThuliumConfig, TlsMode,
};
use std::time::Duration;

impl Config {
    /// Every check, in the file's order; the first problem is the error.
    pub(super) fn validate(&mut self) -> Result<(), Invalid> {
        thulium(&mut self.thulium)?;
        let mut names = std::collections::HashSet::new();
        for (i, m) in self.mailboxes.iter_mut().enumerate() {
            let prefix = format!("mailbox[{i}]");
            let at = |key: &str| format!("{prefix}.{key}");
            if m.name.trim().is_empty() {
                return Err(Invalid::new(at("name"), "must not be empty"));
            }
            if !names.insert(m.name.clone()) {
                return Err(Invalid::new(
                    at("name"),
                    format!(
                        "{:?} is used by another mailbox; names must be unique",
                        m.name
                    ),
                ));
            }
            mailbox(m, &prefix)?;
            dispositions(m, &prefix)?;
        }

        agents_need_authentication(self)?;
        // Subject patterns, sender filters and agents compile, with the keys named.
        self.rules()?;
        if self.content.max_body_size.bytes() < 1024 {
            return Err(Invalid::new(
                "content.max_body_size",
                "must be at least 1 KiB",
            ));
        }
        if self.content.max_message_size.bytes() < 1024 {
            return Err(Invalid::new(
                "content.max_message_size",
                "must be at least 1 KiB",
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            Invalid::new(
                "log.level",
                format!("{e} (use error, warn, info, debug or trace)"),
            )
        })?;
        shared_ledger(&mut self.state)?;
        if self.state.keep_decisions < Duration::from_secs(24 * 3600) {
            return Err(Invalid::new(
                "state.keep_decisions",
                "must be at least 1d (decisions are swept once a day)",
            ));
        }
        if self.delivery.max_attempts == 0 {
            return Err(Invalid::new("delivery.max_attempts", "must be at least 1"));
        }
        if self.delivery.stop_timeout.is_zero() {
            return Err(Invalid::new(
                "delivery.stop_timeout",
                "must be more than 0 (the time a stop gives the mail in hand)",
            ));
        }
        Ok(())
    }
}

fn thulium(t: &mut ThuliumConfig) -> Result<(), Invalid> {
    let url = reqwest::Url::parse(&t.url).map_err(|e| {
        let shown = secret::without_userinfo(&t.url);
        Invalid::new("thulium.url", format!("not a URL ({e}): {shown:?}"))
    })?;
    // The API password belongs in `password`: a URL is printed (check, errors, logs).
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Invalid::new(
            "thulium.url",
            "must not hold a user or password (user:password@); set thulium.user and thulium.password",
        ));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Invalid::new(
            "thulium.url",
            "must start with https:// (or http://)",
        ));
    }
    insecure_url(&url, t.allow_insecure).map_err(|m| {
        Invalid::new(
            "thulium.url",
            format!("{m}, or set [thulium] allow_insecure = true"),
        )
    })?;
    if t.user.trim().is_empty() {
        return Err(Invalid::new("thulium.user", "must not be empty"));
    }
    let password =
        secret::resolve(t.password.as_ref(), t.password_file.as_deref()).map_err(|e| {
            secret_problem(
                "password",
                e,
                "one of password or password_file is required",
            )
            .within("thulium")
        })?;
    t.password = Some(password);
    t.timezone.parse::<chrono_tz::Tz>().map_err(|_| {
        Invalid::new(
            "thulium.timezone",
            format!(
                "unknown IANA time zone {:?} (e.g. \"Europe/Warsaw\")",
                t.timezone
            ),
        )
    })?;
    if t.timeout.is_zero() {
        return Err(Invalid::new("thulium.timeout", "must be longer than 0s"));
    }
    if !(1..=256).contains(&t.concurrency) {
        return Err(Invalid::new(
            "thulium.concurrency",
            format!("must be between 1 and 256, got {}", t.concurrency),
        ));
    }
    Ok(())
}

/// A From header is easy to forge: a mail is an agent's only when the receiving server
/// authenticated it, so every mailbox must name that server's Authentication-Results id.
fn agents_need_authentication(c: &Config) -> Result<(), Invalid> {
    if c.thulium.agents.is_empty() {
        return Ok(());
    }
    let unchecked: Vec<String> = c
        .mailboxes
        .iter()
        .enumerate()
        .filter(|(_, m)| m.trusted_authserv_id.iter().all(|id| id.trim().is_empty()))
        .map(|(i, m)| format!("mailbox[{i}] ({:?})", m.name))
        .collect();
    if unchecked.is_empty() {
        return Ok(());
    }
    Err(Invalid::new(
        "thulium.agents",
        format!(
            "needs trusted_authserv_id on every mailbox, and {} has none: a From header is easy to forge, so a mail counts as an agent's only when the receiving server authenticated it (DMARC, or aligned DKIM or SPF)",
            unchecked.join(", ")
        ),
    ))
}

/// Connection, credentials and folder of one mailbox; `at` names its keys.
fn mailbox(m: &mut MailboxConfig, prefix: &str) -> Result<(), Invalid> {
    let at = |key: &str| format!("{prefix}.{key}");
    if m.host.trim().is_empty() {
        return Err(Invalid::new(at("host"), "must not be empty"));
    }
    if m.tls == TlsMode::None && !m.allow_insecure && !is_loopback_host(&m.host) {
        return Err(Invalid::new(
            at("tls"),
            format!(
                "\"none\" sends the password in clear text to {}; use tls or starttls, or set allow_insecure = true",
                m.host
            ),
        ));
    }
    if m.username.trim().is_empty() {
        return Err(Invalid::new(at("username"), "must not be empty"));
    }
    match &m.oauth2 {
        Some(o) => {
            if m.password.is_some() || m.password_file.is_some() {
                return Err(Invalid::new(
                    at("oauth2"),
                    "set either a password or [mailbox.oauth2], not both",
                ));
            }
            validate_oauth2(o, m.allow_insecure).map_err(|e| e.within(&at("oauth2")))?;
        }
        None => {
            let password = secret::resolve(m.password.as_ref(), m.password_file.as_deref())
                .map_err(|e| {
                    let missing = "one of password, password_file or [mailbox.oauth2] is required";
                    secret_problem("password", e, missing).within(prefix)
                })?;
            m.password = Some(password);
        }
    }
    if let Some(ca) = &m.ca_file
        && !ca.is_file()
    {
        return Err(Invalid::new(
            at("ca_file"),
            format!("{} does not exist", ca.display()),
        ));
    }
    if m.folder.trim().is_empty() {
        return Err(Invalid::new(at("folder"), "must not be empty"));
    }
    if m.poll_interval < Duration::from_secs(1) {
        return Err(Invalid::new(at("poll_interval"), "must be at least 1s"));
    }
    Ok(())
}

/// Where each kind of mail goes: never back into the watched folder, never deleted
/// unless posted; a new ticket needs its table.
fn dispositions(m: &MailboxConfig, prefix: &str) -> Result<(), Invalid> {
    let at = |key: &str| format!("{prefix}.{key}");
    let mut keys = vec![
        ("on_posted", &m.on_posted),
        ("on_unmatched", &m.on_unmatched),
        ("on_ignored", &m.on_ignored),
        ("on_failed", &m.on_failed),
        ("on_unverified", &m.on_unverified),
    ];
    if let Some(n) = &m.new_ticket {
        keys.push(("new_ticket.fallback", &n.fallback));
    }
    for (key, d) in keys {
        if *d == Disposition::NewTicket && key != "on_unmatched" {
            return Err(Invalid::new(at(key), "new_ticket is only for on_unmatched"));
        }
        if *d == Disposition::Delete && key != "on_posted" {
            return Err(Invalid::new(
                at(key),
                "delete is only for on_posted: this mail was never posted, so deleting it would lose it; use move:<folder>, flag:<keyword> or seen",
            ));
        }
        if d.target_folder() == Some(m.folder.as_str()) {
            return Err(Invalid::new(
                at(key),
                format!(
                    "moving into {:?}, the watched folder, would handle the mail again",
                    m.folder
                ),
            ));
        }
        if let Some(approve) = m.approve_folder()
            && d.target_folder() == Some(approve)
        {
            return Err(Invalid::new(
                at(key),
                format!(
                    "moving into {approve:?}, the approve_folder, would post the mail as if a person had vouched for it; pick another folder"
                ),
            ));
        }
    }
    if m.approve_folder() == Some(m.folder.trim()) {
        return Err(Invalid::new(
            at("approve_folder"),
            "must not be the watched folder: a person moves a mail there to vouch for it (\"\" turns it off)",
        ));
    }
    match (&m.on_unmatched, &m.new_ticket) {
        (Disposition::NewTicket, None) => {
            return Err(Invalid::new(
                at("new_ticket"),
                "on_unmatched = \"new_ticket\" needs a [mailbox.new_ticket] table with at least `to` (the helpdesk mailbox's address)",
            ));
        }
        (Disposition::NewTicket, Some(n)) => {
            if !n.to.contains('@') {
                return Err(Invalid::new(
                    at("new_ticket.to"),
                    format!("{:?} is not an address", n.to),
                ));
            }
        }
        (_, Some(_)) => {
            return Err(Invalid::new(
                at("new_ticket"),
                "is used only with on_unmatched = \"new_ticket\"",
            ));
        }
        (_, None) => {}
    }
    Ok(())
}

/// The message for a secret that could not be resolved; `missing` says what is required.
/// `backend = "postgres"`: a URL without a password in it, the password from its file,
/// and TLS unless the database is on loopback or `allow_insecure` says so.
fn shared_ledger(state: &mut super::StateConfig) -> Result<(), Invalid> {
    if state.backend == super::LedgerBackend::Sqlite {
        return Ok(());
    }
    let Some(url) = state.postgres_url.as_deref() else {
        return Err(Invalid::new(
            "state.postgres_url",
            "is required with backend = \"postgres\" (postgresql://user@host/database)",
        ));
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        Invalid::new(
            "state.postgres_url",
            format!("{}: {e}", secret::without_userinfo(url)),
        )
    })?;
    if !matches!(parsed.scheme(), "postgresql" | "postgres") || parsed.host_str().is_none() {
        return Err(Invalid::new(
            "state.postgres_url",
            "must look like postgresql://user@host[:port]/database",
        ));
    }
    if parsed.password().is_some() {
        return Err(Invalid::new(
            "state.postgres_url",
            "must not hold a password (user:password@); set state.postgres_password_file",
        ));
    }
    if state.lease < Duration::from_secs(3) {
        return Err(Invalid::new("state.lease", "must be at least 3s"));
    }
    state.postgres_password = match state.postgres_password_file.as_deref() {
        Some(file) => Some(
            secret::resolve(None, Some(file))
                .map_err(|e| secret_problem("postgres_password_file", e, "").within("state"))?,
        ),
        None => None,
    };
    Ok(())
}

fn secret_problem(key: &str, e: SecretError, missing: &str) -> Invalid {
    match e {
        SecretError::Missing => Invalid::new(key, missing),
        SecretError::Both => Invalid::new(key, format!("set only one of {key} and {key}_file")),
        SecretError::File(e) => Invalid::new(format!("{key}_file"), e.to_string()),
    }
}

/// `http://` is for loopback only, unless the admin says otherwise.
fn insecure_url(url: &reqwest::Url, allowed: bool) -> Result<(), String> {
    let loopback = url.host_str().is_some_and(is_loopback_host);
    if url.scheme() == "https" || loopback || allowed {
        return Ok(());
    }
    Err(format!(
        "{}://{} would send secrets in clear text; use https://",
        url.scheme(),
        url.host_str().unwrap_or("")
    ))
}

fn validate_oauth2(o: &OAuth2Config, allow_insecure: bool) -> Result<(), Invalid> {
    let need = |present: bool, key: &str| {
        if present {
            Ok(())
        } else {
            Err(Invalid::new(
                key.to_string(),
                format!("is required for grant = {:?}", o.grant.name()),
            ))
        }
    };
    match o.grant {
        OAuth2Grant::ClientCredentials | OAuth2Grant::RefreshToken | OAuth2Grant::JwtBearer => {
            need(o.token_url.is_some(), "token_url")?;
            if let Some(u) = &o.token_url {
                let url = reqwest::Url::parse(u)
                    .map_err(|e| Invalid::new("token_url", format!("not a URL: {e}")))?;
                insecure_url(&url, allow_insecure).map_err(|m| {
                    Invalid::new(
                        "token_url",
                        format!("{m}, or set allow_insecure = true on this mailbox"),
                    )
                })?;
            }
        }
        OAuth2Grant::Command => {}
    }
    if let Some(u) = &o.device_authorization_url {
        let url = reqwest::Url::parse(u)
            .map_err(|e| Invalid::new("device_authorization_url", format!("not a URL: {e}")))?;
        insecure_url(&url, allow_insecure).map_err(|m| {
            Invalid::new(
                "device_authorization_url",
                format!("{m}, or set allow_insecure = true on this mailbox"),
            )
        })?;
    }
    match o.grant {
        OAuth2Grant::ClientCredentials => {
            need(o.client_id.is_some(), "client_id")?;
            need(
                o.client_secret.is_some() || o.client_secret_file.is_some(),
                "client_secret_file",
            )?;
        }
        OAuth2Grant::RefreshToken => {
            need(o.client_id.is_some(), "client_id")?;
            need(o.refresh_token_file.is_some(), "refresh_token_file")?;
        }
        OAuth2Grant::JwtBearer => need(
            o.service_account_key_file.is_some(),
            "service_account_key_file",
        )?,
        OAuth2Grant::Command => need(!o.command.is_empty(), "command")?,
    }
    Ok(())
}

/// `none` TLS is only allowed where the password cannot leave the machine.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
