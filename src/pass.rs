//! One pass over one mailbox: candidates -> sizes -> fetch -> decide -> deliver -> dispose.

use crate::bridge::Bridge;
use crate::config::{Disposition, MailboxConfig};
use crate::decide::{self, Action, Decision, SkipKind};
use crate::deliver::{self, Delivered, Outgoing};
use crate::imap::{ImapError, MailMeta, MailSession};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Mails downloaded at once: bounds memory, keeps the pipeline full.
const BATCH_MAILS: usize = 200;
const BATCH_BYTES: u64 = 16 << 20;

/// What a pass did, for logs, exit codes and scheduling.
#[derive(Debug, Default, Clone)]
pub struct PassReport {
    pub counts: BTreeMap<&'static str, u64>,
    /// Mails left for a later pass, with the earliest time worth retrying.
    pub retry_at: Option<Instant>,
    /// The API could not be reached or refused our credentials.
    pub api_down: bool,
}

/// Mails to leave alone until a time (transient failures), per UID.
pub type Deferrals = HashMap<u32, Instant>;

/// The bridge's own keywords, and whether `\Seen` marks done mails.
fn own_marks(mb: &MailboxConfig) -> (Vec<&str>, bool) {
    let all = [
        &mb.on_posted,
        &mb.on_unmatched,
        &mb.on_ignored,
        &mb.on_failed,
    ];
    let keywords = all
        .iter()
        .filter_map(|d| match d {
            Disposition::Flag(k) => Some(k.as_str()),
            _ => None,
        })
        .collect();
    (keywords, all.iter().any(|d| **d == Disposition::Seen))
}

pub async fn run_pass(
    session: &mut MailSession,
    mb: &MailboxConfig,
    bridge: &Arc<Bridge>,
    deferrals: &mut Deferrals,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<PassReport, ImapError> {
    let mut report = PassReport::default();
    let (keywords, unseen_only) = own_marks(mb);
    let now = Instant::now();
    deferrals.retain(|_, at| *at > now);
    let uids: Vec<u32> = session
        .candidates(&keywords, unseen_only)
        .await?
        .into_iter()
        .filter(|uid| !deferrals.contains_key(uid))
        .collect();
    if uids.is_empty() {
        report.retry_at = deferrals.values().min().copied();
        return Ok(report);
    }
    let metas = session.meta(&uids).await?;
    let max = bridge.rules.content.max_message_size.bytes();
    let (oversize, metas): (Vec<MailMeta>, Vec<MailMeta>) =
        metas.into_iter().partition(|m| m.size as u64 > max);
    for m in &oversize {
        tracing::warn!(mailbox = %mb.name, uid = m.uid, size = m.size, outcome = "failed",
            reason = %format!("{} bytes, over max_message_size ({}); not downloaded", m.size, bridge.rules.content.max_message_size),
            "mail handled");
        count(&mut report, &mb.name, "failed");
    }
    if !bridge.dry_run {
        let uids: Vec<u32> = oversize.iter().map(|m| m.uid).collect();
        session.dispose(&mb.on_failed, &uids).await?;
    }

    for batch in batches(&metas) {
        if *stop.borrow() {
            break;
        }
        let uids: Vec<u32> = batch.iter().map(|m| m.uid).collect();
        let mails = session.fetch(&uids).await?;
        let mut outgoing = Vec::new();
        let mut dispositions: HashMap<Disposition, Vec<u32>> = HashMap::new();
        for mail in mails {
            let decision = decide_guarded(&mail.raw, bridge, mail.internal_date);
            match decision.action {
                Action::Post {
                    ticket,
                    request,
                    matched_by,
                } => {
                    tracing::debug!(mailbox = %mb.name, uid = mail.uid, ticket, %matched_by, "ticket found");
                    outgoing.push(Outgoing {
                        uid: mail.uid,
                        key: decision.key,
                        message_id: decision.message_id,
                        from: decision.from,
                        ticket,
                        request,
                        sent: decision.sent,
                    });
                }
                Action::Skip { kind, ref reason } => {
                    let (outcome, target) = match kind {
                        SkipKind::Unmatched => ("unmatched", &mb.on_unmatched),
                        SkipKind::Ignored => ("ignored", &mb.on_ignored),
                        SkipKind::Failed => ("failed", &mb.on_failed),
                    };
                    log_mail(mb, mail.uid, &decision, None, outcome, reason);
                    count(&mut report, &mb.name, outcome);
                    dispositions
                        .entry(target.clone())
                        .or_default()
                        .push(mail.uid);
                }
            }
        }
        for (mail, delivered) in deliver::deliver(bridge, &mb.name, outgoing).await {
            let (outcome, reason, target) = match &delivered {
                Delivered::Posted => ("posted", String::new(), Some(&mb.on_posted)),
                Delivered::Duplicate => ("duplicate", "already posted".into(), Some(&mb.on_posted)),
                Delivered::Ignored(r) => ("ignored", r.clone(), Some(&mb.on_ignored)),
                Delivered::Failed(r) => ("failed", r.clone(), Some(&mb.on_failed)),
                Delivered::Deferred {
                    reason,
                    retry_after,
                } => {
                    let wait = retry_after.unwrap_or(Duration::from_secs(30));
                    deferrals.insert(mail.uid, Instant::now() + wait);
                    if reason.contains("credentials") || reason.contains("connect") {
                        report.api_down = true;
                    }
                    ("retried", reason.clone(), None)
                }
            };
            tracing::info!(mailbox = %mb.name, uid = mail.uid, message_id = mail.message_id.as_deref().unwrap_or(""),
                ticket = mail.ticket, outcome, reason = %reason, "mail handled");
            count(&mut report, &mb.name, outcome);
            if let Some(target) = target {
                dispositions
                    .entry(target.clone())
                    .or_default()
                    .push(mail.uid);
            }
        }
        if !bridge.dry_run {
            for (disposition, uids) in &dispositions {
                session.dispose(disposition, uids).await?;
            }
        }
    }
    report.retry_at = deferrals.values().min().copied();
    Ok(report)
}

/// Splits the candidates into download batches bounded by count and bytes.
fn batches(metas: &[MailMeta]) -> Vec<&[MailMeta]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, m) in metas.iter().enumerate() {
        if i > start && (i - start >= BATCH_MAILS || bytes + m.size as u64 > BATCH_BYTES) {
            out.push(&metas[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += m.size as u64;
    }
    if start < metas.len() {
        out.push(&metas[start..]);
    }
    out
}

/// `decide`, with a panic confined to this one mail (it goes to `on_failed`).
fn decide_guarded(
    raw: &[u8],
    bridge: &Bridge,
    internal_date: Option<chrono::DateTime<chrono::FixedOffset>>,
) -> Decision {
    let refs: &dyn decide::References = if bridge.rules.use_references {
        &bridge.ledger
    } else {
        &decide::NoReferences
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decide::decide(raw, &bridge.rules, refs, internal_date)
    }))
    .unwrap_or_else(|_| Decision {
        key: String::new(),
        message_id: None,
        from: None,
        subject: String::new(),
        sent: internal_date,
        action: Action::Skip {
            kind: SkipKind::Failed,
            reason: "internal error while reading this mail (a bug: please report it)".into(),
        },
    })
}

fn log_mail(
    mb: &MailboxConfig,
    uid: u32,
    d: &Decision,
    ticket: Option<u64>,
    outcome: &str,
    reason: &str,
) {
    tracing::info!(mailbox = %mb.name, uid, message_id = d.message_id.as_deref().unwrap_or(""),
        ticket = ticket.map(|t| t.to_string()).unwrap_or_default(), outcome, reason, "mail handled");
}

fn count(report: &mut PassReport, mailbox: &str, outcome: &'static str) {
    crate::metrics::mail_handled(mailbox, outcome);
    *report.counts.entry(outcome).or_default() += 1;
}
