//! A pass's bookkeeping: every finished mail is logged once, counted, noted for
//! `ledger list`, and queued for its disposition or its retry, all by [`Tally::record`].

use super::defer_cause::DeferCause;
use super::handled::Handled;
use super::outcome::Outcome;
use crate::config::{Disposition, MailboxConfig};
use crate::ledger::{DecisionRecord, Location, unix_now};
use crate::ops::metrics;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// Mails to leave alone until a time (transient failures), per UID; kept across passes.
pub(crate) type Deferrals = HashMap<u32, Instant>;

/// What a pass did, for logs, exit codes and scheduling.
#[derive(Debug, Default, Clone)]
pub(crate) struct PassReport {
    pub counts: BTreeMap<&'static str, u64>,
    /// Mails left for a later pass, with the earliest time worth retrying.
    pub retry_at: Option<Instant>,
    /// Mails left because the API failed (not because of the mail).
    pub api_failures: u64,
}

impl PassReport {
    /// Adds another pass's report (the approve folder's to the watched one's).
    pub(crate) fn add(&mut self, other: PassReport) {
        for (name, n) in other.counts {
            *self.counts.entry(name).or_default() += n;
        }
        self.retry_at = match (self.retry_at, other.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.api_failures += other.api_failures;
    }
}

pub(crate) struct Tally<'a> {
    mb: &'a MailboxConfig,
    /// The folder being read (each mail adds its UID).
    place: Location,
    /// Decided mails, for the ledger's `decisions` (deferred ones are not decided yet).
    decisions: Vec<DecisionRecord>,
    report: PassReport,
    deferrals: &'a mut Deferrals,
    /// Finished mails (posted ones committed to the ledger) by where they go.
    dispose: HashMap<Disposition, Vec<u32>>,
    /// Mails not posted because the pass stopped.
    left: usize,
}

impl<'a> Tally<'a> {
    pub(crate) fn new(
        mb: &'a MailboxConfig,
        uid_validity: u32,
        deferrals: &'a mut Deferrals,
    ) -> Tally<'a> {
        Tally {
            mb,
            place: Location {
                mailbox: mb.name.clone(),
                folder: mb.folder.clone(),
                uid_validity,
                uid: 0,
            },
            decisions: Vec::new(),
            report: PassReport::default(),
            deferrals,
            dispose: HashMap::new(),
            left: 0,
        }
    }

    /// Logs, counts and queues one finished mail.
    pub(crate) fn record(&mut self, h: Handled) {
        if h.outcome == Outcome::Deferred(DeferCause::Stopping) {
            tracing::debug!(uid = h.uid, ticket = h.ticket, "not posted: stopping");
            self.left += 1;
            return;
        }
        let name = h.outcome.name();
        let reason = h.outcome.reason();
        let message_id = h.about.as_ref().and_then(|a| a.id.message_id.as_deref());
        tracing::info!(mailbox = %self.mb.name, uid = h.uid, message_id = message_id.unwrap_or(""),
            ticket = h.ticket, outcome = name, reason = %reason, "mail handled");
        metrics::mail_handled(&self.mb.name, name);
        *self.report.counts.entry(name).or_default() += 1;
        match h.outcome {
            Outcome::Deferred(cause) => {
                if let Some(at) = h
                    .retry_at
                    .or_else(|| Instant::now().checked_add(cause.wait()))
                {
                    self.deferrals.insert(h.uid, at);
                }
                if cause.is_api_failure() {
                    self.report.api_failures += 1;
                }
            }
            outcome => {
                if let Some(target) = outcome.disposition(self.mb) {
                    self.dispose.entry(target.clone()).or_default().push(h.uid);
                }
                let (mail, sender, subject) = match h.about {
                    Some(a) => (Some(a.id), a.sender, a.subject),
                    None => (None, None, String::new()),
                };
                self.decisions.push(DecisionRecord {
                    decided: unix_now(),
                    place: Location {
                        uid: h.uid,
                        ..self.place.clone()
                    },
                    mail,
                    sender,
                    subject,
                    ticket: h.ticket,
                    outcome: name.to_string(),
                    reason,
                    replaces: outcome != Outcome::Duplicate,
                });
            }
        }
    }

    /// Decisions noted and not yet taken.
    pub(crate) fn decided(&self) -> usize {
        self.decisions.len()
    }

    /// The decisions noted since the last call, for one ledger write.
    pub(crate) fn take_decisions(&mut self) -> Vec<DecisionRecord> {
        std::mem::take(&mut self.decisions)
    }

    /// Mails waiting for their disposition.
    pub(crate) fn to_dispose(&self) -> usize {
        self.dispose.values().map(Vec::len).sum()
    }

    /// The dispositions gathered so far, by target.
    pub(crate) fn take_dispositions(&mut self) -> HashMap<Disposition, Vec<u32>> {
        std::mem::take(&mut self.dispose)
    }

    /// Mails left unposted because the pass stopped.
    pub(crate) fn left(&self) -> usize {
        self.left
    }

    pub(crate) fn into_report(self) -> PassReport {
        let mut report = self.report;
        report.retry_at = self.deferrals.values().min().copied();
        report
    }
}
