//! One scenario end to end: a fresh Dovecot and fake API, the mails, the bridge as a
//! measured child, then the checks (every mail posted exactly once, per-ticket date
//! order, every mail disposed, the ledger agreeing) and the fake API's own ceiling.
//! The ledger is SQLite, or a PostgreSQL started for the run ([`crate::ledger`]).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use testbed::{Dovecot, FakeThulium, FakeThuliumConfig};

use crate::big_replies::{self, BigMails};
use crate::child::{self, Usage};
use crate::ledger::{Ledger, LedgerKind, ServerWork};
use crate::new_ticket::UploadMemory;
use crate::servers::PASSWORD;
use crate::{ceiling, config_file, cpu, mails, new_ticket, servers, warm};

const USER: &str = "support";
/// A second mailbox that receives a copy of every IDLE-scenario mail and that nobody
/// touches: what Dovecot announces there, and when, is the server's own share.
const MIRROR: &str = "mirror";
/// The longest a `once` over the biggest scenario may take before it is killed.
const ONCE_LIMIT: Duration = Duration::from_secs(900);

/// What a scenario runs.
#[derive(Clone, Debug)]
pub(crate) struct Params {
    pub name: String,
    /// Replies to post (for IDLE: appended one at a time).
    pub n: usize,
    pub tickets: usize,
    pub latency_ms: u64,
    pub concurrency: usize,
    /// `None`: the mails are there before `once`; `Some(gap)`: `run` waits in IDLE and
    /// one mail arrives every `gap`.
    pub idle_gap: Option<Duration>,
    /// How long the fake API's ceiling is measured.
    pub ceiling_for: Duration,
    /// `Some(bytes)`: one mail without a ticket number, with an attachment this large,
    /// becomes a new ticket ([`crate::new_ticket`]) instead of `n` replies.
    pub attachment: Option<usize>,
    /// `Some(bytes)`: `n` mailboxes hold one reply each with an attachment this large
    /// ([`crate::big_replies`]).
    pub big_replies: Option<usize>,
    /// Where the bridge keeps its ledger.
    pub ledger: LedgerKind,
}

/// What a scenario measured and whether its checks held.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub params: Params,
    pub usage: Usage,
    /// `once`: the child's life; IDLE: first arrival to last post.
    pub wall: Duration,
    pub posted: usize,
    pub seed: Duration,
    /// Arrival-to-post latencies (IDLE only), sorted.
    pub latencies_ms: Vec<f64>,
    /// Arrival to Dovecot's `EXISTS` for the copy in [`MIRROR`] (IDLE only), sorted.
    pub notify_ms: Vec<f64>,
    /// The bridge's IDLE waking up (its log) to the post (IDLE only), sorted.
    pub wake_to_post_ms: Vec<f64>,
    /// CPU used meanwhile by Dovecot's processes and by the fake API.
    pub dovecot_cpu: Option<Duration>,
    pub api_cpu: Duration,
    /// What the PostgreSQL ledger's server did meanwhile (`None` on SQLite).
    pub postgres: Option<ServerWork>,
    /// The 1-minute load average when the scenario started (other work on the machine).
    pub load1: f64,
    pub api_ceiling_rps: f64,
    /// Broken checks; empty when all held.
    pub failures: Vec<String>,
    /// Memory around a new ticket's upload (new-ticket scenarios only).
    pub memory: Option<UploadMemory>,
    /// The sizes of the big replies (scenario `f` only).
    pub big: Option<BigMails>,
}

impl Outcome {
    /// A run measured by the bridge's own usage alone (a memory scenario): no
    /// latencies, no other process's CPU.
    pub(crate) fn bridge_only(
        params: &Params,
        usage: Usage,
        posted: usize,
        seed: Duration,
        failures: Vec<String>,
    ) -> Outcome {
        Outcome {
            params: params.clone(),
            usage,
            wall: usage.wall,
            posted,
            seed,
            latencies_ms: Vec::new(),
            notify_ms: Vec::new(),
            wake_to_post_ms: Vec::new(),
            dovecot_cpu: None,
            api_cpu: Duration::ZERO,
            postgres: None,
            load1: 0.0,
            api_ceiling_rps: 0.0,
            failures,
            memory: None,
            big: None,
        }
    }

    pub(crate) fn mails_per_s(&self) -> f64 {
        self.posted as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub(crate) fn cpu_ms_per_mail(&self) -> f64 {
        self.usage.cpu.as_secs_f64() * 1000.0 / self.posted.max(1) as f64
    }

    /// The q-quantile of the arrival-to-post latencies.
    pub(crate) fn latency(&self, q: f64) -> Option<f64> {
        quantile(&self.latencies_ms, q)
    }

    /// The q-quantile of Dovecot's own announcement latencies.
    pub(crate) fn notify(&self, q: f64) -> Option<f64> {
        quantile(&self.notify_ms, q)
    }

    /// The q-quantile of the bridge's own share: IDLE woke up to posted.
    pub(crate) fn wake_to_post(&self, q: f64) -> Option<f64> {
        quantile(&self.wake_to_post_ms, q)
    }
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

pub(crate) async fn run(params: Params, bridge_bin: &Path, work: &Path) -> Result<Outcome> {
    if params.attachment.is_some() {
        return new_ticket::run(&params, bridge_bin, work).await;
    }
    if params.big_replies.is_some() {
        return big_replies::run(&params, bridge_bin, work).await;
    }
    let dir = work.join(&params.name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let api = FakeThuliumConfig {
        auto_tickets: true,
        latency: Duration::from_millis(params.latency_ms),
        ..FakeThuliumConfig::default()
    };
    let (dovecot, api) = servers::start(vec![USER.into(), MIRROR.into()], api).await?;
    let ledger = Ledger::start(params.ledger).await?;
    let config = write_config(&dir, &dovecot, &api, &ledger, &params)?;
    let log = dir.join("bridge.log");

    let servers = Servers {
        dovecot: &dovecot,
        api: &api,
        ledger: &ledger,
    };
    let mut outcome = match params.idle_gap {
        None => run_once(&params, servers, bridge_bin, &config, &log).await?,
        Some(gap) => run_idle(&params, gap, servers, bridge_bin, &config, &log).await?,
    };
    ledger.print_statements(&params.name);
    let expected = params.n + usize::from(params.idle_gap.is_some());
    check_posts(&params, &api, expected, &mut outcome.failures);
    check_folders(&dovecot, expected, &mut outcome.failures);
    check_ledger(
        bridge_bin,
        &config,
        &ledger,
        &dir,
        expected,
        &mut outcome.failures,
    )
    .await;
    if !outcome.failures.is_empty() {
        eprintln!(
            "== scenario {}: the bridge's log ends with:\n{}",
            params.name,
            tail(&log, 30)
        );
    }
    drop(api);
    ledger.stop().await?;
    tokio::task::spawn_blocking(move || drop(dovecot)).await?;
    outcome.api_ceiling_rps = ceiling::measure(
        Duration::from_millis(params.latency_ms),
        params.concurrency,
        params.ceiling_for,
    )
    .await?;
    Ok(outcome)
}

/// What a run of the bridge talks to.
#[derive(Clone, Copy)]
struct Servers<'a> {
    dovecot: &'a Dovecot,
    api: &'a FakeThulium,
    ledger: &'a Ledger,
}

/// All mails in INBOX first, then one `once`.
async fn run_once(
    params: &Params,
    servers: Servers<'_>,
    bin: &Path,
    config: &Path,
    log: &Path,
) -> Result<Outcome> {
    let (dovecot, api, ledger) = (servers.dovecot, servers.api, servers.ledger);
    let started = Instant::now();
    let (n, tickets) = (params.n, params.tickets);
    let written =
        dovecot.append_many(USER, "INBOX", (0..n).map(|i| mails::reply(i, tickets)), &[])?;
    anyhow::ensure!(written == n, "seeded {written} of {n} mails");
    warm::select(dovecot.plain_port(), USER, PASSWORD, "INBOX")?;
    let seed = started.elapsed();

    let bin = bin.to_path_buf();
    let (config, log) = (config.to_path_buf(), log.to_path_buf());
    let (dovecot_before, api_before) = (cpu::dovecot(dovecot.dir()), cpu::this_process());
    let postgres_before = ledger.work()?;
    let usage = tokio::task::spawn_blocking(move || {
        child::Bridge::spawn(&bin, &config, &["once"], &log)?.wait_at_most(ONCE_LIMIT)
    })
    .await??;
    let dovecot_cpu = cpu::dovecot(dovecot.dir())
        .zip(dovecot_before)
        .map(|(after, before)| after.saturating_sub(before));
    let api_cpu = cpu::this_process().saturating_sub(api_before);
    let postgres = ledger.work()?.zip(postgres_before).map(|(a, b)| a.since(b));
    let mut failures = Vec::new();
    if usage.exit_code != Some(0) {
        failures.push(format!("`once` exited with {:?}", usage.exit_code));
    }
    Ok(Outcome {
        params: params.clone(),
        usage,
        wall: usage.wall,
        posted: api.total_posted(),
        seed,
        latencies_ms: Vec::new(),
        notify_ms: Vec::new(),
        wake_to_post_ms: Vec::new(),
        dovecot_cpu,
        api_cpu,
        postgres,
        load1: 0.0,
        api_ceiling_rps: 0.0,
        failures,
        memory: None,
        big: None,
    })
}

/// `run` waiting in IDLE; one warm-up mail, then `n` mails `gap` apart.
async fn run_idle(
    params: &Params,
    gap: Duration,
    servers: Servers<'_>,
    bin: &Path,
    config: &Path,
    log: &Path,
) -> Result<Outcome> {
    let (dovecot, api, ledger) = (servers.dovecot, servers.api, servers.ledger);
    let (n, tickets) = (params.n, params.tickets);
    let bridge = child::Bridge::spawn(bin, config, &["run"], log)?;
    let mut failures = Vec::new();

    // The warm-up mail proves the daemon is connected and back in IDLE after a pass.
    dovecot.append(USER, "INBOX", &mails::reply(n, tickets), &[])?;
    if let Err(e) = api.wait_posted(1, Duration::from_secs(60)).await {
        failures.push(format!("warm-up mail: {e}"));
    }
    let watch = warm::IdleWatch::start(dovecot.plain_port(), MIRROR, PASSWORD, "INBOX")?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (dovecot_before, api_before) = (cpu::dovecot(dovecot.dir()), cpu::this_process());
    let postgres_before = ledger.work()?;
    let started = Instant::now();
    let mut arrived_ms = Vec::with_capacity(n);
    for i in 0..n {
        tokio::time::sleep_until((started + gap * i as u32).into()).await;
        let raw = mails::reply(i, tickets);
        arrived_ms.push(now_ms());
        dovecot.append(USER, "INBOX", &raw, &[])?;
        dovecot.append(MIRROR, "INBOX", &raw, &[])?;
    }
    if let Err(e) = api.wait_posted(n + 1, Duration::from_secs(60)).await {
        failures.push(e.to_string());
    }
    let wall = started.elapsed();
    let dovecot_cpu = cpu::dovecot(dovecot.dir())
        .zip(dovecot_before)
        .map(|(after, before)| after.saturating_sub(before));
    let api_cpu = cpu::this_process().saturating_sub(api_before);
    let postgres = ledger.work()?.zip(postgres_before).map(|(a, b)| a.since(b));
    let exists_ms = tokio::task::spawn_blocking(move || watch.stop()).await?;
    let mut notify_ms: Vec<f64> = arrived_ms
        .iter()
        .filter_map(|t| exists_ms.iter().find(|e| **e >= *t).map(|e| (e - t) as f64))
        .collect();
    notify_ms.sort_by(f64::total_cmp);
    bridge.terminate();
    let usage =
        tokio::task::spawn_blocking(move || bridge.wait_at_most(Duration::from_secs(60))).await??;
    if usage.exit_code != Some(0) {
        failures.push(format!(
            "`run` exited with {:?} after SIGTERM",
            usage.exit_code
        ));
    }
    if std::env::var_os("BENCH_DEBUG").is_some() {
        for r in api.all_posted() {
            if let Some(i) = mails::marker_in(&r.body)
                && let Some(t) = arrived_ms.get(i)
            {
                let seen = exists_ms.iter().find(|e| **e >= *t).map(|e| e - t);
                let woke = idle_wakeups(log)
                    .into_iter()
                    .find(|w| *w >= *t)
                    .map(|w| w - t);
                eprintln!(
                    "mail {i}: arrived +{} ms, posted after {} ms, bridge woke after {woke:?} ms, mirror EXISTS after {seen:?} ms",
                    t - arrived_ms[0],
                    r.at_unix_ms - t
                );
            }
        }
    }
    let woke_ms = idle_wakeups(log);
    let (mut latencies_ms, mut wake_to_post_ms) = (Vec::new(), Vec::new());
    for r in api.all_posted() {
        let Some(arrived) = mails::marker_in(&r.body).and_then(|i| arrived_ms.get(i).copied())
        else {
            continue;
        };
        latencies_ms.push(r.at_unix_ms.saturating_sub(arrived) as f64);
        if let Some(woke) = woke_ms.iter().find(|w| **w >= arrived) {
            wake_to_post_ms.push(r.at_unix_ms.saturating_sub(*woke) as f64);
        }
    }
    latencies_ms.sort_by(f64::total_cmp);
    wake_to_post_ms.sort_by(f64::total_cmp);
    Ok(Outcome {
        params: params.clone(),
        usage,
        wall,
        posted: api.total_posted(),
        seed: Duration::ZERO,
        latencies_ms,
        notify_ms,
        wake_to_post_ms,
        dovecot_cpu,
        api_cpu,
        postgres,
        load1: 0.0,
        api_ceiling_rps: 0.0,
        failures,
        memory: None,
        big: None,
    })
}

fn write_config(
    dir: &Path,
    dovecot: &Dovecot,
    api: &FakeThulium,
    ledger: &Ledger,
    p: &Params,
) -> Result<PathBuf> {
    // In IDLE, debug logs say when IDLE woke up: the bridge's own share of the latency.
    let level = if p.idle_gap.is_some() {
        "debug"
    } else {
        "info"
    };
    let text = config_file::thulium(api, "30s")
        + &format!("concurrency = {}\n", p.concurrency)
        + &config_file::mailbox(dovecot, "support", USER, PASSWORD)
        + "idle = true\npoll_interval = \"60s\"\n"
        + &config_file::state(dir, ledger)?
        + &format!("\n[log]\nlevel = \"{level}\"\n");
    config_file::write(dir, &text)
}

/// Exactly once, and per ticket in date order (reply `i` was sent before `i + 1`; with
/// IDLE the mails are posted as they arrive, and the warm-up mail came first).
fn check_posts(p: &Params, api: &FakeThulium, expected: usize, failures: &mut Vec<String>) {
    let posted = api.all_posted();
    if posted.len() != expected {
        failures.push(format!(
            "{} replies posted, expected {expected}",
            posted.len()
        ));
    }
    let mut seen = vec![0u32; expected];
    let mut last_by_ticket: HashMap<u64, usize> = HashMap::new();
    let mut unknown = 0;
    let mut out_of_order = 0;
    for r in &posted {
        let Some(i) = mails::marker_in(&r.body).filter(|i| *i < expected) else {
            unknown += 1;
            continue;
        };
        seen[i] += 1;
        if r.ticket != mails::ticket_of(i, p.tickets) {
            failures.push(format!("reply {i} was posted to ticket {}", r.ticket));
        }
        if let Some(last) = last_by_ticket.insert(r.ticket, i)
            && last > i
            && p.idle_gap.is_none()
        {
            out_of_order += 1;
        }
    }
    let twice = seen.iter().filter(|c| **c > 1).count();
    let never = seen.iter().filter(|c| **c == 0).count();
    if twice > 0 {
        failures.push(format!("{twice} replies posted more than once"));
    }
    if never > 0 {
        failures.push(format!("{never} replies never posted"));
    }
    if unknown > 0 {
        failures.push(format!("{unknown} posts carry no known bench-id"));
    }
    if out_of_order > 0 {
        failures.push(format!(
            "{out_of_order} posts came before an older reply to their ticket"
        ));
    }
}

/// INBOX empty, every mail in Processed (a `\Deleted` file does not count).
fn check_folders(dovecot: &Dovecot, expected: usize, failures: &mut Vec<String>) {
    let root = dovecot.maildir(USER).root().to_path_buf();
    let inbox = count_mails(&root);
    let processed = count_mails(&root.join(".Processed"));
    if inbox != 0 {
        failures.push(format!("{inbox} mails left in INBOX"));
    }
    if processed != expected {
        failures.push(format!(
            "{processed} mails in Processed, expected {expected}"
        ));
    }
}

/// The mails in a maildir folder, not counting those marked `\Deleted`.
pub(crate) fn count_mails(folder: &Path) -> usize {
    ["new", "cur"]
        .iter()
        .filter_map(|sub| fs::read_dir(folder.join(sub)).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            !name
                .split_once(":2,")
                .is_some_and(|(_, flags)| flags.contains('T'))
        })
        .count()
}

/// `ledger stats` must agree: every mail posted, none pending or failed; and `ledger
/// list` must show each mail once, as posted (or as the new ticket it opened). On
/// PostgreSQL the table itself must agree too ([`Ledger::check`]); `dir` is the
/// scenario's working dir.
pub(crate) async fn check_ledger(
    bin: &Path,
    config: &Path,
    ledger: &Ledger,
    dir: &Path,
    expected: usize,
    failures: &mut Vec<String>,
) {
    failures.extend(ledger.check(&config_file::state_dir(dir), expected));
    check_stats(bin, config, expected, failures).await;
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("--config")
        .arg(config)
        .args(["ledger", "list", "--json", "--since", "1d"])
        .args(["--state", "posted", "--state", "new_ticket"])
        .env_remove("RUST_LOG");
    match tokio::task::spawn_blocking(move || cmd.output()).await {
        Ok(Ok(out)) => {
            let listed = String::from_utf8_lossy(&out.stdout).lines().count();
            if !out.status.success() || listed != expected {
                failures.push(format!(
                    "ledger list: {listed} mails posted (expected {expected}); {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        other => failures.push(format!("ledger list did not run: {other:?}")),
    }
}

async fn check_stats(bin: &Path, config: &Path, expected: usize, failures: &mut Vec<String>) {
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("--config")
        .arg(config)
        .args(["ledger", "stats"])
        .env_remove("RUST_LOG");
    let out = match tokio::task::spawn_blocking(move || cmd.output()).await {
        Ok(Ok(out)) => out,
        other => {
            failures.push(format!("ledger stats did not run: {other:?}"));
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let count = |key: &str| -> Option<usize> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
    };
    let (posted, pending, failed) = (count("posted"), count("pending"), count("failed"));
    if posted != Some(expected) || pending != Some(0) || failed != Some(0) {
        failures.push(format!(
            "ledger stats: posted {posted:?}, pending {pending:?}, failed {failed:?} (expected {expected}, 0, 0)"
        ));
    }
}

/// When the bridge's IDLE woke up for new data, from its debug log (Unix ms).
fn idle_wakeups(log: &Path) -> Vec<u64> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("IDLE: the server reported a change"))
        .filter_map(|l| unix_ms(l.split_whitespace().next()?))
        .collect()
}

/// `2026-11-28T03:53:44.798504Z` (tracing's timestamps) to Unix milliseconds.
fn unix_ms(stamp: &str) -> Option<u64> {
    let num = |r: std::ops::Range<usize>| stamp.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let frac = stamp.get(20..)?.trim_end_matches('Z');
    let ms: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    // Days since 1970-01-01 (H. Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms).ok()
}

pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_timestamps_become_unix_milliseconds() {
        assert_eq!(super::unix_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(
            super::unix_ms("2026-11-28T03:53:44.798504Z"),
            Some(1_795_838_024_798)
        );
    }
}
