//! Posting decided replies: per ticket in date order, tickets concurrently, each mail once.
//!
//! A pass hands its mails over batch by batch ([`Delivery::submit`]) while earlier
//! batches are still being posted. The replies to one ticket form a chain across
//! batches (each waits for the one before it), so a ticket's order holds without any
//! batch having to finish first, and `thulium.concurrency` slots stay busy.
//!
//! Intent before action: a batch is recorded `pending` in the ledger (one commit) before
//! any of its POSTs starts; [`Delivery::collect`] records how each mail ended (one
//! commit) before handing it back to be disposed. A mail whose earlier POST may have
//! reached the helpdesk unseen is read back from the ticket before it is posted again.

use super::bridge::Bridge;
use super::claims::{self, Claim};
use super::defer_cause::DeferCause;
use super::handled::{About, Handled};
use super::outcome::Outcome;
use crate::config::VerifySender;
use crate::daemon::api_turns::WriteTurn;
use crate::ledger::{Attempt, Begun, EntryState, Finish, Location, PostedReply, unix_now};
use crate::mail::MailId;
use crate::mail::authentication::AuthVerdict;
use crate::mail::decide::CustomerResponse;
use crate::thulium::read_back::{self, OtherPost, Sent};
use crate::thulium::{ApiError, Backoff, Ticket};
use chrono::{DateTime, FixedOffset};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Tries of one POST within a pass before the mail waits for a later pass.
const TRIES_PER_PASS: u32 = 3;
/// A `Retry-After` longer than this is not slept through within a pass.
const LONGEST_IN_PASS_WAIT: Duration = Duration::from_secs(5);

/// A reply `decide` wants posted.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub uid: u32,
    pub id: MailId,
    pub from: Option<String>,
    /// As decoded, for `ledger list`.
    pub subject: String,
    pub ticket: u64,
    pub request: CustomerResponse,
    pub sent: Option<DateTime<FixedOffset>>,
    /// Message-IDs of In-Reply-To and References (the thread it answers).
    pub references: Vec<String>,
    /// The receiving server's verdict on the From domain.
    pub authentication: AuthVerdict,
    /// A person moved it into the approve folder: no sender check.
    pub approved: bool,
    /// An agent forwarded it (this is the forwarded mail): no sender check.
    pub forwarded: bool,
}

/// A mail done in its task, its ledger record and claim still to settle: its
/// [`Handled`] with what only the delivery needs, above all the claim, which copies wait
/// on and which is released only after the ledger commit in [`Delivery::collect`].
struct Done {
    handled: Handled,
    /// The ticket whose chain it was in.
    ticket: u64,
    /// Its request body's bytes, counted in `body_bytes` while its task ran.
    body_len: usize,
    /// This try began its ledger entry, which learns the outcome (not in a dry run, nor
    /// for a mail the ledger or a copy had decided).
    entry: bool,
    claim: Option<Claim>,
}

/// The mails of one pass on their way to the API.
pub(crate) struct Delivery {
    bridge: Arc<Bridge>,
    /// The folder being handled; each mail adds its UID.
    place: Location,
    tasks: JoinSet<Done>,
    /// Outcomes known without a task (held tickets, duplicates), not yet collected.
    ready: Vec<Done>,
    /// The last link of each ticket's chain while it has mails in `tasks`.
    chains: HashMap<u64, Chain>,
    /// Request body bytes of the mails in `tasks`.
    body_bytes: usize,
    /// Cancelled when the pass stops: no POST starts any more; those under way finish.
    stop: CancellationToken,
}

struct Chain {
    /// Resolves when the ticket's latest submitted mail is done. A reply that has to
    /// wait holds the ticket ([`super::ticket_holds`]), so the ones after it wait too.
    tail: oneshot::Receiver<()>,
    /// Its mails still in `tasks`.
    unfinished: usize,
}

impl Delivery {
    pub(crate) fn new(bridge: &Arc<Bridge>, place: Location, stop: CancellationToken) -> Delivery {
        Delivery {
            bridge: Arc::clone(bridge),
            place,
            tasks: JoinSet::new(),
            ready: Vec::new(),
            chains: HashMap::new(),
            body_bytes: 0,
            stop,
        }
    }

    /// Mails handed over whose outcome was not yet collected.
    pub(crate) fn unfinished(&self) -> usize {
        self.tasks.len() + self.ready.len()
    }

    /// Request body bytes held by the mails still being posted.
    pub(crate) fn bytes_in_flight(&self) -> usize {
        self.body_bytes
    }

    /// Takes over a batch: records it pending in the ledger, then starts posting it,
    /// each ticket's replies oldest first and after the ones submitted before.
    pub(crate) async fn submit(&mut self, mails: Vec<Outgoing>) {
        let bridge = Arc::clone(&self.bridge);
        let mut leaders = Vec::with_capacity(mails.len());
        for mail in mails {
            if bridge.holds().held_until(mail.ticket).is_some() {
                let cause = DeferCause::EarlierReplyWaiting {
                    ticket: mail.ticket,
                };
                self.ready
                    .push(Done::untouched(mail, Outcome::Deferred(cause)));
                continue;
            }
            match bridge.claim(&mail.id) {
                Ok(claim) => leaders.push((mail, claim)),
                Err(claimant) => {
                    let span = tracing::info_span!("mail", uid = mail.uid, ticket = mail.ticket);
                    self.tasks.spawn(
                        async move {
                            let outcome = claims::outcome_for_copy(claimant).await;
                            Done::untouched(mail, outcome)
                        }
                        .instrument(span),
                    );
                }
            }
        }
        if leaders.is_empty() {
            return;
        }
        let begun: Vec<Option<Begun>> = if bridge.dry_run() {
            // Nothing is written; what the ledger knows still shows (duplicates).
            let mut known = Vec::with_capacity(leaders.len());
            for (mail, _) in &leaders {
                let entry = bridge.ledger().find(&mail.id).await.ok().flatten();
                known.push(
                    entry
                        .filter(|e| e.state != EntryState::Pending)
                        .map(|entry| Begun {
                            entry,
                            outcome_unknown: false,
                            previous_attempt_ms: None,
                        }),
                );
            }
            known
        } else {
            let attempts = leaders
                .iter()
                .map(|(mail, _)| Attempt {
                    id: mail.id.clone(),
                    ticket: mail.ticket,
                    body_hash: crate::thulium::body_hash(&mail.request),
                    text_hash: read_back::text_hash(&mail.request),
                    date: mail.request.date.clone(),
                    location: self.location(mail.uid),
                    new_ticket_from: None,
                })
                .collect();
            match bridge.ledger().begin(attempts).await {
                Ok(begun) => begun.into_iter().map(Some).collect(),
                Err(e) => {
                    let cause = DeferCause::from(e);
                    for (mail, claim) in leaders {
                        let mut done = Done::untouched(mail, Outcome::Deferred(cause.clone()));
                        done.claim = Some(claim);
                        self.ready.push(done);
                    }
                    return;
                }
            }
        };
        let mut by_ticket: BTreeMap<u64, Vec<(Outgoing, Claim, Option<Begun>)>> = BTreeMap::new();
        for ((mail, claim), begun) in leaders.into_iter().zip(begun) {
            match begun.as_ref().map(|b| b.entry.state) {
                Some(EntryState::Posted) => {
                    let mut done = Done::untouched(mail, Outcome::Duplicate);
                    done.claim = Some(claim);
                    self.ready.push(done);
                }
                Some(EntryState::Failed) => {
                    // Failed here before; the crash came before its disposal.
                    let reason = begun
                        .and_then(|b| b.entry.reason)
                        .unwrap_or_else(|| "failed before".into());
                    let mut done = Done::untouched(mail, Outcome::Failed(reason));
                    done.claim = Some(claim);
                    self.ready.push(done);
                }
                _ => by_ticket
                    .entry(mail.ticket)
                    .or_default()
                    .push((mail, claim, begun)),
            }
        }
        for (_, mut replies) in by_ticket {
            replies.sort_by_key(|(m, _, _)| (m.sent, m.uid));
            for (mail, claim, begun) in replies {
                self.spawn(mail, claim, begun);
            }
        }
    }

    fn location(&self, uid: u32) -> Location {
        Location {
            uid,
            ..self.place.clone()
        }
    }

    /// Starts one mail's task behind the ticket's previous one.
    fn spawn(&mut self, mail: Outgoing, claim: Claim, begun: Option<Begun>) {
        let ticket = mail.ticket;
        let (next, tail) = oneshot::channel();
        let previous = match self.chains.get_mut(&ticket) {
            Some(chain) => {
                chain.unfinished += 1;
                Some(std::mem::replace(&mut chain.tail, tail))
            }
            None => {
                self.chains.insert(
                    ticket,
                    Chain {
                        tail,
                        unfinished: 1,
                    },
                );
                None
            }
        };
        self.body_bytes += mail.request.body.len();
        let bridge = Arc::clone(&self.bridge);
        let stop = self.stop.clone();
        let mailbox = self.place.mailbox.clone();
        let span = tracing::info_span!("mail", uid = mail.uid, ticket);
        let task = async move {
            let holds = bridge.holds();
            if let Some(rx) = previous
                && rx.await.is_err()
            {
                // The earlier reply's task ended unexpectedly: it still comes first.
                holds.hold(ticket, Duration::ZERO);
            }
            let unknown = begun.as_ref().is_some_and(|b| b.outcome_unknown);
            let tried = if stop.is_cancelled() {
                handled(&mail, Outcome::Deferred(DeferCause::Stopping), unknown)
            } else if holds.held_until(ticket).is_some() {
                let cause = DeferCause::EarlierReplyWaiting { ticket };
                handled(&mail, Outcome::Deferred(cause), unknown)
            } else {
                let mut one = One {
                    bridge: &bridge,
                    mailbox: &mailbox,
                    mail: &mail,
                    begun: begun.as_ref(),
                    stop: &stop,
                };
                one.deliver().await
            };
            if let Outcome::Deferred(cause) = &tried.outcome
                && cause.holds_ticket()
            {
                holds.hold(ticket, cause.wait());
            }
            let _ = next.send(());
            Done {
                handled: tried,
                ticket,
                body_len: mail.request.body.len(),
                entry: begun.is_some(),
                claim: Some(claim),
            }
        };
        self.tasks.spawn(task.instrument(span));
    }

    /// Waits until some mail has finished (at once if one has). Cancel-safe.
    pub(crate) async fn wait(&mut self) {
        if !self.ready.is_empty() {
            return;
        }
        if let Some(result) = self.tasks.join_next().await {
            self.task_ended(result);
        }
    }

    /// The mails finished since the last call, their outcomes committed to the ledger
    /// (one commit) and their copies told: safe to dispose.
    pub(crate) async fn collect(&mut self) -> Vec<Handled> {
        while let Some(result) = self.tasks.try_join_next() {
            self.task_ended(result);
        }
        let mut done = std::mem::take(&mut self.ready);
        if done.is_empty() {
            return Vec::new();
        }
        let records: Vec<Finish> = done
            .iter()
            .filter(|d| d.entry)
            .filter_map(|d| d.handled.ledger_record(self.location(d.handled.uid)))
            .collect();
        if !self.bridge.dry_run()
            && let Err(e) = self.bridge.ledger().finish(records).await
        {
            // Nothing of this group is disposed: a posted mail stays `pending` with its
            // outcome unknown, so the next pass reads it back instead of posting again.
            tracing::error!("ledger write failed after delivering: {e}");
            let cause = DeferCause::from(e);
            for d in done.iter_mut().filter(|d| d.entry) {
                d.handled.outcome = Outcome::Deferred(cause.clone());
            }
        }
        let now = Instant::now();
        let holds = self.bridge.holds();
        // A ticket is held until its deferred replies are due, all at that one instant:
        // a later reply (due at once behind an earlier one) must never be due alone, a
        // moment before the earlier reply, and go first.
        for d in &done {
            if let Outcome::Deferred(cause) = &d.handled.outcome
                && cause.holds_ticket()
            {
                holds.hold(d.ticket, cause.wait());
            }
        }
        done.into_iter()
            .map(|d| {
                if let Some(claim) = d.claim {
                    claim.release(&d.handled.outcome);
                }
                let retry_at = match &d.handled.outcome {
                    Outcome::Deferred(DeferCause::Stopping) => None,
                    Outcome::Deferred(cause) => {
                        let own = now.checked_add(cause.wait()).unwrap_or(now);
                        Some(holds.held_until(d.ticket).unwrap_or(own).max(own))
                    }
                    _ => None,
                };
                Handled {
                    retry_at,
                    ..d.handled
                }
            })
            .collect()
    }

    fn task_ended(&mut self, result: Result<Done, tokio::task::JoinError>) {
        let done = match result {
            Ok(done) => done,
            Err(e) => {
                // The mail stays where it is; its ledger entry says pending, its claim
                // was dropped with the task.
                tracing::error!("delivery task failed: {e}");
                return;
            }
        };
        if done.claim.is_some() {
            self.body_bytes = self.body_bytes.saturating_sub(done.body_len);
            if let Some(chain) = self.chains.get_mut(&done.ticket) {
                chain.unfinished -= 1;
                if chain.unfinished == 0 {
                    self.chains.remove(&done.ticket);
                }
            }
        }
        self.ready.push(done);
    }
}

impl Done {
    /// A mail decided without a POST and without a ledger record of its own.
    fn untouched(mail: Outgoing, outcome: Outcome) -> Done {
        Done {
            handled: handled(&mail, outcome, false),
            ticket: mail.ticket,
            body_len: mail.request.body.len(),
            entry: false,
            claim: None,
        }
    }
}

/// What became of a reply; nothing counted against its attempts.
fn handled(mail: &Outgoing, outcome: Outcome, outcome_unknown: bool) -> Handled {
    let about = About {
        id: mail.id.clone(),
        sender: mail.from.clone(),
        subject: mail.subject.clone(),
    };
    Handled {
        outcome_unknown,
        ..Handled::new(mail.uid, Some(about), Some(mail.ticket), outcome)
    }
}

/// Why a ticket is read: what a failed read means for the mail.
#[derive(Clone, Copy)]
enum ReadFor {
    /// Whether an earlier POST with an unknown outcome is on the ticket.
    ReadBack,
    /// Who the ticket's customer is.
    VerifySender,
}

/// One reply on its way: verify, read back if needed, post with retries.
struct One<'a> {
    bridge: &'a Arc<Bridge>,
    mailbox: &'a str,
    mail: &'a Outgoing,
    /// What the ledger knew; `None` in a dry run.
    begun: Option<&'a Begun>,
    stop: &'a CancellationToken,
}

impl One<'_> {
    async fn deliver(&mut self) -> Handled {
        let tried = self.attempt().await;
        self.bounded_by_max_age(tried)
    }

    /// Waiting on the API (an outage, refused credentials, a read-back that fails) is
    /// bounded by `max_age` alone, whichever way the mail waited: a probe's failure, a
    /// turn skipped while the API is down or posting is paused.
    fn bounded_by_max_age(&self, tried: Handled) -> Handled {
        let (Outcome::Deferred(cause), Some(b)) = (&tried.outcome, self.begun) else {
            return tried;
        };
        if !cause.is_api_failure() {
            return tried;
        }
        let attempts = b.entry.attempts + u32::from(tried.counted);
        match self.bridge.given_up(attempts, b.entry.age()) {
            Some(given_up) => Handled {
                outcome: Outcome::Failed(format!("{given_up} (last: {cause})")),
                ..tried
            },
            None => tried,
        }
    }

    async fn attempt(&mut self) -> Handled {
        let mut unknown = self.begun.is_some_and(|b| b.outcome_unknown);
        let mail = self.mail;
        let not_posted = |outcome, unknown| handled(mail, outcome, unknown);
        let posted = self.posted_outcome();
        if let Some(done) = self.settled_before_posting(&posted, unknown).await {
            return done;
        }
        let api = self.bridge.api_health();
        let backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
        let mut tries = 0;
        let mut first_try_ms = None;
        loop {
            if self.stop.is_cancelled() {
                return not_posted(Outcome::Deferred(DeferCause::Stopping), unknown);
            }
            if let Some(cause) = self.bridge.credentials_paused() {
                return not_posted(Outcome::Deferred(cause), unknown);
            }
            if unknown {
                match self.read_back().await {
                    Ok(true) => return not_posted(posted, false),
                    Ok(false) => unknown = false,
                    Err(outcome) => return not_posted(outcome, true),
                }
            }
            if !api.may_try() {
                let cause = DeferCause::ApiUnavailable {
                    reason: "the API is down; waiting for it to recover".into(),
                    retry_after: None,
                };
                return not_posted(Outcome::Deferred(cause), unknown);
            }
            tries += 1;
            first_try_ms.get_or_insert_with(crate::ledger::unix_now_ms);
            let turn = self.bridge.write_turn().await;
            // Another instance may lead the mailbox by now (a shared ledger): it posts.
            if self.stop.is_cancelled() || !self.bridge.leads(self.mailbox) {
                return not_posted(Outcome::Deferred(DeferCause::Stopping), unknown);
            }
            // Replies that waited for a slot while another was refused must not go out.
            if let Some(cause) = self.bridge.credentials_paused() {
                return not_posted(Outcome::Deferred(cause), unknown);
            }
            let post_began = unix_now();
            let result = self.post(&turn).await;
            // The pause is set before the slot is given up.
            let refused = match &result {
                Err(ApiError::Credentials { status, message }) => {
                    Some(self.credentials_refused(*status, message))
                }
                _ => None,
            };
            drop(turn);
            if let Some(outcome) = refused {
                return not_posted(outcome, unknown);
            }
            if let Some(sent) = self.lease_lost(&result) {
                return not_posted(Outcome::Deferred(DeferCause::Stopping), unknown || sent);
            }
            match result {
                Ok(()) => {
                    api.post_succeeded();
                    self.learn_clock(post_began).await;
                    return not_posted(posted, false);
                }
                Err(ApiError::Transient {
                    reason,
                    retry_after,
                    sent,
                }) => {
                    unknown |= sent;
                    api.request_failed(&reason, false);
                    let wait = backoff.delay(tries, retry_after);
                    let long_wait = retry_after.is_some_and(|r| r > LONGEST_IN_PASS_WAIT);
                    if tries >= TRIES_PER_PASS || long_wait || api.down().is_some() {
                        let cause = DeferCause::ApiUnavailable {
                            reason,
                            retry_after,
                        };
                        return self.deferred_after_tries(cause, unknown, first_try_ms);
                    }
                    tracing::debug!(ticket = self.mail.ticket, uid = self.mail.uid, %reason, ?wait,
                        "transient API error, retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(ApiError::Permanent { status, message }) => {
                    let reason = format!(
                        "API rejected the reply to ticket {} (HTTP {status}): {message}",
                        self.mail.ticket
                    );
                    return not_posted(Outcome::Failed(reason), unknown);
                }
                Err(ApiError::Credentials { status, message }) => {
                    return not_posted(self.credentials_refused(status, &message), unknown);
                }
            }
        }
    }

    /// The POST, which asks once more as it leaves whether this instance still leads
    /// the mailbox (`Bridge::gate`).
    async fn post(&self, turn: &WriteTurn<'_>) -> Result<(), ApiError> {
        #[cfg(feature = "test-crash")]
        super::test_crash::before_post(&self.mail.request.body).await;
        let gate = self.bridge.gate(self.mailbox);
        turn.post_customer_response(self.mail.ticket, &self.mail.request, &gate)
            .await
    }

    /// A POST withheld as it left, or failed after the lease ran out: the new leader
    /// posts it (reading the ticket back first if this one may have arrived). Whether
    /// it may have arrived, if so.
    fn lease_lost(&self, result: &Result<(), ApiError>) -> Option<bool> {
        let Err(ApiError::Transient { sent, reason, .. }) = result else {
            return None;
        };
        if self.bridge.leads(self.mailbox) {
            return None;
        }
        tracing::warn!(mailbox = self.mailbox, ticket = self.mail.ticket, uid = self.mail.uid, %reason,
            "not posted: this instance's lease on the mailbox ran out before the reply left; whoever leads it now posts it");
        Some(*sent)
    }

    /// What is decided before any POST: a stranger held by the sender check (a person's
    /// vouching skips it), or a dry run's "would post".
    async fn settled_before_posting(&mut self, posted: &Outcome, unknown: bool) -> Option<Handled> {
        if self.bridge.verify_sender() != VerifySender::Off
            && !self.mail.approved
            && !self.mail.forwarded
            && let Err(outcome) = self.verify_sender().await
        {
            return Some(handled(self.mail, outcome, unknown));
        }
        if self.bridge.dry_run() {
            let m = self.mail;
            tracing::info!(ticket = m.ticket, uid = m.uid, body_type = ?m.request.body_type,
                date = %m.request.date, body = %m.request.body, "dry run: would post");
            return Some(handled(m, posted.clone(), false));
        }
        None
    }

    /// What a post of this mail counts as: a forward's, an approved mail's or a reply's.
    fn posted_outcome(&self) -> Outcome {
        if self.mail.forwarded {
            Outcome::Forwarded
        } else if self.mail.approved {
            Outcome::Approved
        } else {
            Outcome::Posted
        }
    }

    /// The pass's tries are spent: the failure counts only if another POST succeeded
    /// since this mail's previous attempt (its first try in this pass, if none before).
    fn deferred_after_tries(
        &self,
        cause: DeferCause,
        unknown: bool,
        first_try_ms: Option<u64>,
    ) -> Handled {
        let since = self
            .begun
            .and_then(|b| b.previous_attempt_ms)
            .or(first_try_ms)
            .unwrap_or(0);
        let counted = self.bridge.api_health().post_succeeded_after(since);
        self.deferred(cause, unknown, counted)
    }

    /// A transient failure: deferred, or given up on once it has counted
    /// `max_attempts` times or the mail is older than `max_age`.
    fn deferred(&self, cause: DeferCause, unknown: bool, counted: bool) -> Handled {
        let (attempts, age) = match self.begun {
            Some(b) => (b.entry.attempts + u32::from(counted), b.entry.age()),
            None => (u32::from(counted), Duration::ZERO),
        };
        let outcome = match self.bridge.given_up(attempts, age) {
            Some(given_up) => Outcome::Failed(format!("{given_up} (last: {cause})")),
            None => Outcome::Deferred(cause),
        };
        Handled {
            counted,
            ..handled(self.mail, outcome, unknown)
        }
    }

    /// 401/403: posting pauses for every mailbox; the mail waits, its attempts untouched.
    fn credentials_refused(&self, status: u16, message: &str) -> Outcome {
        Outcome::Deferred(self.bridge.credentials_refused(status, message))
    }

    /// Reads the ticket back: is this reply already among its messages?
    async fn read_back(&self) -> Result<bool, Outcome> {
        let mail = self.mail;
        let ticket = self.read_ticket(ReadFor::ReadBack).await?;
        let others = self
            .bridge
            .ledger()
            .posted_with_same_text(mail.ticket, &read_back::text_hash(&mail.request), &mail.id)
            .await
            .map_err(|e| Outcome::Deferred(e.into()))?
            .into_iter()
            .map(|(date_sent, first_seen, posted)| OtherPost {
                date_sent,
                first_seen,
                posted,
            })
            .collect::<Vec<_>>();
        let first_attempt = self
            .begun
            .map(|b| b.entry.unknown_since.unwrap_or(b.entry.first_seen))
            .unwrap_or_else(unix_now);
        self.bridge
            .owners()
            .remember(mail.ticket, ticket.from.as_deref());
        let clock = self.bridge.clock();
        clock.learn(self.bridge.ledger(), &ticket, None).await;
        let (matching, others) = clock.with(|clock| {
            let sent = Sent {
                request: &mail.request,
                first_attempt,
                now: unix_now(),
                clock,
            };
            read_back::stored(&ticket, &sent, &others)
        });
        let found = matching > others;
        if found {
            self.bridge.api_health().works();
        }
        tracing::info!(
            ticket = mail.ticket,
            uid = mail.uid,
            found,
            matching,
            accounted_for = others,
            "outcome of an earlier post was unknown; read the ticket back"
        );
        Ok(found)
    }

    /// While little is known of the API's clock: reads the ticket just posted to, where
    /// this reply shows how its `created_at` was written. A failed read is only missed.
    async fn learn_clock(&self, post_began: u64) {
        let clock = self.bridge.clock();
        let Some(_turn) = clock.read_turn() else {
            return;
        };
        let mail = self.mail;
        let ticket = self.bridge.read_turn().await.get_ticket(mail.ticket).await;
        match ticket {
            Ok(ticket) => {
                let posted = PostedReply {
                    text_hash: read_back::text_hash(&mail.request),
                    date_sent: mail.request.date.clone(),
                    from: post_began,
                    to: unix_now(),
                };
                clock
                    .learn(self.bridge.ledger(), &ticket, Some(posted))
                    .await;
            }
            Err(e) => tracing::debug!(
                ticket = mail.ticket,
                "{e}; the API's clock is learned later"
            ),
        }
    }

    /// `GET tickets/{id}`, noting what it says about the API's health; a failure as
    /// what it means for the mail, which depends on why the ticket was read.
    async fn read_ticket(&self, why: ReadFor) -> Result<Ticket, Outcome> {
        let result = self
            .bridge
            .read_turn()
            .await
            .get_ticket(self.mail.ticket)
            .await;
        let ticket = self.mail.ticket;
        result.map_err(|e| match (e, why) {
            (ApiError::Credentials { status, message }, _) => {
                self.credentials_refused(status, &message)
            }
            (ApiError::Permanent { status, message }, ReadFor::ReadBack) => Outcome::Failed(
                format!("reading ticket {ticket} back failed (HTTP {status}): {message}"),
            ),
            (ApiError::Permanent { status, message }, ReadFor::VerifySender) => Outcome::Failed(
                format!("API rejected reading ticket {ticket} (HTTP {status}): {message}"),
            ),
            (e @ ApiError::Transient { .. }, why) => {
                let reason = e.to_string();
                self.bridge.api_health().request_failed(&reason, false);
                Outcome::Deferred(match why {
                    ReadFor::ReadBack => DeferCause::ReadBackFailed { reason },
                    ReadFor::VerifySender => DeferCause::ApiUnavailable {
                        reason: format!("reading the ticket for verify_sender failed: {reason}"),
                        retry_after: None,
                    },
                })
            }
        })
    }

    /// A sender `verify_sender` does not know: refused when it enforces, else said.
    fn unverified(&self, reason: String) -> Result<(), Outcome> {
        match self.bridge.verify_sender() {
            VerifySender::Enforce => Err(Outcome::Unverified(reason)),
            _ => {
                tracing::warn!("{reason}; posting anyway (verify_sender = \"warn\")");
                Ok(())
            }
        }
    }

    /// `verify_sender`: the mail must come from the ticket's customer, or belong to the
    /// ticket's thread (its In-Reply-To/References name a mail posted to that ticket: a
    /// colleague replying in the thread).
    async fn verify_sender(&self) -> Result<(), Outcome> {
        let mail = self.mail;
        // A forged From is no customer: only the receiving server's verdict counts.
        if let AuthVerdict::Fail(why) = &mail.authentication {
            let reason = format!(
                "From {} is not authenticated by the receiving server: {why}",
                mail.from.as_deref().unwrap_or("")
            );
            return self.unverified(reason);
        }
        let owners = self.bridge.owners();
        let owner = match owners.get(mail.ticket) {
            Some(owner) => owner,
            None => {
                let ticket = self.read_ticket(ReadFor::VerifySender).await?;
                owners.remember(mail.ticket, ticket.from.as_deref());
                let clock = self.bridge.clock();
                if clock.wants_more() {
                    clock.learn(self.bridge.ledger(), &ticket, None).await;
                }
                ticket.from.map(|f| f.trim().to_ascii_lowercase())
            }
        };
        let sender = mail.from.as_deref().unwrap_or("");
        if owner.as_deref() == Some(sender) || self.in_thread().await {
            return Ok(());
        }
        let reason = format!(
            "sender {sender} is not the ticket's customer ({}) and the mail answers no mail posted to ticket {}",
            owner.as_deref().unwrap_or("unknown"),
            mail.ticket
        );
        self.unverified(reason)
    }

    /// Whether the mail's In-Reply-To/References name a mail posted to the same ticket.
    async fn in_thread(&self) -> bool {
        let ledger = self.bridge.ledger();
        for id in &self.mail.references {
            if ledger
                .tickets_for_message_id(id)
                .await
                .is_ok_and(|tickets| tickets.contains(&self.mail.ticket))
            {
                return true;
            }
        }
        false
    }
}
