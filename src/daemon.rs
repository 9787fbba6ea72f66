//! The supervisor: every mailbox at once, signals, reload.
//!
//! Shutdown is a `watch` value passed down and checked only at safe points (between
//! batches, while waiting), so the mail in hand is always finished.

use crate::bridge::Bridge;
use crate::config::Config;
use crate::worker;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    crate::imap::tls::install_crypto_provider();
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// `once`: one pass over every mailbox. Ok(false) when a mailbox or the API was unreachable.
pub fn once(config: Config, dry_run: bool) -> anyhow::Result<bool> {
    runtime()?.block_on(async move {
        let config = Arc::new(config);
        let bridge = Arc::new(Bridge::new(Arc::clone(&config), dry_run)?);
        let passes = config.mailboxes.iter().map(|mb| {
            let bridge = Arc::clone(&bridge);
            async move { (mb, worker::once(mb, &bridge).await) }
        });
        let mut all_ok = true;
        for (mb, result) in futures::future::join_all(passes).await {
            match result {
                Ok(report) => {
                    tracing::info!(mailbox = %mb.name, counts = ?report.counts, "pass done");
                    if report.api_down {
                        tracing::error!(mailbox = %mb.name, "the Thulium API could not be reached; mails were left for a retry");
                        all_ok = false;
                    }
                }
                Err(e) => {
                    tracing::error!(mailbox = %mb.name, error = %e, "mailbox could not be processed");
                    all_ok = false;
                }
            }
        }
        Ok(all_ok)
    })
}

/// `run`: the daemon, until SIGTERM/SIGINT; SIGHUP re-reads `path`.
pub fn run(config: Config, path: PathBuf, dry_run: bool) -> anyhow::Result<bool> {
    runtime()?.block_on(async move {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut config = Arc::new(config);
        loop {
            let (stop_tx, stop_rx) = watch::channel(false);
            let bridge = Arc::new(Bridge::new(Arc::clone(&config), dry_run)?);
            let mut workers = tokio::task::JoinSet::new();
            for mb in config.mailboxes.iter().cloned() {
                let (ready_tx, _ready_rx) = watch::channel(false);
                workers.spawn(worker::run(mb, Arc::clone(&bridge), stop_rx.clone(), ready_tx));
            }
            tracing::info!(mailboxes = config.mailboxes.len(), dry_run, "running");
            let reload = tokio::select! {
                _ = term.recv() => false,
                _ = int.recv() => false,
                _ = hup.recv() => true,
            };
            let next = if reload {
                match Config::load(&path) {
                    Ok(new) => {
                        tracing::info!(path = %path.display(), "config reloaded");
                        Some(Arc::new(new))
                    }
                    Err(e) => {
                        tracing::error!("config reload failed, keeping the old config: {e}");
                        continue_without_restart(&mut term, &mut int, &mut hup, &path, &mut workers, &stop_tx).await
                    }
                }
            } else {
                None
            };
            tracing::info!("stopping: finishing the mail in hand");
            let _ = stop_tx.send(true);
            while workers.join_next().await.is_some() {}
            drop(bridge);
            match next {
                Some(new) => config = new,
                None => return Ok(true),
            }
        }
    })
}

/// After a failed reload the workers go on; wait for the next signal.
async fn continue_without_restart(
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
    hup: &mut tokio::signal::unix::Signal,
    path: &std::path::Path,
    _workers: &mut tokio::task::JoinSet<()>,
    _stop: &watch::Sender<bool>,
) -> Option<Arc<Config>> {
    loop {
        tokio::select! {
            _ = term.recv() => return None,
            _ = int.recv() => return None,
            _ = hup.recv() => match Config::load(path) {
                Ok(new) => {
                    tracing::info!(path = %path.display(), "config reloaded");
                    return Some(Arc::new(new));
                }
                Err(e) => tracing::error!("config reload failed, keeping the old config: {e}"),
            },
        }
    }
}
