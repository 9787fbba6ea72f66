//! One pass over one mailbox: candidates -> sizes -> fetch -> decide -> deliver -> dispose.
//!
//! A pipeline over one IMAP session: while the replies of earlier batches are being
//! posted, the next batch is downloaded and decided; finished mails are disposed in
//! groups (a few IMAP commands per group, after their ledger commit). Memory stays
//! bounded whatever the number of candidates: their sizes are read in chunks, raw mails
//! one batch at a time, and only a bounded amount of decided mail waits for the API.

use super::bridge::Bridge;
use super::defer_cause::DeferCause;
use super::delivery::{Delivery, Outgoing};
use super::handled::{About, Handled};
use super::new_tickets::{self, NewTicketMail};
use super::outcome::Outcome;
use super::poison::{self, Read, Reading, ToRead};
use super::tally::{Deferrals, PassReport, Tally};
use crate::config::{Disposition, MailboxConfig};
use crate::imap::{ImapError, MailMeta, MailSession, RawMail};
use crate::ledger::Location;
use crate::mail::decide::Action;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

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
/// Decisions are written once this many have gathered: they wait for nothing, and a
/// few hundred rows are little memory (5,000 held until their disposal were 5 MiB).
const DECISIONS_GROUP: usize = 500;

/// The bridge's own keywords, and whether `\Seen` marks done mails.
fn own_marks(mb: &MailboxConfig) -> (Vec<&str>, bool) {
    let all = mb.dispositions();
    let keywords = all
        .iter()
        .filter_map(|d| match d {
            Disposition::Flag(k) => Some(k.as_str()),
            _ => None,
        })
        .collect();
    (keywords, all.iter().any(|d| **d == Disposition::Seen))
}

/// One pass. `shutdown` stops fetching and posting; the POSTs under way finish first.
pub(crate) async fn run_pass(
    session: &mut MailSession,
    mb: &MailboxConfig,
    bridge: &Arc<Bridge>,
    deferrals: &mut Deferrals,
    shutdown: &CancellationToken,
) -> Result<PassReport, ImapError> {
    let (keywords, unseen_only) = own_marks(mb);
    let now = Instant::now();
    deferrals.retain(|_, at| *at > now);
    let uids: Vec<u32> = session
        .candidates(&keywords, unseen_only)
        .await?
        .into_iter()
        .filter(|uid| !deferrals.contains_key(uid))
        .collect();
    let mut tally = Tally::new(mb, session.uid_validity(), deferrals);
    if uids.is_empty() {
        return Ok(tally.into_report());
    }
    let place = Location {
        mailbox: mb.name.clone(),
        folder: mb.folder.clone(),
        uid_validity: session.uid_validity(),
        uid: 0,
    };
    // A child: a broken session stops this pass's posting without stopping the daemon.
    let stop = shutdown.child_token();
    let reading = Reading::open(bridge.state_dir(), &mb.name, bridge.host_name());
    let mut pass = Pass {
        session,
        bridge,
        delivery: Delivery::new(bridge, place.clone(), stop.clone()),
        stop,
        reading,
        approving: mb.approve_folder() == Some(mb.folder.as_str()),
        place,
    };
    let result = pass.run(&uids, &mut tally).await;
    if result.is_err() {
        pass.stop.cancel();
    }
    // Whatever happened, the POSTs under way are finished and recorded.
    while pass.delivery.unfinished() > 0 {
        pass.wait_some(&mut tally).await;
    }
    if tally.left() > 0 {
        tracing::info!(
            mails = tally.left(),
            "pass cut short: mails not posted yet are left for the next pass"
        );
    }
    // What was decided is true whether or not the disposal below happens.
    pass.record_decisions(&mut tally).await;
    result?;
    pass.dispose(&mut tally).await?;
    Ok(tally.into_report())
}

/// One pass in progress: the session, the delivery, and when to stop.
struct Pass<'a> {
    session: &'a mut MailSession,
    bridge: &'a Arc<Bridge>,
    delivery: Delivery,
    stop: CancellationToken,
    /// Which mail is being read, for the next start if this one dies reading it.
    reading: Reading,
    /// The folder being read (each mail adds its UID).
    place: Location,
    /// It is the approve folder: a person vouched for its mails.
    approving: bool,
}

impl Pass<'_> {
    async fn run(&mut self, uids: &[u32], tally: &mut Tally<'_>) -> Result<(), ImapError> {
        let max = self.bridge.max_message_size();
        for chunk in uids.chunks(META_CHUNK) {
            if self.stop.is_cancelled() {
                return Ok(());
            }
            let metas = self.session.meta(chunk).await?;
            let (oversize, metas): (Vec<MailMeta>, Vec<MailMeta>) = metas
                .into_iter()
                .partition(|m| m.size.is_none_or(|s| u64::from(s) > max.bytes()));
            for m in &oversize {
                let reason = match m.size {
                    Some(size) => {
                        format!("{size} bytes, over max_message_size ({max}); not downloaded")
                    }
                    None => format!(
                        "the server gave no size for it; taken as over max_message_size ({max}), not downloaded"
                    ),
                };
                tally.record(Handled::new(m.uid, None, None, Outcome::Failed(reason)));
            }
            for batch in batches(&metas) {
                // Room for one more batch: collect what the API finished meanwhile.
                record(self.delivery.collect().await, tally);
                while self.delivery.unfinished() > AHEAD_MAILS
                    || self.delivery.bytes_in_flight() > AHEAD_BYTES
                {
                    self.wait_some(tally).await;
                }
                if self.stop.is_cancelled() {
                    return Ok(());
                }
                if tally.to_dispose() >= DISPOSE_GROUP {
                    self.dispose(tally).await?;
                } else if tally.decided() >= DECISIONS_GROUP {
                    self.record_decisions(tally).await;
                }
                let uids: Vec<u32> = batch.iter().map(|m| m.uid).collect();
                // Held until the batch is decided: big mails in many mailboxes take turns.
                let Some(mut reading) = self.reading_permit(batch).await else {
                    return Ok(());
                };
                // One byte more than allowed tells a mail that grew past its announced size.
                let mails = self.session.fetch(&uids, max.bytes() + 1).await?;
                let (outgoing, mut new_tickets) = self.sort(mails, tally).await;
                // A new ticket's mail stays in memory while its attachments upload.
                for mail in &mut new_tickets {
                    let kib = kib(mail.raw.len() as u64).min(reading.num_permits() as u32);
                    mail.reading = reading.split(kib as usize);
                }
                drop(reading);
                self.delivery.submit(outgoing).await;
                for mail in new_tickets {
                    if self.stop.is_cancelled() {
                        return Ok(());
                    }
                    self.open_ticket(mail, tally).await;
                }
            }
        }
        Ok(())
    }

    /// Reads and decides each fetched mail: replies to post, mails to open as tickets;
    /// skipped and unreadable mails go straight to the tally.
    async fn sort(
        &self,
        mails: Vec<RawMail>,
        tally: &mut Tally<'_>,
    ) -> (Vec<Outgoing>, Vec<NewTicketMail>) {
        let mut outgoing = Vec::new();
        let mut new_tickets = Vec::new();
        let uids: Vec<u32> = mails.iter().map(|m| m.uid).collect();
        let to_read = mails
            .into_iter()
            .map(|mail| ToRead {
                place: Location {
                    uid: mail.uid,
                    ..self.place.clone()
                },
                raw: mail.raw,
                internal_date: mail.internal_date,
            })
            .collect();
        let reads = poison::read_all(self.bridge, &self.reading, to_read).await;
        for (uid, read) in uids.into_iter().zip(reads) {
            let (decision, raw) = match read {
                Read::Decided(decision, raw) => (*decision, raw),
                Read::Poison {
                    reason,
                    quarantined,
                } => {
                    let outcome = if quarantined {
                        Outcome::Failed(reason)
                    } else {
                        Outcome::Deferred(DeferCause::SlowToRead { reason })
                    };
                    tally.record(Handled::new(uid, None, None, outcome));
                    continue;
                }
            };
            if let Some(f) = &decision.forward {
                tracing::info!(uid, agent = decision.from.as_deref().unwrap_or(""),
                    forwarded_from = %f.sender, forwarded_subject = %f.subject,
                    shape = %f.shape, note = %f.note,
                    "an agent's forward: the forwarded mail is handled, the agent's note is not posted");
            }
            let forwarded = decision.forward.is_some();
            match decision.action {
                Action::Post {
                    ticket,
                    request,
                    matched_by,
                } => {
                    tracing::debug!(uid, ticket, %matched_by, "ticket found");
                    outgoing.push(Outgoing {
                        uid,
                        id: decision.id,
                        from: decision.from,
                        subject: decision.subject,
                        ticket,
                        request,
                        sent: decision.sent,
                        references: decision.references,
                        authentication: decision.authentication,
                        approved: self.approving,
                        forwarded,
                    });
                }
                Action::NewTicket {
                    request,
                    attachments,
                } => new_tickets.push(NewTicketMail {
                    uid,
                    id: decision.id,
                    request: request.into(),
                    attachments,
                    authentication: decision.authentication,
                    references: decision.references,
                    // The bytes decide parsed: its attachments' offsets point into them.
                    raw: Arc::new(match decision.forward {
                        Some(f) => f.raw,
                        None => crate::mail::into_prepared(raw),
                    }),
                    forwarded,
                    reading: None,
                }),
                Action::Skip { kind, reason } => {
                    let about = About {
                        id: decision.id,
                        sender: decision.from,
                        subject: decision.subject,
                    };
                    let outcome = Outcome::skipped(kind, reason);
                    tally.record(Handled::new(uid, Some(about), None, outcome));
                }
            }
        }
        (outgoing, new_tickets)
    }

    /// The share of the process-wide reading budget a batch needs (all of it at most);
    /// none when the pass stops while waiting for it.
    async fn reading_permit(&self, batch: &[MailMeta]) -> Option<OwnedSemaphorePermit> {
        let bytes: u64 = batch.iter().map(|m| u64::from(m.size.unwrap_or(0))).sum();
        let wanted = self.bridge.reading_budget(kib(bytes));
        tokio::select! {
            permit = wanted => permit.ok().filter(|_| !self.stop.is_cancelled()),
            _ = self.stop.cancelled() => None,
        }
    }

    /// Opens a ticket from a mail (one at a time: they are few), claiming it first so a
    /// copy in another mailbox waits for this one.
    async fn open_ticket(&mut self, mail: NewTicketMail, tally: &mut Tally<'_>) {
        let handled = match self.bridge.claim(&mail.id) {
            Ok(claim) => {
                let handled = new_tickets::open(self.bridge, &self.place, mail).await;
                claim.release(&handled.outcome);
                handled
            }
            Err(claimant) => {
                new_tickets::handled(&mail, super::claims::outcome_for_copy(claimant).await)
            }
        };
        tally.record(handled);
    }

    /// Waits for some mail to finish (or for shutdown), then records what finished.
    async fn wait_some(&mut self, tally: &mut Tally<'_>) {
        tokio::select! {
            _ = self.delivery.wait() => {}
            _ = self.stop.cancelled(), if !self.stop.is_cancelled() => {}
        }
        record(self.delivery.collect().await, tally);
    }

    /// Writes the decisions gathered so far (one command of the grouped ledger writer).
    /// A failure costs only lines of `ledger list`, so it is said and not retried.
    async fn record_decisions(&self, tally: &mut Tally<'_>) {
        let decisions = tally.take_decisions();
        if self.bridge.dry_run() || decisions.is_empty() {
            return;
        }
        let mails = decisions.len();
        if let Err(e) = self.bridge.ledger().record_decisions(decisions).await {
            tracing::warn!(mails, "{e}; `ledger list` will not show these mails");
        }
    }

    /// One command (or two) per disposition for everything gathered so far, once their
    /// decisions are recorded.
    async fn dispose(&mut self, tally: &mut Tally<'_>) -> Result<(), ImapError> {
        self.record_decisions(tally).await;
        let dispose = tally.take_dispositions();
        if self.bridge.dry_run() {
            return Ok(());
        }
        if !self.bridge.leads(&self.place.mailbox) {
            // Its new leader reads them again: posted ones are found in the ledger.
            tracing::warn!(
                mails = dispose.len(),
                "no longer leading this mailbox: its mails are left where they are"
            );
            return Ok(());
        }
        for (disposition, uids) in &dispose {
            self.session.dispose(disposition, uids).await?;
        }
        Ok(())
    }
}

/// Records the mails the delivery finished.
fn record(done: Vec<Handled>, tally: &mut Tally<'_>) {
    for handled in done {
        tally.record(handled);
    }
}

/// Bytes as units of the reading budget: KiB, at least one, all of it at most.
fn kib(bytes: u64) -> u32 {
    (bytes.div_ceil(1024).min(u64::from(u32::MAX)) as u32)
        .clamp(1, super::bridge::READING_BUDGET_KIB)
}

/// Splits the candidates into download batches bounded by count and bytes.
fn batches(metas: &[MailMeta]) -> Vec<&[MailMeta]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, m) in metas.iter().enumerate() {
        let size = u64::from(m.size.unwrap_or(0));
        if i > start && (i - start >= BATCH_MAILS || bytes + size > BATCH_BYTES) {
            out.push(&metas[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < metas.len() {
        out.push(&metas[start..]);
    }
    out
}
