//! One pass over one mailbox: candidates -> sizes -> fetch -> decide -> deliver -> dispose.
//!
//! A pipeline over one IMAP session: while the replies of earlier batches are being
//! posted, the next batch is downloaded and decided; finished mails are disposed in
//! groups (a few IMAP commands per group, after their ledger commit). Memory stays
//! bounded whatever the number of candidates: their sizes are read in chunks, raw mails
//! one batch at a time, and only a bounded amount of decided mail waits for the API.

use crate::config::{Disposition, MailboxConfig};
use crate::daemon::bridge::Bridge;
use crate::daemon::defer_cause::DeferCause;
use crate::daemon::delivery::{Delivery, Finished, Outcome, Outgoing};
use crate::imap::{ImapError, MailMeta, MailSession};
use crate::ledger::Location;
use crate::mail::decide::{self, Action, Decision, SkipKind};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

/// Candidates whose sizes are asked for in one command.
const META_CHUNK: usize = 1000;
/// Mails downloaded at once (one command, unless their UIDs are scattered): bounds the
/// raw mail held in memory.
const BATCH_MAILS: usize = 250;
const BATCH_BYTES: u64 = 2 << 20;
/// The next batch is downloaded once no more than this many decided mails (and request
/// bytes) are still waiting for the API: enough to keep every API slot busy meanwhile.
const AHEAD_MAILS: usize = 250;
const AHEAD_BYTES: usize = 4 << 20;
/// Finished mails are disposed once this many have gathered (and at the end of a pass):
/// each disposition command costs the server work in proportion to the folder's size.
const DISPOSE_GROUP: usize = 5000;

/// What a pass did, for logs, exit codes and scheduling.
#[derive(Debug, Default, Clone)]
pub struct PassReport {
    pub counts: BTreeMap<&'static str, u64>,
    /// Mails left for a later pass, with the earliest time worth retrying.
    pub retry_at: Option<Instant>,
    /// Mails left because the API failed (not because of the mail).
    pub api_failures: u64,
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
    let place = Location {
        mailbox: mb.name.clone(),
        folder: mb.folder.clone(),
        uid_validity: session.uid_validity(),
        uid: 0,
    };
    let mut pass = Pass {
        session,
        mb,
        bridge,
        delivery: Delivery::new(bridge, place),
        report,
        deferrals,
        dispose: HashMap::new(),
        to_dispose: 0,
        stop: stop.clone(),
        stopping: false,
        left: 0,
    };
    let result = pass.run(&uids).await;
    if result.is_err() || *stop.borrow() {
        pass.begin_stopping();
    }
    // Whatever happened, the POSTs under way are finished and recorded.
    while pass.delivery.unfinished() > 0 {
        pass.wait_some().await;
    }
    if pass.left > 0 {
        tracing::info!(mailbox = %mb.name, mails = pass.left, "pass cut short: mails not posted yet are left for the next pass");
    }
    result?;
    pass.dispose_all().await?;
    let Pass {
        mut report,
        deferrals,
        ..
    } = pass;
    report.retry_at = deferrals.values().min().copied();
    Ok(report)
}

/// One pass in progress.
struct Pass<'a> {
    session: &'a mut MailSession,
    mb: &'a MailboxConfig,
    bridge: &'a Arc<Bridge>,
    delivery: Delivery,
    report: PassReport,
    deferrals: &'a mut Deferrals,
    /// Finished mails (posted ones committed to the ledger) by where they go.
    dispose: HashMap<Disposition, Vec<u32>>,
    to_dispose: usize,
    stop: tokio::sync::watch::Receiver<bool>,
    /// Shutdown was asked for (or the session broke): no new POSTs, no more fetching.
    stopping: bool,
    /// Mails left unposted because of that.
    left: usize,
}

impl Pass<'_> {
    async fn run(&mut self, uids: &[u32]) -> Result<(), ImapError> {
        let max = self.bridge.rules.content.max_message_size.bytes();
        for chunk in uids.chunks(META_CHUNK) {
            if self.stop_asked() {
                return Ok(());
            }
            let metas = self.session.meta(chunk).await?;
            let (oversize, metas): (Vec<MailMeta>, Vec<MailMeta>) =
                metas.into_iter().partition(|m| m.size as u64 > max);
            for m in &oversize {
                tracing::warn!(mailbox = %self.mb.name, uid = m.uid, size = m.size, outcome = "failed",
                    reason = %format!("{} bytes, over max_message_size ({}); not downloaded", m.size, self.bridge.rules.content.max_message_size),
                    "mail handled");
                count(&mut self.report, &self.mb.name, "failed");
                self.add_disposal(&self.mb.on_failed.clone(), m.uid);
            }
            for batch in batches(&metas) {
                // Room for one more batch: collect what the API finished meanwhile.
                let done = self.delivery.collect().await;
                self.handle(done);
                while self.delivery.unfinished() > AHEAD_MAILS
                    || self.delivery.bytes_in_flight() > AHEAD_BYTES
                {
                    self.wait_some().await;
                }
                if self.stop_asked() {
                    return Ok(());
                }
                if self.to_dispose >= DISPOSE_GROUP {
                    self.dispose_all().await?;
                }
                let uids: Vec<u32> = batch.iter().map(|m| m.uid).collect();
                let mails = self.session.fetch(&uids).await?;
                let mut outgoing = Vec::new();
                for mail in mails {
                    let decision = decide_guarded(&mail.raw, self.bridge, mail.internal_date);
                    drop(mail.raw);
                    match decision.action {
                        Action::Post {
                            ticket,
                            request,
                            matched_by,
                        } => {
                            tracing::debug!(mailbox = %self.mb.name, uid = mail.uid, ticket, %matched_by, "ticket found");
                            outgoing.push(Outgoing {
                                uid: mail.uid,
                                id: decision.id,
                                from: decision.from,
                                ticket,
                                request,
                                sent: decision.sent,
                            });
                        }
                        Action::Skip { kind, ref reason } => {
                            let (outcome, target) = match kind {
                                SkipKind::Unmatched => ("unmatched", &self.mb.on_unmatched),
                                SkipKind::Ignored => ("ignored", &self.mb.on_ignored),
                                SkipKind::Failed => ("failed", &self.mb.on_failed),
                            };
                            log_mail(self.mb, mail.uid, &decision, None, outcome, reason);
                            count(&mut self.report, &self.mb.name, outcome);
                            self.add_disposal(&target.clone(), mail.uid);
                        }
                    }
                }
                self.delivery.submit(outgoing).await;
            }
        }
        Ok(())
    }

    /// Whether shutdown was asked for (or the pass is stopping anyway).
    fn stop_asked(&self) -> bool {
        self.stopping || *self.stop.borrow()
    }

    fn begin_stopping(&mut self) {
        if !self.stopping {
            self.stopping = true;
            self.delivery.stop();
        }
    }

    /// Waits for some mail to finish (or for shutdown), then handles what finished.
    async fn wait_some(&mut self) {
        tokio::select! {
            _ = self.delivery.wait() => {}
            changed = self.stop.changed(), if !self.stopping => {
                if changed.is_err() || *self.stop.borrow() {
                    self.begin_stopping();
                }
            }
        }
        let done = self.delivery.collect().await;
        self.handle(done);
    }

    /// Logs and counts finished mails and queues their dispositions.
    fn handle(&mut self, done: Vec<Finished>) {
        let mb = self.mb;
        for Finished {
            mail,
            outcome,
            retry_at,
        } in done
        {
            let target = match &outcome {
                Outcome::Deferred(DeferCause::Stopping) => {
                    tracing::debug!(mailbox = %mb.name, uid = mail.uid, ticket = mail.ticket, "not posted: stopping");
                    self.left += 1;
                    continue;
                }
                Outcome::Posted | Outcome::Duplicate => Some(&mb.on_posted),
                Outcome::Unverified(_) => Some(&mb.on_ignored),
                Outcome::Failed(_) => Some(&mb.on_failed),
                Outcome::Deferred(cause) => {
                    if let Some(at) = retry_at {
                        self.deferrals.insert(mail.uid, at);
                    }
                    if cause.is_api_failure() {
                        self.report.api_failures += 1;
                    }
                    None
                }
            };
            let reason = match &outcome {
                Outcome::Posted => String::new(),
                Outcome::Duplicate => "already posted".into(),
                Outcome::Unverified(r) | Outcome::Failed(r) => r.clone(),
                Outcome::Deferred(cause) => cause.to_string(),
            };
            let outcome = outcome.name();
            tracing::info!(mailbox = %mb.name, uid = mail.uid, message_id = mail.id.message_id.as_deref().unwrap_or(""),
                ticket = mail.ticket, outcome, reason = %reason, "mail handled");
            count(&mut self.report, &mb.name, outcome);
            if let Some(target) = target {
                self.add_disposal(target, mail.uid);
            }
        }
    }

    fn add_disposal(&mut self, target: &Disposition, uid: u32) {
        if let Some(uids) = self.dispose.get_mut(target) {
            uids.push(uid);
        } else {
            self.dispose.insert(target.clone(), vec![uid]);
        }
        self.to_dispose += 1;
    }

    /// One command (or two) per disposition for everything gathered so far.
    async fn dispose_all(&mut self) -> Result<(), ImapError> {
        let dispose = std::mem::take(&mut self.dispose);
        self.to_dispose = 0;
        if self.bridge.dry_run {
            return Ok(());
        }
        for (disposition, uids) in &dispose {
            self.session.dispose(disposition, uids).await?;
        }
        Ok(())
    }
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
        bridge.ledger()
    } else {
        &decide::NoReferences
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decide::decide(raw, &bridge.rules, refs, internal_date)
    }))
    .unwrap_or_else(|_| Decision {
        id: crate::mail::MailId {
            message_id: None,
            content: String::new(),
            legacy: None,
        },
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
    tracing::info!(mailbox = %mb.name, uid, message_id = d.id.message_id.as_deref().unwrap_or(""),
        ticket = ticket.map(|t| t.to_string()).unwrap_or_default(), outcome, reason, "mail handled");
}

fn count(report: &mut PassReport, mailbox: &str, outcome: &'static str) {
    crate::ops::metrics::mail_handled(mailbox, outcome);
    *report.counts.entry(outcome).or_default() += 1;
}
