//! One mailbox, for as long as the daemon runs: connect, pass, wait (IDLE or poll), repeat;
//! reconnect with capped, jittered backoff after any trouble.

use crate::bridge::Bridge;
use crate::config::MailboxConfig;
use crate::imap::{self, IdleEnd, ImapError, Login, MailSession};
use crate::pass::{self, Deferrals, PassReport};
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Servers end IDLE after ~30 minutes; re-issue it well before.
const IDLE_REISSUE: Duration = Duration::from_secs(25 * 60);
const RECONNECT_BASE: Duration = Duration::from_secs(1);
const RECONNECT_CAP: Duration = Duration::from_secs(300);

/// How a mailbox signs in, from its config.
pub fn login_for(mb: &MailboxConfig) -> Result<Login, ImapError> {
    match &mb.password {
        Some(p) => Ok(Login::Password(p.clone())),
        None => Err(ImapError::Auth {
            addr: format!("{}:{}", mb.host, mb.port()),
            user: mb.username.clone(),
            reason: "OAuth2 sign-in is not available in this build".into(),
        }),
    }
}

/// Connects, selects the folder and (unless dry-run) creates the target folders.
pub async fn open(mb: &MailboxConfig, dry_run: bool) -> Result<MailSession, ImapError> {
    let mut session = imap::connect(mb, &login_for(mb)?).await?;
    session.select(&mb.folder).await?;
    if !dry_run {
        let targets: Vec<&str> = [&mb.on_posted, &mb.on_unmatched, &mb.on_ignored, &mb.on_failed]
            .iter()
            .filter_map(|d| d.target_folder())
            .collect();
        let created = session.ensure_folders(&targets).await?;
        for folder in created {
            tracing::info!(mailbox = %mb.name, %folder, "created folder");
        }
        session.select(&mb.folder).await?;
    }
    Ok(session)
}

/// One pass for `once`: open, pass, log out.
pub async fn once(mb: &MailboxConfig, bridge: &Arc<Bridge>) -> Result<PassReport, ImapError> {
    let mut session = open(mb, bridge.dry_run).await?;
    let (_keep, stop) = watch::channel(false);
    let report = pass::run_pass(&mut session, mb, bridge, &mut Deferrals::new(), &stop).await?;
    session.logout().await;
    Ok(report)
}

/// The daemon's loop for one mailbox, until `stop` turns true.
pub async fn run(mb: MailboxConfig, bridge: Arc<Bridge>, mut stop: watch::Receiver<bool>, ready: watch::Sender<bool>) {
    let mut failures: u32 = 0;
    let mut deferrals = Deferrals::new();
    while !*stop.borrow() {
        match serve(&mb, &bridge, &mut stop, &mut deferrals, &ready, &mut failures).await {
            Ok(()) => return,
            Err(e) => {
                let _ = ready.send(true);
                failures += 1;
                let wait = reconnect_delay(failures);
                tracing::error!(mailbox = %mb.name, error = %e, retry_in = ?wait, "mailbox trouble; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}

/// Connected life of a mailbox; returns Ok only on shutdown.
async fn serve(
    mb: &MailboxConfig,
    bridge: &Arc<Bridge>,
    stop: &mut watch::Receiver<bool>,
    deferrals: &mut Deferrals,
    ready: &watch::Sender<bool>,
    failures: &mut u32,
) -> Result<(), ImapError> {
    let mut session = open(mb, bridge.dry_run).await?;
    *failures = 0;
    let _ = ready.send(true);
    tracing::info!(mailbox = %mb.name, folder = %mb.folder, idle = mb.idle && session.has_idle(), "watching");
    loop {
        let report = pass::run_pass(&mut session, mb, bridge, deferrals, stop).await?;
        if !report.counts.is_empty() {
            tracing::debug!(mailbox = %mb.name, counts = ?report.counts, "pass done");
        }
        if *stop.borrow() {
            session.logout().await;
            return Ok(());
        }
        let mut wait = mb.poll_interval;
        if let Some(at) = report.retry_at {
            wait = wait.min(at.saturating_duration_since(Instant::now()) + Duration::from_millis(10));
        }
        if mb.idle && session.has_idle() {
            let mut stop_idle = stop.clone();
            let (s, end) = session
                .idle(wait.min(IDLE_REISSUE), async move {
                    let _ = stop_idle.changed().await;
                })
                .await?;
            session = s;
            if end == IdleEnd::Interrupted {
                session.logout().await;
                return Ok(());
            }
        } else {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {
                    session.logout().await;
                    return Ok(());
                }
            }
        }
    }
}

/// Exponential backoff with full jitter, capped at five minutes.
fn reconnect_delay(failures: u32) -> Duration {
    let exp = RECONNECT_BASE.saturating_mul(1u32 << failures.min(16)).min(RECONNECT_CAP);
    let jittered = rand::rng().random_range(exp.as_millis() as u64 / 2..=exp.as_millis() as u64);
    Duration::from_millis(jittered)
}
