//! The TOML configuration: schema, defaults, validation and secrets.
//!
//! Everything is checked up front so a typo is an error at start (or on
//! SIGHUP), naming the file, the key and what is wrong.

mod disposition;
mod fingerprint;
mod rules;
mod secret;
mod validate;
pub(crate) use validate::is_loopback_host;

pub use disposition::Disposition;
pub use fingerprint::Fingerprint;
pub use rules::default_rules;
pub use secret::{SecretError, SecretFileError, expand_credentials_dir, read_secret_file};

use crate::mail::content::ContentConfig;
use crate::mail::ticket::DEFAULT_SUBJECT_PATTERN;
use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the config is read from when neither `--config` nor the environment says.
pub const DEFAULT_PATH: &str = "/etc/thulium-mail-bridge/config.toml";

/// A config error: the file, the key path and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub message: String,
}

/// What is wrong with one key, before the file is named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct Invalid {
    pub key: String,
    pub message: String,
}

impl Invalid {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The same problem under a longer key path (`prefix.key`).
    pub fn within(self, prefix: &str) -> Invalid {
        Invalid::new(format!("{prefix}.{}", self.key), self.message)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub thulium: ThuliumConfig,
    #[serde(default, rename = "mailbox")]
    pub mailboxes: Vec<MailboxConfig>,
    #[serde(default, rename = "match")]
    pub matching: MatchConfig,
    #[serde(default)]
    pub content: ContentConfig,
    #[serde(default)]
    pub filters: FiltersConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Non-fatal findings of `load` (e.g. an inline password in a world-readable file).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThuliumConfig {
    pub url: String,
    pub user: String,
    #[serde(default, deserialize_with = "secret::inline")]
    pub password: Option<SecretString>,
    pub password_file: Option<PathBuf>,
    #[serde(default = "default_timezone")]
    pub timezone: String,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default)]
    pub verify_sender: VerifySender,
    /// `http://` to a host that is not loopback sends the API password in clear.
    #[serde(default)]
    pub allow_insecure: bool,
    /// Agents' addresses (globs): an agent's authenticated forward of a customer's mail
    /// is posted as that mail.
    #[serde(default)]
    pub agents: Vec<String>,
}

/// Whether a reply must come from the ticket's customer (or from its thread).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifySender {
    Off,
    Warn,
    /// Ticket numbers are sequential: anyone could write into any ticket otherwise.
    #[default]
    Enforce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    Tls,
    Starttls,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxConfig {
    pub name: String,
    pub host: String,
    pub port: Option<u16>,
    #[serde(default = "default_tls")]
    pub tls: TlsMode,
    #[serde(default)]
    pub allow_insecure: bool,
    pub ca_file: Option<PathBuf>,
    /// Pins the server's certificate (its SHA-256); replaces CA validation.
    pub tls_fingerprint: Option<Fingerprint>,
    pub username: String,
    #[serde(default, deserialize_with = "secret::inline")]
    pub password: Option<SecretString>,
    pub password_file: Option<PathBuf>,
    pub oauth2: Option<OAuth2Config>,
    #[serde(default = "default_folder")]
    pub folder: String,
    #[serde(default = "yes")]
    pub idle: bool,
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    #[serde(default = "default_on_posted")]
    pub on_posted: Disposition,
    #[serde(default = "default_on_unmatched")]
    pub on_unmatched: Disposition,
    #[serde(default = "default_on_ignored")]
    pub on_ignored: Disposition,
    #[serde(default = "default_on_failed")]
    pub on_failed: Disposition,
    #[serde(default = "default_on_unverified")]
    pub on_unverified: Disposition,
    /// Authentication-Results ids of the receiving server whose verdicts count;
    /// `"topmost"` takes the topmost header whatever its id (Microsoft 365 writes none).
    #[serde(default)]
    pub trusted_authserv_id: Vec<String>,
    /// With `on_unmatched = "new_ticket"`: how a mail without a ticket becomes one.
    pub new_ticket: Option<NewTicketConfig>,
    /// A folder a person moves a mail into to vouch for it (`""`: none).
    #[serde(default = "default_approve_folder")]
    pub approve_folder: String,
}

/// `[mailbox.new_ticket]`: a mail without a ticket number becomes a new ticket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTicketConfig {
    /// The helpdesk mailbox's address (it picks the queue when none is given).
    pub to: String,
    pub ticket_queue_id: Option<u64>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub category_id: Option<u64>,
    pub status_id: Option<u64>,
    /// New tickets one sender address may open per hour; more go to `fallback`.
    #[serde(default = "default_per_sender_per_hour")]
    pub per_sender_per_hour: u32,
    /// Where a mail goes that cannot become a ticket (over the sender limit, refused).
    #[serde(default = "default_on_unmatched")]
    pub fallback: Disposition,
}

impl MailboxConfig {
    /// Everything that makes this mailbox's loop and its OAuth2 tokens what they are,
    /// secrets included (as a hash only): a reload that changes any of it restarts the
    /// mailbox and fetches new tokens.
    pub fn fingerprint(&self) -> String {
        use secrecy::ExposeSecret;
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(format!("{self:?}").as_bytes());
        let secrets = [
            self.password.as_ref(),
            self.oauth2.as_ref().and_then(|o| o.client_secret.as_ref()),
        ];
        for secret in secrets {
            hash.update([0u8]);
            hash.update(secret.map(|s| s.expose_secret()).unwrap_or("").as_bytes());
        }
        hex::encode(hash.finalize())
    }

    /// Where each kind of mail can go (with new tickets, their fallback too).
    pub fn dispositions(&self) -> Vec<&Disposition> {
        let mut all = vec![
            &self.on_posted,
            &self.unmatched_disposition(),
            &self.on_ignored,
            &self.on_failed,
            &self.on_unverified,
        ];
        all.dedup();
        all
    }

    /// Where an unmatched mail goes that does not become a ticket.
    pub fn unmatched_disposition(&self) -> &Disposition {
        match (&self.on_unmatched, &self.new_ticket) {
            (Disposition::NewTicket, Some(n)) => &n.fallback,
            (d, _) => d,
        }
    }

    /// The approve folder, unless turned off.
    pub fn approve_folder(&self) -> Option<&str> {
        Some(self.approve_folder.trim()).filter(|f| !f.is_empty())
    }

    /// The mailbox's own address (its `username`, when that is one): mail from it is
    /// the helpdesk's own, never a customer's reply.
    pub fn own_address(&self) -> Option<String> {
        let u = self.username.trim();
        (u.contains('@') && !u.starts_with('@') && !u.ends_with('@'))
            .then(|| u.to_ascii_lowercase())
    }

    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::Tls => 993,
            _ => 143,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OAuth2Grant {
    ClientCredentials,
    RefreshToken,
    JwtBearer,
    Command,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaslMechanism {
    #[default]
    Xoauth2,
    Oauthbearer,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    pub grant: OAuth2Grant,
    pub token_url: Option<String>,
    /// RFC 8628 device endpoint for `oauth2 login`; derived from `token_url` when absent.
    pub device_authorization_url: Option<String>,
    pub client_id: Option<String>,
    #[serde(default, deserialize_with = "secret::inline")]
    pub client_secret: Option<SecretString>,
    pub client_secret_file: Option<PathBuf>,
    pub scope: Option<String>,
    pub refresh_token_file: Option<PathBuf>,
    pub service_account_key_file: Option<PathBuf>,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub mechanism: SaslMechanism,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    #[serde(default = "default_subject_patterns")]
    pub subject_patterns: Vec<String>,
    #[serde(default = "yes")]
    pub use_references: bool,
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            subject_patterns: default_subject_patterns(),
            use_references: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FiltersConfig {
    pub skip_auto_replies: bool,
    pub skip_bounces: bool,
    pub deny_senders: Vec<String>,
    pub allow_senders: Vec<String>,
    /// The helpdesk's own addresses: mail from them is never a customer's reply (loops).
    pub own_addresses: Vec<String>,
}

impl Default for FiltersConfig {
    fn default() -> Self {
        FiltersConfig {
            skip_auto_replies: true,
            skip_bounces: true,
            deny_senders: Vec::new(),
            allow_senders: Vec::new(),
            own_addresses: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// The SQLite ledger, and what stays local to one host (the instance lock, tokens).
    pub dir: PathBuf,
    /// How long `ledger list` remembers what became of a mail (swept daily).
    #[serde(with = "humantime_serde")]
    pub keep_decisions: Duration,
    /// Where the ledger lives: `sqlite` in `dir` (one host), or `postgres`, shared by
    /// instances on several hosts that take turns leading each mailbox.
    pub backend: LedgerBackend,
    /// `postgresql://user@host[:port]/database`; the password goes in the file below.
    pub postgres_url: Option<String>,
    pub postgres_password_file: Option<PathBuf>,
    /// The CA that signed the database server's certificate (else the system's roots).
    pub postgres_ca_file: Option<PathBuf>,
    /// Plain TCP to a PostgreSQL that is not on loopback sends the ledger in clear.
    pub allow_insecure: bool,
    /// Names this instance in the leases (`status`, metrics); default host name + pid.
    pub instance: Option<String>,
    /// How long a mailbox's leadership lasts unrenewed (renewed every third of it).
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// `postgres_password_file`, read at load.
    #[serde(skip)]
    pub postgres_password: Option<SecretString>,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: PathBuf::from("/var/lib/thulium-mail-bridge"),
            keep_decisions: Duration::from_secs(90 * 24 * 3600),
            backend: LedgerBackend::Sqlite,
            postgres_url: None,
            postgres_password_file: None,
            postgres_ca_file: None,
            allow_insecure: false,
            instance: None,
            lease: Duration::from_secs(15),
            postgres_password: None,
        }
    }
}

impl StateConfig {
    /// This instance's name in the leases: `instance`, else host name and pid.
    pub fn instance_name(&self) -> String {
        self.instance
            .clone()
            .unwrap_or_else(|| format!("{}:{}", self.host_name(), std::process::id()))
    }

    /// What stays the same across restarts on this host: `instance`, else the host name.
    pub fn host_name(&self) -> String {
        self.instance.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "localhost".into())
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedgerBackend {
    #[default]
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub listen: Option<SocketAddr>,
}

/// How long a mail that keeps failing transiently is retried before it goes to `on_failed`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// How long a stop waits for the mail in hand before abandoning it (it stays pending
    /// in the ledger and is read back at the next start); under systemd's TimeoutStopSec.
    #[serde(with = "humantime_serde")]
    pub stop_timeout: Duration,
}

impl DeliveryConfig {
    /// "gave up after N failed attempts over D", once a mail has counted `max_attempts`
    /// failed attempts or is `max_age` old; the rule for replies and new tickets alike.
    pub fn given_up(&self, attempts: u32, age: Duration) -> Option<String> {
        (attempts >= self.max_attempts || age >= self.max_age).then(|| {
            format!(
                "gave up after {attempts} failed attempts over {}",
                humantime::format_duration(Duration::from_secs(age.as_secs()))
            )
        })
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_attempts: 20,
            max_age: Duration::from_secs(7 * 24 * 3600),
            stop_timeout: Duration::from_secs(30),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_timezone() -> String {
    "Europe/Warsaw".into()
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_concurrency() -> usize {
    4
}
fn default_tls() -> TlsMode {
    TlsMode::Tls
}
fn default_folder() -> String {
    "INBOX".into()
}
fn default_approve_folder() -> String {
    "Approve".into()
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_on_posted() -> Disposition {
    Disposition::Move("Processed".into())
}
fn default_on_unmatched() -> Disposition {
    Disposition::Move("Unmatched".into())
}
fn default_on_ignored() -> Disposition {
    Disposition::Move("Ignored".into())
}
fn default_on_failed() -> Disposition {
    Disposition::Move("Failed".into())
}
fn default_on_unverified() -> Disposition {
    Disposition::Move("Unverified".into())
}
fn default_per_sender_per_hour() -> u32 {
    10
}
fn default_subject_patterns() -> Vec<String> {
    vec![DEFAULT_SUBJECT_PATTERN.to_string()]
}

impl Config {
    /// Reads, parses and validates a config file; secrets from `*_file` keys are read now.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: "(file)".into(),
            message: format!("cannot read: {e}"),
        })?;
        let mut config = Config::parse(&text, &file)?;
        config.warn_about_inline_secrets(path);
        Ok(config)
    }

    /// Parses and validates config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let err = |key: String, message: String| ConfigError {
            file: file.to_string(),
            key,
            message,
        };
        let de = toml::Deserializer::parse(text)
            .map_err(|e| err("(syntax)".into(), syntax(text, &e)))?;
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." {
                "(top level)".into()
            } else {
                key
            };
            err(key, one_line(e.inner().message()))
        })?;
        config
            .validate()
            .map_err(|Invalid { key, message }| err(key, message))?;
        Ok(config)
    }

    /// The zone of the Thulium account (validated at load).
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.thulium
            .timezone
            .parse()
            .unwrap_or(chrono_tz::Europe::Warsaw)
    }

    fn warn_about_inline_secrets(&mut self, path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let inline = self.thulium.password_file.is_none()
            || self.mailboxes.iter().any(|m| match &m.oauth2 {
                None => m.password_file.is_none(),
                Some(o) => o.client_secret.is_some(),
            });
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode())
            .unwrap_or(0);
        if inline && mode & 0o077 != 0 {
            self.warnings.push(format!(
                "{}: holds a password inline and is readable by group or others (mode {:o}); chmod 600 it or use password_file",
                path.display(),
                mode & 0o777
            ));
        }
    }
}

impl OAuth2Grant {
    /// The config spelling, for messages.
    pub fn name(self) -> &'static str {
        match self {
            OAuth2Grant::ClientCredentials => "client_credentials",
            OAuth2Grant::RefreshToken => "refresh_token",
            OAuth2Grant::JwtBearer => "jwt_bearer",
            OAuth2Grant::Command => "command",
        }
    }
}

/// Where the syntax error is and what it is, without the line itself: it may be a
/// password's (toml's own message quotes it).
fn syntax(text: &str, e: &toml::de::Error) -> String {
    let Some(at) = e.span().map(|s| s.start) else {
        return one_line(e.message());
    };
    let before = text.get(..text.floor_char_boundary(at)).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("line {line}, column {column}: {}", one_line(e.message()))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
