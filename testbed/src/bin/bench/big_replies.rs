//! Scenario `f`: what the process-wide reading budget holds the bridge to. `n`
//! mailboxes (one Dovecot user and one `[[mailbox]]` each) hold one reply each of
//! about 24 MiB: a short text/plain body and a big base64 attachment, under the
//! default `max_message_size` (25 MiB), written to an existing ticket by its customer,
//! so every one is posted (the attachment is named in the body, not uploaded). One
//! `once` works on all mailboxes at once; the figure is the bridge's peak RSS (`wait4`),
//! which without the budget would grow with the number of mailboxes. `BENCH_DEBUG=1`
//! prints the resident memory over time with each post marked.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine as _;
use testbed::{Dovecot, FakeThulium, FakeThuliumConfig};

use crate::child::{self, Usage};
use crate::ledger::Ledger;
use crate::scenario::{self, Outcome, Params};
use crate::servers::PASSWORD;
use crate::{config_file, mails, new_ticket, servers, warm};

const LIMIT: Duration = Duration::from_secs(300);

/// The attachment of scenario `f`'s replies: 17.5 MiB, about 24 MiB of base64 in the
/// mail, just under the default `max_message_size` of 25 MiB.
pub(crate) const ATTACHMENT: usize = 35 << 19;

/// The sizes of scenario `f`'s mails.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BigMails {
    pub attachment_bytes: usize,
    /// One mail as stored (each is this size, give or take a few bytes).
    pub mail_bytes: usize,
}

/// Mailbox `i`'s user (and `[[mailbox]]` name).
fn user(i: usize) -> String {
    format!("support{i}")
}

pub(crate) async fn run(params: &Params, bin: &Path, work: &Path) -> Result<Outcome> {
    let size = params
        .big_replies
        .context("scenario f needs an attachment size")?;
    let mailboxes = params.n;
    let dir = work.join(&params.name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let users = (0..mailboxes).map(user).collect();
    let (dovecot, api) = servers::start(users, FakeThuliumConfig::default()).await?;

    let started = Instant::now();
    let data = new_ticket::attachment(size);
    let mut mail_bytes = 0;
    for i in 0..mailboxes {
        let ticket = mails::ticket_of(i, mailboxes);
        // The ticket exists and its customer is the mail's sender: the reply is posted.
        api.add_ticket(ticket, &customer(ticket));
        let raw = mail(i, ticket, &data);
        mail_bytes = mail_bytes.max(raw.len());
        dovecot.append(&user(i), "INBOX", &raw, &[])?;
    }
    drop(data);
    for i in 0..mailboxes {
        warm::select(dovecot.plain_port(), &user(i), PASSWORD, "INBOX")?;
    }
    let seed = started.elapsed();
    let ledger = Ledger::start(params.ledger).await?;
    let config = write_config(&dir, &dovecot, &api, &ledger, mailboxes)?;
    let log = dir.join("bridge.log");

    let debug = std::env::var_os("BENCH_DEBUG").is_some();
    let bridge = child::Bridge::spawn(bin, &config, &["once"], &log)?;
    let sampler = debug.then(|| new_ticket::Sampler::start(bridge.pid()));
    let usage: Usage = tokio::task::spawn_blocking(move || bridge.wait_at_most(LIMIT)).await??;
    let samples = sampler.map(new_ticket::Sampler::stop);

    let mut failures = Vec::new();
    if usage.exit_code != Some(0) {
        failures.push(format!("`once` exited with {:?}", usage.exit_code));
    }
    let mut posted = 0;
    for i in 0..mailboxes {
        let ticket = mails::ticket_of(i, mailboxes);
        let replies = api.posted(ticket);
        posted += replies.len();
        match replies.as_slice() {
            [r] if mails::marker_in(&r.body) == Some(i) => {}
            [r] => failures.push(format!(
                "ticket {ticket} got a reply without bench-id:{i} ({:?})",
                mails::marker_in(&r.body)
            )),
            other => failures.push(format!(
                "ticket {ticket} got {} replies, expected 1",
                other.len()
            )),
        }
        let root = dovecot.maildir(&user(i)).root().to_path_buf();
        let (inbox, processed) = (
            scenario::count_mails(&root),
            scenario::count_mails(&root.join(".Processed")),
        );
        if (inbox, processed) != (0, 1) {
            failures.push(format!(
                "mailbox {}: {inbox} mails in INBOX and {processed} in Processed, expected 0 and 1",
                user(i)
            ));
        }
    }
    if api.total_posted() != mailboxes {
        failures.push(format!(
            "{} replies posted in all, expected {mailboxes}",
            api.total_posted()
        ));
    }
    scenario::check_ledger(bin, &config, &ledger, &dir, mailboxes, &mut failures).await;
    if !failures.is_empty() {
        eprintln!(
            "== scenario {}: the bridge's log ends with:\n{}",
            params.name,
            scenario::tail(&log, 30)
        );
    }
    if let Some(samples) = &samples {
        let mut marks: Vec<(u64, String)> = api
            .all_posted()
            .iter()
            .map(|r| (r.at_unix_ms, format!("reply to ticket {} posted", r.ticket)))
            .collect();
        marks.sort();
        new_ticket::print_timeline(samples, &marks, 8 << 10);
    }
    drop(api);
    ledger.stop().await?;
    tokio::task::spawn_blocking(move || drop(dovecot)).await?;
    Ok(Outcome {
        big: Some(BigMails {
            attachment_bytes: size,
            mail_bytes,
        }),
        ..Outcome::bridge_only(params, usage, posted, seed, failures)
    })
}

fn customer(ticket: u64) -> String {
    format!("customer{ticket}@example.com")
}

/// Reply `i` to `ticket` from its customer: a short text, then the attachment's base64.
fn mail(i: usize, ticket: u64, data: &[u8]) -> Vec<u8> {
    let from = customer(ticket);
    let marker = mails::marker(i);
    let head = format!(
        "From: Customer {ticket} <{from}>\r\nTo: ACME Support <support@acme.example>\r\n\
         Subject: Re: [TH#{ticket}] Order {ticket}: the scans you asked for\r\n\
         Date: Mon, 5 Jan 2026 09:00:00 +0100\r\n\
         Message-ID: <bench-big-{i}.{ticket}@customer.example>\r\n\
         In-Reply-To: <ticket-{ticket}-1@acme.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b-{i}\"\r\n\r\n\
         --b-{i}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Hello,\r\n\r\nhere are the scans of the damaged boxes ({marker}).\r\n\r\n\
         Best regards,\r\nCustomer {ticket}\r\n\
         --b-{i}\r\nContent-Type: application/pdf; name=\"scans.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"scans.pdf\"\r\n\r\n"
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let mut raw = head.into_bytes();
    raw.reserve(encoded.len() / 76 * 78 + 64);
    for line in encoded.as_bytes().chunks(76) {
        raw.extend_from_slice(line);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(format!("--b-{i}--\r\n").as_bytes());
    raw
}

fn write_config(
    dir: &Path,
    dovecot: &Dovecot,
    api: &FakeThulium,
    ledger: &Ledger,
    mailboxes: usize,
) -> Result<PathBuf> {
    let mut text = config_file::thulium(api, "60s") + &config_file::state(dir, ledger)?;
    for i in 0..mailboxes {
        text += &config_file::mailbox(dovecot, &user(i), &user(i), PASSWORD);
        text += "idle = false\n";
    }
    config_file::write(dir, &text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_big_reply_is_near_its_target_size_and_under_the_default_limit() {
        let data = crate::new_ticket::attachment(super::ATTACHMENT);
        let raw = super::mail(3, 100_003, &data);
        let mib = raw.len() as f64 / 1048576.0;
        assert!((23.5..25.0).contains(&mib), "{mib:.2} MiB");
        let text = String::from_utf8_lossy(&raw[..2000]);
        assert!(text.contains("[TH#100003]") && text.contains("bench-id:3"));
    }
}
