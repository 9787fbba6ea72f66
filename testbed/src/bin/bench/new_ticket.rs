//! Scenarios `e` and `e-small`: memory while a new ticket's attachment is uploaded. One
//! mail without a ticket number carries one attachment (20 MiB, about 27 MiB of base64
//! in the mail, `max_message_size` raised to fit; or 64 KiB for the baseline); `once`
//! opens the ticket. Besides the kernel's peak RSS of the bridge (`wait4`), its
//! `/proc/<pid>/status` is sampled every 2 ms, so the memory while the file was being
//! sent (from the request's head reaching the fake API to the file being stored) is
//! told apart from the peak of fetching and deciding before it (`BENCH_DEBUG=1` prints
//! the timeline).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine as _;
use testbed::{Dovecot, FakeThulium, FakeThuliumConfig};

use crate::child::{self, Usage};
use crate::ledger::Ledger;
use crate::scenario::{self, Outcome, Params};
use crate::servers::PASSWORD;
use crate::{config_file, servers, warm};

const USER: &str = "support";
const LIMIT: Duration = Duration::from_secs(300);

/// What the samples say about the bridge's memory around the upload.
#[derive(Clone, Debug, Default)]
pub(crate) struct UploadMemory {
    pub attachment_bytes: usize,
    pub mail_bytes: usize,
    /// From the request's head at the API to the file stored.
    pub upload: Duration,
    /// The most resident memory sampled while the file was being sent (`None`: the
    /// upload was quicker than the sampling).
    pub rss_during_upload_kib: Option<u64>,
    /// The peak before the upload began (fetching and deciding the mail).
    pub hwm_before_upload_kib: u64,
    /// Resident memory in the last sample before the upload began.
    pub rss_before_upload_kib: u64,
    pub samples: usize,
}

pub(crate) async fn run(params: &Params, bin: &Path, work: &Path) -> Result<Outcome> {
    let size = params
        .attachment
        .context("a new-ticket scenario needs an attachment size")?;
    let dir = work.join(&params.name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let (dovecot, api) = servers::start(vec![USER.into()], FakeThuliumConfig::default()).await?;
    let data = attachment(size);
    let raw = mail(&data);
    let mail_bytes = raw.len();
    dovecot.append(USER, "INBOX", &raw, &[])?;
    drop(raw);
    warm::select(dovecot.plain_port(), USER, PASSWORD, "INBOX")?;
    let ledger = Ledger::start(params.ledger).await?;
    let config = write_config(&dir, &dovecot, &api, &ledger)?;
    let log = dir.join("bridge.log");

    let bridge = child::Bridge::spawn(bin, &config, &["once"], &log)?;
    let sampler = Sampler::start(bridge.pid());
    let usage: Usage = tokio::task::spawn_blocking(move || bridge.wait_at_most(LIMIT)).await??;
    let samples = sampler.stop();

    let mut failures = Vec::new();
    if usage.exit_code != Some(0) {
        failures.push(format!("`once` exited with {:?}", usage.exit_code));
    }
    let created = api.created_tickets();
    if created.len() != 1 {
        failures.push(format!("{} tickets created, expected 1", created.len()));
    }
    let files = created
        .first()
        .map(|t| api.ticket_files(t.ticket))
        .unwrap_or_default();
    match files.as_slice() {
        [f] if f.bytes == data => {}
        [f] => failures.push(format!(
            "the uploaded file differs ({} bytes, sent {})",
            f.bytes.len(),
            data.len()
        )),
        other => failures.push(format!("{} files attached, expected 1", other.len())),
    }
    let processed = dovecot
        .folder_mails(USER, "Processed")
        .map(|m| m.len())
        .unwrap_or(0);
    if processed != 1 {
        failures.push(format!("{processed} mails in Processed, expected 1"));
    }
    scenario::check_ledger(bin, &config, &ledger, &dir, 1, &mut failures).await;
    if !failures.is_empty() {
        eprintln!(
            "== scenario {}: the bridge's log ends with:\n{}",
            params.name,
            scenario::tail(&log, 30)
        );
    }
    if std::env::var_os("BENCH_DEBUG").is_some()
        && let Some(f) = files.first()
    {
        let marks = [
            (f.started_unix_ms, "upload starts".to_string()),
            (f.at_unix_ms, "upload stored".to_string()),
        ];
        print_timeline(&samples, &marks, 1024);
    }
    let memory = files
        .first()
        .map(|f| memory_around(&samples, f.started_unix_ms, f.at_unix_ms))
        .map(|m| UploadMemory {
            attachment_bytes: size,
            mail_bytes,
            ..m
        });
    drop(api);
    ledger.stop().await?;
    tokio::task::spawn_blocking(move || drop(dovecot)).await?;
    Ok(Outcome {
        memory,
        ..Outcome::bridge_only(params, usage, created.len(), Duration::ZERO, failures)
    })
}

/// Deterministic bytes that do not compress (xorshift), like a scan or a PDF.
pub(crate) fn attachment(size: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The mail up to the attachment's base64.
const HEAD: &str = "From: Customer <anna@customer.example>\r\nTo: help@acme.example\r\n\
         Subject: Scan of the signed contract\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\n\
         Message-ID: <bench-upload@customer.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease find the scan attached.\r\n\
         --b\r\nContent-Type: application/pdf; name=\"contract.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"contract.pdf\"\r\n\r\n";

fn mail(data: &[u8]) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let mut raw = HEAD.as_bytes().to_vec();
    raw.reserve(encoded.len() / 76 * 78 + 64);
    for line in encoded.as_bytes().chunks(76) {
        raw.extend_from_slice(line);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"--b--\r\n");
    raw
}

fn write_config(
    dir: &Path,
    dovecot: &Dovecot,
    api: &FakeThulium,
    ledger: &Ledger,
) -> Result<PathBuf> {
    let text = config_file::thulium(api, "60s")
        + &config_file::mailbox(dovecot, "support", USER, PASSWORD)
        + "idle = false\non_unmatched = \"new_ticket\"\n\n[mailbox.new_ticket]\nto = \"help@acme.example\"\n\n[content]\nmax_message_size = \"30 MiB\"\n"
        + &config_file::state(dir, ledger)?;
    config_file::write(dir, &text)
}

/// One look at `/proc/<pid>/status`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    pub at_ms: u64,
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

/// Samples a process's memory every 2 ms until stopped or the process is gone.
pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Sample>>,
}

impl Sampler {
    pub(crate) fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let path = format!("/proc/{pid}/status");
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let Ok(status) = fs::read_to_string(&path) else {
                    break;
                };
                let kib = |key: &str| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix(key))
                        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                };
                match (kib("VmRSS:"), kib("VmHWM:")) {
                    (Some(rss_kib), Some(hwm_kib)) => samples.push(Sample {
                        at_ms: scenario::now_ms(),
                        rss_kib,
                        hwm_kib,
                    }),
                    // A zombie has no memory lines: the bridge has exited.
                    _ => break,
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            samples
        });
        Sampler { stop, thread }
    }

    pub(crate) fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// `BENCH_DEBUG=1`: resident memory over time, each change of `step_kib` or more, with
/// the moments in `marks` (Unix ms, in order) shown where they fall.
pub(crate) fn print_timeline(samples: &[Sample], marks: &[(u64, String)], step_kib: u64) {
    let Some(first) = samples.first() else {
        return;
    };
    let mut shown: Option<u64> = None;
    let mut marks = marks.iter().peekable();
    for s in samples {
        while let Some((at, what)) = marks.next_if(|(at, _)| *at <= s.at_ms) {
            eprintln!("  +{:>5} ms  -- {what}", at.saturating_sub(first.at_ms));
        }
        if shown.is_none_or(|r| r.abs_diff(s.rss_kib) >= step_kib) {
            shown = Some(s.rss_kib);
            eprintln!(
                "  +{:>5} ms  RSS {:>6.1} MiB  (peak so far {:.1} MiB)",
                s.at_ms - first.at_ms,
                s.rss_kib as f64 / 1024.0,
                s.hwm_kib as f64 / 1024.0
            );
        }
    }
}

/// The samples split at the upload's start and end.
fn memory_around(samples: &[Sample], started_ms: u64, stored_ms: u64) -> UploadMemory {
    let before = samples.iter().rev().find(|s| s.at_ms < started_ms);
    UploadMemory {
        upload: Duration::from_millis(stored_ms.saturating_sub(started_ms)),
        rss_during_upload_kib: samples
            .iter()
            .filter(|s| (started_ms..=stored_ms).contains(&s.at_ms))
            .map(|s| s.rss_kib)
            .max(),
        hwm_before_upload_kib: before.map_or(0, |s| s.hwm_kib),
        rss_before_upload_kib: before.map_or(0, |s| s.rss_kib),
        samples: samples.len(),
        ..UploadMemory::default()
    }
}
