//! The supervisor: every mailbox at once, signals, reload, systemd and health.
//!
//! Shutdown is a `CancellationToken` passed down and checked only at safe points
//! (between batches, while waiting), so the mail in hand is finished, within
//! `delivery.stop_timeout`.

use crate::config::{Config, ConfigError, MailboxConfig};
use crate::daemon::bridge::{Bridge, Runtime};
use crate::daemon::leadership::Leadership;
use crate::daemon::{poison, retention, worker};
use crate::ledger::Ledger;
use crate::ops::health::Health;
use crate::ops::notify;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Threads for blocking work at most.
const MAX_BLOCKING_THREADS: usize = 32;

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    crate::imap::tls::install_crypto_provider();
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Reading mails (`decide`) and ledger reads run here; a mail that hangs holds
        // one until its budget ends, so the pool is bounded (TasksMax= in the unit).
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()?)
}

/// `once`: one pass over every mailbox. Ok(false) when a mailbox or the API was unreachable.
pub(crate) fn once(config: Config, dry_run: bool) -> anyhow::Result<bool> {
    runtime()?.block_on(async move {
        let config = Arc::new(config);
        let (ledger, _lock) = open_ledger(&config).await?;
        if !dry_run {
            retention::sweep(&ledger, config.state.keep_decisions).await;
        }
        let leases = Leases::start(&ledger, &config, &Arc::default(), true)?;
        let led = led_all(&leases, &config).await;
        let leadership = leases.as_ref().map(|l| Arc::clone(&l.leadership));
        let runtime = Runtime::new(ledger, Arc::default(), config.timezone(), leadership).await;
        let bridge = Arc::new(Bridge::new(Arc::clone(&config), dry_run, Arc::clone(&runtime))?);
        let mut all_ok = led.len() == config.mailboxes.len();
        let passes = config.mailboxes.iter().filter(|mb| led.contains(&mb.name)).map(|mb| {
            let bridge = Arc::clone(&bridge);
            let span = tracing::info_span!("mailbox", mailbox = %mb.name);
            async move { (mb, worker::once(mb, &bridge).await) }.instrument(span)
        });
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
        if api_failures > 0 && !runtime.api_health().any_post_succeeded() {
            tracing::error!(mails = api_failures, "the Thulium API could not be reached or accepted no post in this pass; the replies were left for a retry");
            all_ok = false;
        }
        stop_leases(leases).await;
        Ok(all_ok)
    })
}

/// The lease keeper of a shared ledger, while it runs.
struct Leases {
    leadership: Arc<Leadership>,
    /// The configured mailboxes, for the keeper (changed on reload).
    mailboxes: watch::Sender<Vec<String>>,
    stop: CancellationToken,
    thread: std::thread::JoinHandle<()>,
}

impl Leases {
    /// Starts the keeper when the ledger is shared; `None` on one host's own ledger.
    fn start(
        ledger: &Ledger,
        config: &Config,
        health: &Arc<Health>,
        greedy: bool,
    ) -> anyhow::Result<Option<Leases>> {
        let Some(shared) = ledger.shared() else {
            return Ok(None);
        };
        let leadership = Leadership::new(
            config.state.instance_name(),
            config.state.lease,
            shared.fences.clone(),
            greedy,
        );
        let (mailboxes, watched) = watch::channel(mailbox_names(config));
        let stop = CancellationToken::new();
        let thread = leadership
            .keep(
                shared.target.clone(),
                watched,
                Arc::clone(health),
                stop.clone(),
            )
            .map_err(|e| anyhow::anyhow!("cannot start the lease keeper: {e}"))?;
        tracing::info!(instance = %leadership.instance(), lease = ?config.state.lease, "shared ledger: mailboxes are led by one instance at a time");
        Ok(Some(Leases {
            leadership,
            mailboxes,
            stop,
            thread,
        }))
    }

    /// Hands every lease back (a successor takes over at once) and waits for that.
    fn stop(self) {
        self.stop.cancel();
        let _ = self.thread.join();
    }
}

/// `once` on a shared ledger: the mailboxes it could lead within two leases (each one
/// led elsewhere is left to its leader); every configured one on its own ledger.
async fn led_all(leases: &Option<Leases>, config: &Config) -> BTreeSet<String> {
    let all: BTreeSet<String> = mailbox_names(config).into_iter().collect();
    let Some(leases) = leases else {
        return all;
    };
    let mut wanted = leases.leadership.wanted();
    let _ = tokio::time::timeout(config.state.lease * 2, wanted.wait_for(|w| *w == all)).await;
    let led = wanted.borrow().clone();
    for name in all.difference(&led) {
        tracing::warn!(mailbox = %name, "led by another instance: not processed by this pass");
    }
    led
}

/// Stops the keeper, if any, off the runtime's threads (it waits for the database).
async fn stop_leases(leases: Option<Leases>) {
    if let Some(leases) = leases {
        let _ = tokio::task::spawn_blocking(move || leases.stop()).await;
    }
}

fn mailbox_names(config: &Config) -> Vec<String> {
    config.mailboxes.iter().map(|m| m.name.clone()).collect()
}

/// Opens the ledger and says how many mails had an unknown outcome at the last stop.
/// They are not read back now: each is read back when its mail is next seen (the mail
/// is needed to compare and to dispose; one whose mail is gone needs nothing).
/// The instance lock comes first: a second daemon must not open, let alone migrate,
/// the ledger the first one works on.
async fn open_ledger(config: &Config) -> anyhow::Result<(Ledger, std::fs::File)> {
    let lock = crate::ledger::lock_instance(&config.state.dir)?;
    let ledger = Ledger::open_configured(&config.state)?;
    crate::ops::metrics::ledger_up(true);
    let mailboxes = mailbox_names(config);
    poison::strike_left_markers(
        &config.state.dir,
        &ledger,
        &mailboxes,
        &config.state.host_name(),
    )
    .await;
    match ledger.stats().await {
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
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The mailbox loops of the daemon, kept matching the config.
struct Supervisor {
    running: BTreeMap<String, Running>,
    /// Cancelled at shutdown; each loop holds a child, cancelled alone when its mailbox
    /// is removed or changed.
    shutdown: CancellationToken,
    bridges: watch::Receiver<Arc<Bridge>>,
    health: Arc<Health>,
    /// On a shared ledger: runs only the loops of the mailboxes this instance leads.
    leadership: Option<Arc<Leadership>>,
}

impl Supervisor {
    /// Starts, restarts and stops mailbox loops so they match `config`; unchanged ones
    /// keep running. Returns the readiness of the loops it started.
    async fn apply(&mut self, config: &Config) -> Vec<watch::Receiver<bool>> {
        let wanted: BTreeMap<&str, &MailboxConfig> = config
            .mailboxes
            .iter()
            .filter(|m| self.leadership.as_ref().is_none_or(|l| l.serves(&m.name)))
            .map(|m| (m.name.as_str(), m))
            .collect();
        let gone: Vec<String> = self
            .running
            .iter()
            .filter(|(name, r)| {
                wanted
                    .get(name.as_str())
                    .is_none_or(|mb| mb.fingerprint() != r.fingerprint)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some(r) = self.running.remove(&name) {
                let configured = config
                    .mailboxes
                    .iter()
                    .any(|m| m.name == name && m.fingerprint() == r.fingerprint);
                if configured {
                    tracing::info!(mailbox = %name, "stopping mailbox (no longer led by this instance)");
                } else {
                    tracing::info!(mailbox = %name, "stopping mailbox (removed or changed)");
                }
                r.stop.cancel();
                // It finishes its mail in hand before a changed one starts anew below.
                let _ = r.task.await;
                self.health.forget(&name);
                if let Some(l) = &self.leadership {
                    l.stopped(&name);
                }
            }
        }
        // One handed back before its loop ever started has no loop to wait for.
        if let Some(l) = &self.leadership {
            config
                .mailboxes
                .iter()
                .filter(|m| {
                    !wanted.contains_key(m.name.as_str()) && !self.running.contains_key(&m.name)
                })
                .for_each(|m| l.stopped(&m.name));
        }
        let mut ready = Vec::new();
        for (name, mb) in wanted {
            if self.running.contains_key(name) {
                continue;
            }
            let stop = self.shutdown.child_token();
            self.health.expect(name);
            let (ready_tx, ready_rx) = watch::channel(false);
            let span = tracing::info_span!("mailbox", mailbox = %name);
            let worker = worker::run(mb.clone(), self.bridges.clone(), stop.clone(), ready_tx);
            let task = tokio::spawn(worker.instrument(span));
            self.running.insert(
                name.to_string(),
                Running {
                    fingerprint: mb.fingerprint(),
                    stop,
                    task,
                },
            );
            ready.push(ready_rx);
        }
        ready
    }

    /// Alive, for the watchdog: no mailbox loop has ended (they end only at shutdown;
    /// one that did anyway, by a bug, must get the service restarted).
    fn all_alive(&self) -> bool {
        self.running.values().all(|r| !r.task.is_finished())
    }

    /// Cancels every loop and waits until each has finished its mail in hand, for
    /// `limit` at most; a loop still busy then is abandoned (its posts begun stay
    /// pending in the ledger and are read back at the next start).
    async fn stop(self, limit: Duration) {
        self.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + limit;
        let mut abandoned = Vec::new();
        for (name, mut r) in self.running {
            if tokio::time::timeout_at(deadline, &mut r.task)
                .await
                .is_err()
            {
                r.task.abort();
                abandoned.push(name);
            }
        }
        if !abandoned.is_empty() {
            tracing::warn!(
                mailboxes = %abandoned.join(", "),
                "stop: still busy after {} (delivery.stop_timeout); abandoned, nothing lost: posts begun stay pending and are read back from their tickets at the next start",
                humantime::format_duration(limit)
            );
        }
    }
}

/// What the daemon is asked from outside: by signals under systemd, directly in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    Stop,
    Reload,
}

/// SIGTERM and SIGINT ask to stop, SIGHUP to reload.
fn signals() -> std::io::Result<tokio::sync::mpsc::Receiver<Request>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let request = tokio::select! {
                _ = term.recv() => Request::Stop,
                _ = int.recv() => Request::Stop,
                _ = hup.recv() => Request::Reload,
            };
            if tx.send(request).await.is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// `run`: the daemon, until SIGTERM/SIGINT; SIGHUP re-reads `path`.
pub(crate) fn run(config: Config, path: PathBuf, dry_run: bool) -> anyhow::Result<bool> {
    runtime()?.block_on(async move { serve(config, path, dry_run, signals()?).await })
}

/// The daemon until `requests` asks it to stop (or is closed).
pub(crate) async fn serve(
    config: Config,
    path: PathBuf,
    dry_run: bool,
    mut requests: tokio::sync::mpsc::Receiver<Request>,
) -> anyhow::Result<bool> {
    let health = Arc::new(Health::default());
    crate::ops::metrics::install();
    crate::ops::metrics::api_up(true);
    let _http = listen(&config, &health).await?;
    let (ledger, _lock) = open_ledger(&config).await?;
    let leases = Leases::start(&ledger, &config, &health, false)?;
    let leadership = leases.as_ref().map(|l| Arc::clone(&l.leadership));
    let runtime = Runtime::new(
        ledger,
        Arc::clone(&health),
        config.timezone(),
        leadership.clone(),
    )
    .await;
    let state_dir = config.state.dir.clone();
    let config = Arc::new(config);
    let (bridge_tx, bridge_rx) = watch::channel(Arc::new(Bridge::new(
        Arc::clone(&config),
        dry_run,
        Arc::clone(&runtime),
    )?));
    let mut supervisor = Supervisor {
        running: BTreeMap::new(),
        shutdown: CancellationToken::new(),
        bridges: bridge_rx,
        health: Arc::clone(&health),
        leadership: leadership.clone(),
    };
    let mut current = Arc::clone(&config);
    let ready = supervisor.apply(&config).await;
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
    // Its first tick is at once: a sweep at start.
    let mut sweep_tick = tokio::time::interval(retention::SWEEP_EVERY);
    // Leases taken, handed back or run out (the keeper may be waiting on the database):
    // looked at every second.
    let mut lease_tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            request = requests.recv() => {
                if request != Some(Request::Reload) {
                    break;
                }
                notify::reloading();
                match reload(&path, &state_dir).and_then(|new| {
                    let new = Arc::new(new);
                    let bridge = Bridge::new(Arc::clone(&new), dry_run, Arc::clone(&runtime))
                        .map_err(|e| ReloadError::Bridge(format!("{e:#}")))?;
                    Ok((new, bridge))
                }) {
                    Ok((new, bridge)) => {
                        let _ = bridge_tx.send(Arc::new(bridge));
                        supervisor.apply(&new).await;
                        if let Some(l) = &leases {
                            let _ = l.mailboxes.send(mailbox_names(&new));
                        }
                        current = new;
                        tracing::info!(path = %path.display(), mailboxes = current.mailboxes.len(), "config reloaded");
                    }
                    Err(e) => tracing::error!("config reload failed, keeping the old config: {e}"),
                }
                notify::ready();
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => {
                // Alive means: this loop turns and no mailbox loop has died.
                if supervisor.all_alive() {
                    notify::watchdog();
                }
            }
            _ = status_tick.tick() => notify::status(&health.status_line()),
            _ = lease_tick.tick(), if leadership.is_some() => {
                supervisor.apply(&current).await;
            }
            _ = sweep_tick.tick(), if !dry_run => {
                let keep = supervisor.bridges.borrow().keep_decisions();
                let ledger = runtime.ledger().clone();
                tokio::spawn(async move { retention::sweep(&ledger, keep).await });
            }
        }
    }
    notify::stopping();
    tracing::info!("stopping: finishing the mail in hand");
    let limit = bridge_tx.borrow().stop_timeout();
    supervisor.stop(limit).await;
    stop_leases(leases).await;
    Ok(true)
}

/// The `[metrics]` listener (metrics, /healthz), if configured.
async fn listen(config: &Config, health: &Arc<Health>) -> anyhow::Result<Option<JoinHandle<()>>> {
    let Some(addr) = config.metrics.listen else {
        return Ok(None);
    };
    let server = crate::ops::http::serve(addr, Arc::clone(health))
        .await
        .map_err(|e| anyhow::anyhow!("metrics.listen: cannot listen on {addr}: {e}"))?;
    Ok(Some(server))
}

/// Why a new config was not taken on SIGHUP.
#[derive(Debug, thiserror::Error)]
enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "{path}: state.dir: changing it needs a restart (systemctl restart thulium-mail-bridge)"
    )]
    StateDirChanged { path: String },
    #[error("{0}")]
    Bridge(String),
}

/// Loads the new config; a changed `state.dir` needs a restart and is refused here.
fn reload(path: &Path, state_dir: &Path) -> Result<Config, ReloadError> {
    let new = Config::load(path)?;
    if new.state.dir != state_dir {
        return Err(ReloadError::StateDirChanged {
            path: path.display().to_string(),
        });
    }
    for w in &new.warnings {
        tracing::warn!("{w}");
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn supervisor() -> Supervisor {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config::parse(
            &format!(
                "[thulium]\nurl = \"http://127.0.0.1:1/api\"\nuser = \"u\"\npassword = \"p\"\n[state]\ndir = {:?}\n",
                dir.path()
            ),
            "test.toml",
        )
        .expect("config");
        let ledger = Ledger::open(dir.path()).expect("ledger");
        let runtime = Runtime::new(ledger, Arc::default(), config.timezone(), None).await;
        let bridge = Bridge::new(Arc::new(config), true, runtime).expect("bridge");
        Supervisor {
            running: BTreeMap::new(),
            shutdown: CancellationToken::new(),
            bridges: watch::channel(Arc::new(bridge)).1,
            health: Arc::default(),
            leadership: None,
        }
    }

    fn running(task: JoinHandle<()>) -> Running {
        Running {
            fingerprint: String::new(),
            stop: CancellationToken::new(),
            task,
        }
    }

    #[tokio::test]
    async fn the_watchdog_stops_when_a_mailbox_loop_dies() {
        let mut s = supervisor().await;
        let healthy = CancellationToken::new();
        let waits = healthy.clone();
        s.running.insert(
            "a".into(),
            running(tokio::spawn(async move { waits.cancelled().await })),
        );
        let (die, dies) = tokio::sync::oneshot::channel::<()>();
        s.running.insert(
            "b".into(),
            running(tokio::spawn(async move {
                let _ = dies.await;
                panic!("a bug in a mailbox loop");
            })),
        );
        assert!(s.all_alive());
        let _ = die.send(());
        let mut died = false;
        for _ in 0..200 {
            if !s.all_alive() {
                died = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(died, "a dead loop stops the watchdog");
        healthy.cancel();
    }

    #[tokio::test]
    async fn stopping_cancels_every_loop_and_waits_for_it() {
        let mut s = supervisor().await;
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = s.shutdown.child_token();
        let done = Arc::clone(&finished);
        let task = tokio::spawn(async move {
            stop.cancelled().await;
            // The mail in hand is finished after the cancel.
            tokio::time::sleep(Duration::from_millis(50)).await;
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        s.running.insert("a".into(), running(task));
        s.stop(Duration::from_secs(600)).await;
        assert!(finished.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_stop_abandons_what_is_still_busy_after_its_limit() {
        let mut s = supervisor().await;
        let (_keep, never) = tokio::sync::oneshot::channel::<()>();
        let stuck = tokio::spawn(async move {
            let _ = never.await;
        });
        let watch = stuck.abort_handle();
        s.running.insert("stuck".into(), running(stuck));
        s.stop(Duration::from_millis(50)).await;
        // Aborting is asynchronous: the task ends at its next poll.
        for _ in 0..200 {
            if watch.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(watch.is_finished(), "the busy loop was abandoned");
    }

    #[tokio::test]
    async fn the_daemon_stops_when_asked_without_a_signal() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bridge.toml");
        let config = Config::parse(
            &format!(
                "[thulium]\nurl = \"http://127.0.0.1:1/api\"\nuser = \"u\"\npassword = \"p\"\n\
                 [state]\ndir = {:?}\n[[mailbox]]\nname = \"m\"\nhost = \"127.0.0.1\"\nport = 1\n\
                 tls = \"none\"\nallow_insecure = true\nusername = \"u\"\npassword = \"p\"\n",
                dir.path().join("state")
            ),
            "test.toml",
        )
        .expect("config");
        let (ask, requests) = tokio::sync::mpsc::channel(1);
        let daemon = tokio::spawn(serve(config, path, true, requests));
        tokio::time::sleep(Duration::from_millis(200)).await;
        if daemon.is_finished() {
            panic!("it ended before asked to stop: {:?}", daemon.await);
        }
        ask.send(Request::Stop).await.expect("the daemon listens");
        let stopped = tokio::time::timeout(Duration::from_secs(60), daemon)
            .await
            .expect("stopped when asked")
            .expect("no panic");
        assert!(stopped.expect("no error"));
    }
}
