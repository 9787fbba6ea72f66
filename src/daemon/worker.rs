//! One mailbox, for as long as the daemon runs: connect, pass, wait (IDLE or poll), repeat;
//! reconnect with capped, jittered backoff after any trouble.

use super::pass;
use super::tally::{Deferrals, PassReport};
use super::waiting::Waiting;
use crate::config::MailboxConfig;
use crate::daemon::bridge::Bridge;
use crate::imap::{self, IdleEnd, ImapError, Login, MailSession};
use crate::oauth2::{self, TokenCache};
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Servers end IDLE after ~30 minutes; re-issue it well before.
const IDLE_REISSUE: Duration = Duration::from_secs(25 * 60);
/// How often the approve folder is looked at (or `poll_interval`, when shorter): IDLE
/// watches one folder, and a person who moved a mail there waits at most this long.
const APPROVE_POLL: Duration = Duration::from_secs(30);
const RECONNECT_BASE: Duration = Duration::from_secs(1);
const RECONNECT_CAP: Duration = Duration::from_secs(300);

/// How a mailbox signs in: its password, or an OAuth2 access token from
/// `tokens` (`renew` skips a cached token the server just refused).
pub(crate) async fn login_for(
    mb: &MailboxConfig,
    tokens: &TokenCache,
    renew: bool,
) -> Result<Login, ImapError> {
    match (&mb.oauth2, &mb.password) {
        (Some(o), _) => {
            let token = tokens
                .token(mb, renew)
                .await
                .map_err(|e| oauth2::imap_error(e, mb))?;
            Ok(Login::OAuth2 {
                token,
                mechanism: o.mechanism,
            })
        }
        (None, Some(p)) => Ok(Login::Password(p.clone())),
        (None, None) => Err(ImapError::Auth {
            addr: format!("{}:{}", mb.host, mb.port()),
            user: mb.username.clone(),
            reason: "no password and no [mailbox.oauth2] configured".into(),
        }),
    }
}

/// Connects and signs in; the greeting must come within `greeting`.
pub(crate) async fn connect(
    mb: &MailboxConfig,
    greeting: Duration,
) -> Result<MailSession, ImapError> {
    let tokens = TokenCache::global();
    Ok(
        match imap::connect(mb, &login_for(mb, tokens, false).await?, greeting).await {
            // A cached token the server no longer takes (revoked early, clocks
            // apart): one more try with a new one before calling it refused.
            Err(ImapError::Auth { .. }) if mb.oauth2.is_some() => {
                tracing::info!("the IMAP server refused the OAuth2 token; trying a new one");
                let login = login_for(mb, tokens, true).await?;
                imap::connect(mb, &login, greeting)
                    .await
                    .map_err(|e| oauth2::refused_by_server(e, mb))?
            }
            other => other?,
        },
    )
}

/// Connects, selects the folder, makes sure the server can carry out the dispositions
/// and (unless dry-run) creates the target folders.
pub(crate) async fn open(
    mb: &MailboxConfig,
    dry_run: bool,
    greeting: Duration,
) -> Result<MailSession, ImapError> {
    let mut session = connect(mb, greeting).await?;
    match session.select(&mb.folder).await {
        Err(ImapError::Refused { response, .. }) => {
            let existing = session.folders().await.unwrap_or_default();
            return Err(ImapError::NoSuchFolder {
                name: mb.folder.clone(),
                response,
                existing,
            });
        }
        other => other?,
    };
    if let Some(reason) = session.unsupported(&mb.dispositions()) {
        return Err(ImapError::Unsupported { reason });
    }
    if !dry_run {
        let targets: Vec<&str> = mb
            .dispositions()
            .iter()
            .filter_map(|d| d.target_folder())
            .chain(mb.approve_folder())
            .collect();
        let created = session.ensure_folders(&targets).await?;
        for folder in created {
            tracing::info!(%folder, "created folder");
        }
        session.select(&mb.folder).await?;
    }
    Ok(session)
}

/// One pass for `once`: open, pass, log out.
pub(crate) async fn once(
    mb: &MailboxConfig,
    bridge: &Arc<Bridge>,
) -> Result<PassReport, ImapError> {
    let mut session = open(mb, bridge.dry_run(), imap::DAEMON_GREETING).await?;
    if let Some(warning) = session.expired_pin_warning() {
        tracing::warn!("{warning}");
    }
    let never = CancellationToken::new();
    let mut report =
        pass::run_pass(&mut session, mb, bridge, &mut Deferrals::new(), &never).await?;
    if let Some(approve) = approve_mailbox(mb) {
        report.add(
            approve_pass(
                &mut session,
                mb,
                &approve,
                bridge,
                &mut Deferrals::new(),
                &never,
            )
            .await?,
        );
    }
    session.logout().await;
    Ok(report)
}

/// The mailbox as its approve folder is read: the same, watching that folder.
fn approve_mailbox(mb: &MailboxConfig) -> Option<MailboxConfig> {
    let folder = mb.approve_folder()?.to_string();
    Some(MailboxConfig {
        folder,
        ..mb.clone()
    })
}

/// A pass over the approve folder, then back to the watched folder.
async fn approve_pass(
    session: &mut MailSession,
    mb: &MailboxConfig,
    approve: &MailboxConfig,
    bridge: &Arc<Bridge>,
    deferrals: &mut Deferrals,
    stop: &CancellationToken,
) -> Result<PassReport, ImapError> {
    match session.select(&approve.folder).await {
        // A dry run creates no folder: one not made yet holds nothing to approve.
        Err(ImapError::Refused { .. }) if bridge.dry_run() => {
            session.select(&mb.folder).await?;
            return Ok(PassReport::default());
        }
        other => other?,
    };
    let report = pass::run_pass(session, approve, bridge, deferrals, stop).await;
    session.select(&mb.folder).await?;
    report
}

/// The daemon's loop for one mailbox, until `stop` is cancelled. `bridges` carries the
/// current rules and API client, replaced on reload without restarting this loop.
pub(crate) async fn run(
    mb: MailboxConfig,
    bridges: watch::Receiver<Arc<Bridge>>,
    stop: CancellationToken,
    ready: watch::Sender<bool>,
) {
    let mut life = Life::default();
    let mut deferrals = Deferrals::new();
    let ledger = bridges.borrow().ledger().clone();
    life.waiting
        .seed(ledger.pending_since(&mb.name).await.unwrap_or_default());
    while !stop.is_cancelled() {
        match serve(&mb, &bridges, &stop, &mut deferrals, &ready, &mut life).await {
            Ok(Ended::Shutdown) => return,
            Ok(Ended::TokenDue) => {
                tracing::info!("OAuth2 token due for renewal; signing in again");
            }
            // Exchange ends sessions after ~30 min, Gmail IDLE after ~10: routine, not
            // trouble. Said once in a while, not at every reconnect.
            Ok(Ended::Dropped(e)) => {
                if life
                    .last_drop_said
                    .is_none_or(|t| t.elapsed() >= DROPS_SAID_EVERY)
                {
                    life.last_drop_said = Some(Instant::now());
                    tracing::info!(error = %e, "the server ended the connection while idle (some servers do that on a schedule); reconnecting");
                } else {
                    tracing::debug!(error = %e, "the server ended the connection while idle; reconnecting");
                }
            }
            Err(e) => {
                let _ = ready.send(true);
                let fatal = matches!(
                    e,
                    ImapError::Auth { .. }
                        | ImapError::Unsupported { .. }
                        | ImapError::Folder { .. }
                        | ImapError::NoSuchFolder { .. }
                );
                bridges.borrow().health().failed(&mb.name, e.kind(), fatal);
                life.failures += 1;
                let failures = life.failures;
                let wait = reconnect_delay(failures);
                tracing::error!(error = %e, retry_in = ?wait, "mailbox trouble; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => {}
                }
            }
        }
    }
}

/// A connection the server ends while idle is said at most this often.
const DROPS_SAID_EVERY: Duration = Duration::from_secs(600);

/// A mailbox loop's memory across connections.
#[derive(Default)]
struct Life {
    /// Failed connection attempts in a row.
    failures: u32,
    /// When a routine disconnect was last said.
    last_drop_said: Option<Instant>,
    /// "No IDLE, polling" was said.
    told_no_idle: bool,
    /// "The pinned certificate expired" was said.
    told_expired_pin: bool,
    waiting: Waiting,
    /// The approve folder's deferred mails.
    approve_deferrals: Deferrals,
}

/// Why a healthy connection ended.
enum Ended {
    Shutdown,
    /// The OAuth2 token nears its expiry: sign in anew before the server drops the session
    /// (Exchange ends it with "BYE AccessTokenExpired").
    TokenDue,
    /// The server ended the connection while we were idle.
    Dropped(ImapError),
}

/// Signs in and selects the watched folder, saying once what the server lacks; `None`
/// when a stop came first.
async fn sign_in(
    mb: &MailboxConfig,
    bridges: &watch::Receiver<Arc<Bridge>>,
    stop: &CancellationToken,
    ready: &watch::Sender<bool>,
    life: &mut Life,
) -> Result<Option<MailSession>, ImapError> {
    let dry_run = bridges.borrow().dry_run();
    // A token exchange is not raced against a stop: an IdP that rotates refresh tokens
    // has spent the old one once it answers, and the new one must reach its file. It is
    // bounded by the token endpoint's timeout; `open` then finds the token cached.
    if mb.oauth2.is_some() {
        TokenCache::global()
            .token(mb, false)
            .await
            .map_err(|e| oauth2::imap_error(e, mb))?;
    }
    // Nothing else is in hand while connecting: a stop need not wait for a slow login.
    let session = tokio::select! {
        opened = open(mb, dry_run, imap::DAEMON_GREETING) => opened?,
        _ = stop.cancelled() => return Ok(None),
    };
    life.failures = 0;
    bridges.borrow().health().connected(&mb.name);
    let _ = ready.send(true);
    tracing::info!(folder = %mb.folder, idle = mb.idle && session.has_idle(), "watching");
    if !life.told_expired_pin
        && let Some(warning) = session.expired_pin_warning()
    {
        life.told_expired_pin = true;
        tracing::warn!("{warning}");
    }
    if mb.idle && !session.has_idle() && !life.told_no_idle {
        life.told_no_idle = true;
        tracing::info!(
            poll_interval = %humantime::format_duration(mb.poll_interval),
            "the server does not offer IDLE; polling instead"
        );
    }
    Ok(Some(session))
}

/// Connected life of a mailbox; returns Ok on shutdown or a due token.
async fn serve(
    mb: &MailboxConfig,
    bridges: &watch::Receiver<Arc<Bridge>>,
    stop: &CancellationToken,
    deferrals: &mut Deferrals,
    ready: &watch::Sender<bool>,
    life: &mut Life,
) -> Result<Ended, ImapError> {
    let Some(mut session) = sign_in(mb, bridges, stop, ready, life).await? else {
        return Ok(Ended::Shutdown);
    };
    let approve = approve_mailbox(mb);
    let approve_every = mb.poll_interval.min(APPROVE_POLL);
    let mut approve_due = Instant::now();
    // The watched folder's next pass: at once, then after each wait it ends.
    let mut pass_due = Instant::now();
    loop {
        let bridge = Arc::clone(&bridges.borrow());
        // Before the watched folder's pass, so that mail arriving meanwhile is in it.
        if let Some(approve) = &approve
            && approve_due <= Instant::now()
        {
            let d = &mut life.approve_deferrals;
            approve_pass(&mut session, mb, approve, &bridge, d, stop).await?;
            approve_due = Instant::now() + approve_every;
        }
        if pass_due <= Instant::now() || session.take_new_mail() {
            session.take_new_mail();
            let report = pass::run_pass(&mut session, mb, &bridge, deferrals, stop).await?;
            life.waiting.update(&mb.name, deferrals);
            crate::ops::metrics::pass_succeeded(&mb.name);
            bridge
                .health()
                .posted(report.counts.get("posted").copied().unwrap_or(0));
            if !report.counts.is_empty() {
                tracing::debug!(counts = ?report.counts, "pass done");
            }
            if stop.is_cancelled() {
                session.logout().await;
                return Ok(Ended::Shutdown);
            }
            // Mail that arrived during the pass was announced in an answer: another pass now.
            if session.take_new_mail() {
                continue;
            }
            pass_due = Instant::now() + mb.poll_interval;
            if let Some(at) = report.retry_at {
                pass_due = pass_due.min(at + Duration::from_millis(10));
            }
        }
        drop(bridge);
        let mut due = pass_due;
        if approve.is_some() {
            due = due.min(approve_due);
        }
        let token_due = mb
            .oauth2
            .as_ref()
            .and(TokenCache::global().refresh_at(&mb.name));
        if let Some(token_due) = token_due {
            if token_due <= Instant::now() {
                session.logout().await;
                return Ok(Ended::TokenDue);
            }
            due = due.min(token_due);
        }
        let wait = due.saturating_duration_since(Instant::now());
        if mb.idle && session.has_idle() {
            let (s, end) = match session.idle(wait.min(IDLE_REISSUE), stop.cancelled()).await {
                Ok(idled) => idled,
                Err(e @ (ImapError::Connection { .. } | ImapError::Timeout { .. })) => {
                    return Ok(Ended::Dropped(e));
                }
                Err(e) => return Err(e),
            };
            session = s;
            match end {
                IdleEnd::Interrupted => {
                    session.logout().await;
                    return Ok(Ended::Shutdown);
                }
                IdleEnd::NewData => pass_due = Instant::now(),
                IdleEnd::Timeout => {}
            }
        } else {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => {
                    session.logout().await;
                    return Ok(Ended::Shutdown);
                }
            }
        }
    }
}

/// Exponential backoff with full jitter, capped at five minutes.
fn reconnect_delay(failures: u32) -> Duration {
    let exp = RECONNECT_BASE
        .saturating_mul(1u32 << failures.min(16))
        .min(RECONNECT_CAP);
    let jittered = rand::rng().random_range(exp.as_millis() as u64 / 2..=exp.as_millis() as u64);
    Duration::from_millis(jittered)
}
