//! The supervisor: every mailbox at once, signals, reload, systemd and health.
//!
//! Shutdown is a `watch` value passed down and checked only at safe points (between
//! batches, while waiting), so the mail in hand is always finished.

use crate::config::{Config, MailboxConfig};
use crate::daemon::bridge::{Bridge, Runtime};
use crate::daemon::worker;
use crate::ledger::Ledger;
use crate::ops::health::Health;
use crate::ops::notify;
use secrecy::ExposeSecret;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    crate::imap::tls::install_crypto_provider();
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// `once`: one pass over every mailbox. Ok(false) when a mailbox or the API was unreachable.
pub fn once(config: Config, dry_run: bool) -> anyhow::Result<bool> {
    runtime()?.block_on(async move {
        let config = Arc::new(config);
        let (ledger, _lock) = open_ledger(&config)?;
        let runtime = Runtime::new(ledger, Arc::default());
        let bridge = Arc::new(Bridge::new(Arc::clone(&config), dry_run, Arc::clone(&runtime))?);
        let passes = config.mailboxes.iter().map(|mb| {
            let bridge = Arc::clone(&bridge);
            async move { (mb, worker::once(mb, &bridge).await) }
        });
        let mut all_ok = true;
        let mut api_failures = 0;
        for (mb, result) in futures::future::join_all(passes).await {
            match result {
                Ok(report) => {
                    tracing::info!(mailbox = %mb.name, counts = ?report.counts, "pass done");
                    api_failures += report.api_failures;
                }
                Err(e) => {
                    tracing::error!(mailbox = %mb.name, error = %e, "mailbox could not be processed");
                    all_ok = false;
                }
            }
        }
        if api_failures > 0 && !runtime.api().any_post_succeeded() {
            tracing::error!(mails = api_failures, "the Thulium API could not be reached or accepted no post in this pass; the replies were left for a retry");
            all_ok = false;
        }
        Ok(all_ok)
    })
}

/// Opens the ledger and says how many mails had an unknown outcome at the last stop.
/// They are not read back now: each is read back when its mail is next seen (the mail
/// is needed to compare and to dispose; one whose mail is gone needs nothing).
fn open_ledger(config: &Config) -> anyhow::Result<(Ledger, std::fs::File)> {
    let ledger = Ledger::open(&config.state.dir)?;
    let lock = crate::ledger::lock_instance(&config.state.dir)?;
    match ledger.stats() {
        Ok(s) if s.pending > 0 => tracing::info!(
            pending = s.pending,
            "mails whose post was begun but not finished before the last stop are read back from their tickets before any is posted again"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("{e}"),
    }
    Ok((ledger, lock))
}

/// A running mailbox loop and what it was started with.
struct Running {
    fingerprint: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Everything that makes a mailbox's loop different; secrets included, so a new password restarts it.
fn fingerprint(mb: &MailboxConfig) -> String {
    let password = mb
        .password
        .as_ref()
        .map(|p| p.expose_secret().to_string())
        .unwrap_or_default();
    format!("{mb:?}{password}")
}

/// `run`: the daemon, until SIGTERM/SIGINT; SIGHUP re-reads `path`.
pub fn run(config: Config, path: PathBuf, dry_run: bool) -> anyhow::Result<bool> {
    runtime()?.block_on(async move {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let health = Arc::new(Health::default());
        crate::ops::metrics::install();
        let _http = match config.metrics.listen {
            Some(addr) => Some(crate::ops::http::serve(addr, Arc::clone(&health)).await.map_err(|e| {
                anyhow::anyhow!("metrics.listen: cannot listen on {addr}: {e}")
            })?),
            None => None,
        };
        let (ledger, _lock) = open_ledger(&config)?;
        let runtime = Runtime::new(ledger, Arc::clone(&health));
        let state_dir = config.state.dir.clone();
        let config = Arc::new(config);
        let (bridge_tx, bridge_rx) = watch::channel(Arc::new(Bridge::new(
            Arc::clone(&config),
            dry_run,
            Arc::clone(&runtime),
        )?));
        let mut running: BTreeMap<String, Running> = BTreeMap::new();
        let ready = apply(&config, &mut running, &bridge_rx, &health).await;
        tracing::info!(mailboxes = config.mailboxes.len(), dry_run, "running");
        tokio::spawn(async move {
            for mut r in ready {
                let _ = r.wait_for(|ready| *ready).await;
            }
            notify::ready();
        });

        let watchdog = notify::watchdog_interval();
        let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        let mut status_tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    notify::reloading();
                    match reload(&path, &state_dir) {
                        Ok(new) => {
                            let new = Arc::new(new);
                            match Bridge::new(Arc::clone(&new), dry_run, Arc::clone(&runtime)) {
                                Ok(bridge) => {
                                    let _ = bridge_tx.send(Arc::new(bridge));
                                    apply(&new, &mut running, &bridge_rx, &health).await;
                                    tracing::info!(path = %path.display(), mailboxes = new.mailboxes.len(), "config reloaded");
                                }
                                Err(e) => tracing::error!("config reload failed, keeping the old config: {e:#}"),
                            }
                        }
                        Err(e) => tracing::error!("config reload failed, keeping the old config: {e}"),
                    }
                    notify::ready();
                }
                _ = watchdog_tick.tick(), if watchdog.is_some() => {
                    // Alive means: this loop turns and no mailbox loop has died.
                    if running.values().all(|r| !r.task.is_finished()) {
                        notify::watchdog();
                    }
                }
                _ = status_tick.tick() => notify::status(&health.status_line()),
            }
        }
        notify::stopping();
        tracing::info!("stopping: finishing the mail in hand");
        for r in running.values() {
            let _ = r.stop.send(true);
        }
        for (_, r) in running {
            let _ = r.task.await;
        }
        Ok(true)
    })
}

/// Loads the new config; a changed `state.dir` needs a restart and is refused here.
fn reload(path: &Path, state_dir: &Path) -> Result<Config, String> {
    let new = Config::load(path).map_err(|e| e.to_string())?;
    if new.state.dir != state_dir {
        return Err(format!(
            "{}: state.dir: changing it needs a restart (systemctl restart thulium-mail-bridge)",
            path.display()
        ));
    }
    for w in &new.warnings {
        tracing::warn!("{w}");
    }
    Ok(new)
}

/// Starts, restarts and stops mailbox loops so they match `config`; unchanged ones keep
/// running. Returns the readiness of the loops it started.
async fn apply(
    config: &Config,
    running: &mut BTreeMap<String, Running>,
    bridges: &watch::Receiver<Arc<Bridge>>,
    health: &Arc<Health>,
) -> Vec<watch::Receiver<bool>> {
    let wanted: BTreeMap<&str, &MailboxConfig> = config
        .mailboxes
        .iter()
        .map(|m| (m.name.as_str(), m))
        .collect();
    let gone: Vec<String> = running
        .iter()
        .filter(|(name, r)| {
            wanted
                .get(name.as_str())
                .is_none_or(|mb| fingerprint(mb) != r.fingerprint)
        })
        .map(|(name, _)| name.clone())
        .collect();
    for name in gone {
        if let Some(r) = running.remove(&name) {
            tracing::info!(mailbox = %name, "stopping mailbox (removed or changed)");
            let _ = r.stop.send(true);
            // It finishes its mail in hand before a changed one starts anew below.
            let _ = r.task.await;
            health.forget(&name);
        }
    }
    let mut ready = Vec::new();
    for (name, mb) in wanted {
        if running.contains_key(name) {
            continue;
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = watch::channel(false);
        let task = tokio::spawn(worker::run(mb.clone(), bridges.clone(), stop_rx, ready_tx));
        running.insert(
            name.to_string(),
            Running {
                fingerprint: fingerprint(mb),
                stop: stop_tx,
                task,
            },
        );
        ready.push(ready_rx);
    }
    ready
}
