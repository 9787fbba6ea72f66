//! Posting decided replies: per ticket in date order, tickets concurrently, each mail once.
//!
//! A pass hands its mails over batch by batch ([`Delivery::submit`]) while earlier
//! batches are still being posted. The replies to one ticket form a chain across
//! batches (each waits for the one before it), so a ticket's order holds without any
//! batch having to finish first, and `thulium.concurrency` slots stay busy.
//!
//! Intent before action: mails are recorded `pending` in the ledger in groups of
//! [`INTENT_GROUP`] (one commit each), a group when its first POST is about to start
//! (and the next group meanwhile), so a POST never precedes its mail's commit and a
//! crash leaves few mails with an unknown outcome. Each group of finished mails is
//! recorded `posted` (one commit) before [`Delivery::finished`] hands it back to be
//! disposed. A mail found `pending` had an unknown outcome: the ticket is read back first.

use crate::bridge::Bridge;
use crate::config::VerifySender;
use crate::decide::CustomerResponse;
use crate::ledger::{Attempt, EntryState, PostedMail};
use crate::reconcile;
use crate::thulium::{ApiError, Backoff, Ticket};
use chrono::{DateTime, FixedOffset};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{OnceCell, oneshot};
use tokio::task::JoinSet;

/// Tries of one POST within a pass before the mail waits for a later pass.
const TRIES_PER_PASS: u32 = 3;
/// A `Retry-After` longer than this is not slept through within a pass.
const LONGEST_IN_PASS_WAIT: Duration = Duration::from_secs(30);
/// Mails recorded `pending` in one ledger commit.
pub const INTENT_GROUP: usize = 64;

/// A reply `decide` wants posted.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub uid: u32,
    pub key: String,
    pub message_id: Option<String>,
    pub from: Option<String>,
    pub ticket: u64,
    pub request: CustomerResponse,
    pub sent: Option<DateTime<FixedOffset>>,
}

/// What became of one reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivered {
    Posted,
    /// Already posted before (ledger or read back from the ticket): not posted again.
    Duplicate,
    /// `verify_sender = "enforce"` found a stranger.
    Ignored(String),
    /// Permanently rejected or given up on.
    Failed(String),
    /// Left where it is for a later pass.
    Deferred {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Not posted because the pass is stopping; left for the next one.
    Stopped,
}

/// The mails of one pass on their way to the API.
pub struct Delivery {
    bridge: Arc<Bridge>,
    mailbox: String,
    /// One task per mail being posted; each returns its mail and outcome.
    tasks: JoinSet<(Outgoing, Delivered)>,
    /// Outcomes known without posting (duplicates, give-ups, held back), not yet returned.
    ready: Vec<(Outgoing, Delivered)>,
    /// Mails another mailbox is delivering: their claim is not ours to release.
    not_claimed: Vec<(Outgoing, Delivered)>,
    /// The last link of each ticket's chain while it has mails in `tasks`.
    chains: HashMap<u64, Chain>,
    /// Tickets with a reply that must wait: their later replies wait too, this pass.
    held: HashMap<u64, String>,
    /// Request body bytes of the mails in `tasks`.
    body_bytes: usize,
    /// The intent group formed last, which the next one is linked from.
    last_intent: Option<Arc<Intent>>,
    /// Set when the pass stops: no POST starts any more.
    stopping: Arc<AtomicBool>,
}

/// A group of mails to record `pending` in one commit before the first of them is posted.
struct Intent {
    attempts: Mutex<Vec<Attempt>>,
    /// The commit's outcome, once made.
    committed: OnceCell<Result<(), String>>,
    /// The group after this one, committed ahead while this one is being posted.
    next: OnceLock<Arc<Intent>>,
    /// Whether the next group's commit was started from here.
    next_started: AtomicBool,
}

impl Intent {
    /// Commits this group if nobody did yet (and starts on the next one).
    async fn ready(&self, bridge: &Arc<Bridge>) -> Result<(), String> {
        if let Some(next) = self.next.get()
            && !self.next_started.swap(true, Ordering::Relaxed)
        {
            let (next, bridge) = (Arc::clone(next), Arc::clone(bridge));
            tokio::spawn(async move {
                let _ = next.commit(&bridge).await;
            });
        }
        self.commit(bridge).await
    }

    async fn commit(&self, bridge: &Arc<Bridge>) -> Result<(), String> {
        self.committed
            .get_or_init(|| async {
                // Kept until the commit is known to be made: a commit cut short must be
                // made again, in full, before any POST of the group.
                let attempts = self
                    .attempts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let ledger = bridge.ledger.clone();
                let result =
                    match tokio::task::spawn_blocking(move || ledger.begin_attempts(&attempts))
                        .await
                    {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(format!("ledger write failed: {e}")),
                        Err(e) => Err(format!("ledger write failed: {e}")),
                    };
                self.attempts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                result
            })
            .await
            .clone()
    }
}

struct Chain {
    /// Resolves when the ticket's latest submitted mail is done.
    tail: oneshot::Receiver<Link>,
    /// Its mails still in `tasks`.
    unfinished: usize,
}

/// What one reply hands on to the next reply to the same ticket.
#[derive(Default)]
struct Link {
    /// Why the following replies must wait, if an earlier one has to.
    held: Option<String>,
    /// The ticket as read for `verify_sender`, once per chain.
    ticket_info: Option<Ticket>,
}

impl Delivery {
    pub fn new(bridge: &Arc<Bridge>, mailbox: &str) -> Delivery {
        Delivery {
            bridge: Arc::clone(bridge),
            mailbox: mailbox.to_string(),
            tasks: JoinSet::new(),
            ready: Vec::new(),
            not_claimed: Vec::new(),
            chains: HashMap::new(),
            held: HashMap::new(),
            body_bytes: 0,
            last_intent: None,
            stopping: Arc::default(),
        }
    }

    /// From now on no POST starts; mails not yet posted come back [`Delivered::Stopped`].
    /// The POSTs under way finish (with their retries within this pass).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Mails handed over whose outcome was not yet returned by [`Delivery::finished`].
    pub fn unfinished(&self) -> usize {
        self.tasks.len() + self.ready.len() + self.not_claimed.len()
    }

    /// Request body bytes held by the mails still being posted.
    pub fn bytes_in_flight(&self) -> usize {
        self.body_bytes
    }

    /// Takes over a batch and starts posting it, each ticket's replies oldest first and
    /// after the ones submitted before.
    pub fn submit(&mut self, mails: Vec<Outgoing>) {
        let bridge = Arc::clone(&self.bridge);
        let max = &bridge.config.delivery;
        let mut todo: Vec<(Outgoing, bool)> = Vec::new();
        for mail in mails {
            if !bridge.claim(&mail.key) {
                let reason = "a copy is being delivered from another mailbox";
                self.hold(mail.ticket, reason);
                self.not_claimed.push((mail, deferred(reason, None)));
                continue;
            }
            if let Some(reason) = self.held.get(&mail.ticket) {
                let d = deferred(reason, None);
                self.ready.push((mail, d));
                continue;
            }
            match bridge.ledger.get(&mail.key) {
                Ok(Some(e)) if e.state == EntryState::Posted => {
                    self.ready.push((mail, Delivered::Duplicate))
                }
                Ok(Some(e)) if e.state == EntryState::Failed => {
                    let reason = e.reason.unwrap_or_else(|| "failed before".into());
                    self.ready.push((mail, Delivered::Failed(reason)))
                }
                Ok(Some(e)) if e.attempts >= max.max_attempts || e.age() >= max.max_age => {
                    let reason = format!(
                        "gave up after {} attempts over {}",
                        e.attempts,
                        humantime::format_duration(Duration::from_secs(e.age().as_secs()))
                    );
                    self.ready.push((mail, Delivered::Failed(reason)))
                }
                Ok(Some(_)) => todo.push((mail, true)),
                Ok(None) => todo.push((mail, false)),
                Err(e) => {
                    let reason = format!("ledger unreadable: {e}");
                    self.hold(mail.ticket, &reason);
                    self.ready.push((mail, deferred(&reason, None)));
                }
            }
        }

        let mut by_ticket: BTreeMap<u64, Vec<(Outgoing, bool)>> = BTreeMap::new();
        for (mail, unknown) in todo {
            by_ticket
                .entry(mail.ticket)
                .or_default()
                .push((mail, unknown));
        }
        let mut ordered = Vec::with_capacity(by_ticket.values().map(Vec::len).sum());
        for (_, mut group) in by_ticket {
            group.sort_by_key(|(m, _)| (m.sent, m.uid));
            ordered.extend(group);
        }
        // Groups follow the order in which the API slots are handed out (first come,
        // first served), so a group is committed about when its turn comes.
        let mut rest = ordered.into_iter().peekable();
        while rest.peek().is_some() {
            let group: Vec<(Outgoing, bool)> = rest.by_ref().take(INTENT_GROUP).collect();
            let intent = Arc::new(Intent {
                attempts: Mutex::new(
                    group
                        .iter()
                        .map(|(m, _)| Attempt {
                            key: m.key.clone(),
                            ticket: m.ticket,
                            body_hash: crate::thulium::body_hash(&m.request),
                            date: m.request.date.clone(),
                            mailbox: self.mailbox.clone(),
                            uid: m.uid,
                        })
                        .collect(),
                ),
                committed: OnceCell::new(),
                next: OnceLock::new(),
                next_started: AtomicBool::new(false),
            });
            if let Some(previous) = self.last_intent.replace(Arc::clone(&intent)) {
                let _ = previous.next.set(Arc::clone(&intent));
            }
            for (mail, unknown) in group {
                self.spawn(mail, unknown, Arc::clone(&intent));
            }
        }
    }

    /// Starts one mail's task behind the ticket's previous one.
    fn spawn(&mut self, mail: Outgoing, unknown_outcome: bool, intent: Arc<Intent>) {
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
        let stopping = Arc::clone(&self.stopping);
        self.tasks.spawn(async move {
            let mut link = match previous {
                None => Link::default(),
                Some(rx) => rx.await.unwrap_or_else(|_| Link {
                    held: Some(format!(
                        "an earlier reply to ticket {ticket} ended unexpectedly"
                    )),
                    ticket_info: None,
                }),
            };
            let outcome = match &link.held {
                _ if stopping.load(Ordering::Relaxed) => Delivered::Stopped,
                Some(reason) => deferred(reason, None),
                None => {
                    let gate = PostGate {
                        intent: &intent,
                        stopping: &stopping,
                    };
                    let ticket_info = &mut link.ticket_info;
                    deliver_one(&bridge, &mail, unknown_outcome, gate, ticket_info).await
                }
            };
            match (&outcome, &link.held) {
                (Delivered::Deferred { reason, .. }, None) => {
                    link.held = Some(format!(
                        "an earlier reply to ticket {ticket} is waiting ({reason})"
                    ))
                }
                (Delivered::Stopped, None) => link.held = Some("the pass is stopping".into()),
                _ => {}
            }
            let _ = next.send(link);
            (mail, outcome)
        });
    }

    /// Waits until some mail has finished (at once if one has). Cancel-safe.
    pub async fn wait(&mut self) {
        if !self.ready.is_empty() || !self.not_claimed.is_empty() {
            return;
        }
        if let Some(result) = self.tasks.join_next().await {
            self.task_ended(result);
        }
    }

    /// The mails finished since the last call, with `posted` committed to the ledger
    /// (one commit for the group) and failures recorded: safe to dispose.
    pub fn finished(&mut self) -> Vec<(Outgoing, Delivered)> {
        while let Some(result) = self.tasks.try_join_next() {
            self.task_ended(result);
        }
        let mut done = std::mem::take(&mut self.ready);
        self.record(&mut done);
        done.append(&mut self.not_claimed);
        done
    }

    fn task_ended(&mut self, result: Result<(Outgoing, Delivered), tokio::task::JoinError>) {
        let (mail, outcome) = match result {
            Ok(finished) => finished,
            Err(e) => {
                // The mail stays claimed and where it is; its ledger entry says pending.
                tracing::error!("delivery task failed: {e}");
                return;
            }
        };
        self.body_bytes = self.body_bytes.saturating_sub(mail.request.body.len());
        match &outcome {
            Delivered::Deferred { reason, .. } => self.hold(mail.ticket, reason),
            Delivered::Stopped => self.hold(mail.ticket, "the pass is stopping"),
            _ => {}
        }
        if let Some(chain) = self.chains.get_mut(&mail.ticket) {
            chain.unfinished -= 1;
            if chain.unfinished == 0 {
                self.chains.remove(&mail.ticket);
            }
        }
        self.ready.push((mail, outcome));
    }

    /// A reply to `ticket` must wait: so do the later ones handed over in this pass.
    fn hold(&mut self, ticket: u64, reason: &str) {
        self.held.entry(ticket).or_insert_with(|| {
            format!("an earlier reply to ticket {ticket} is waiting ({reason})")
        });
    }

    /// Ledger commits for a group of finished mails, then their claims are released.
    fn record(&self, done: &mut [(Outgoing, Delivered)]) {
        let bridge = &self.bridge;
        let posted: Vec<PostedMail> = done
            .iter()
            .filter(|(_, d)| *d == Delivered::Posted)
            .map(|(m, _)| PostedMail {
                key: m.key.clone(),
                message_id: m.message_id.clone(),
                ticket: m.ticket,
            })
            .collect();
        if !bridge.dry_run
            && !posted.is_empty()
            && let Err(e) = tokio::task::block_in_place(|| bridge.ledger.mark_posted(&posted))
        {
            // Not recorded: keep the mails; next pass finds them pending and reads the ticket back.
            tracing::error!("ledger write failed after posting: {e}");
            for (_, d) in done.iter_mut().filter(|(_, d)| *d == Delivered::Posted) {
                *d = deferred(&format!("posted, but the ledger write failed: {e}"), None);
            }
        }
        let failed: Vec<(&str, &str)> = done
            .iter()
            .filter_map(|(m, d)| match d {
                Delivered::Failed(reason) => Some((m.key.as_str(), reason.as_str())),
                _ => None,
            })
            .collect();
        if !bridge.dry_run
            && !failed.is_empty()
            && let Err(e) = tokio::task::block_in_place(|| bridge.ledger.mark_failed_many(&failed))
        {
            tracing::error!("ledger write failed while recording failures: {e}");
        }
        for (m, _) in done.iter() {
            bridge.release(&m.key);
        }
    }
}

fn deferred(reason: &str, retry_after: Option<Duration>) -> Delivered {
    Delivered::Deferred {
        reason: reason.to_string(),
        retry_after,
    }
}

/// What a POST must wait for, or be given up for.
struct PostGate<'a> {
    intent: &'a Intent,
    stopping: &'a AtomicBool,
}

async fn deliver_one(
    bridge: &Arc<Bridge>,
    mail: &Outgoing,
    mut unknown_outcome: bool,
    gate: PostGate<'_>,
    ticket_info: &mut Option<Ticket>,
) -> Delivered {
    let ticket = mail.ticket;
    let stopping = || gate.stopping.load(Ordering::Relaxed);
    if stopping() {
        return Delivered::Stopped;
    }
    if bridge.config.thulium.verify_sender != VerifySender::Off
        && let Err(d) = verify_sender(bridge, ticket, mail, ticket_info).await
    {
        return d;
    }
    if bridge.dry_run {
        tracing::info!(ticket, uid = mail.uid, body_type = ?mail.request.body_type, date = %mail.request.date,
            body = %mail.request.body, "dry run: would post");
        return Delivered::Posted;
    }
    let backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
    let mut tries = 0;
    loop {
        if stopping() {
            return Delivered::Stopped;
        }
        if !bridge.may_post() {
            return deferred(
                "posting is paused: the API refused our credentials",
                Some(crate::bridge::CREDENTIALS_PAUSE),
            );
        }
        if unknown_outcome {
            match already_posted(bridge, ticket, mail).await {
                // Posted by the earlier attempt: record it as posted now.
                Ok(true) => return Delivered::Posted,
                Ok(false) => {}
                Err(e) => return from_error(bridge, ticket, e, "reading the ticket back failed"),
            }
        }
        tries += 1;
        let result = {
            let _slot = bridge.api_slots.acquire().await;
            if stopping() {
                return Delivered::Stopped;
            }
            // Intent before action: the POST waits for its mail's `pending` commit.
            if let Err(reason) = gate.intent.ready(bridge).await {
                return deferred(&reason, None);
            }
            bridge
                .api
                .post_customer_response(ticket, &mail.request)
                .await
        };
        match result {
            Ok(()) => return Delivered::Posted,
            Err(ApiError::Transient {
                reason,
                retry_after,
                sent,
            }) => {
                unknown_outcome = sent;
                let wait = backoff.delay(tries, retry_after);
                if tries >= TRIES_PER_PASS || retry_after.is_some_and(|r| r > LONGEST_IN_PASS_WAIT)
                {
                    return deferred(&format!("API: {reason}"), retry_after);
                }
                tracing::debug!(ticket, uid = mail.uid, %reason, ?wait, "transient API error, retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return from_error(bridge, ticket, e, "posting failed"),
        }
    }
}

/// Maps a final API error to the mail's outcome (credentials pause everybody).
fn from_error(bridge: &Bridge, ticket: u64, e: ApiError, what: &str) -> Delivered {
    match e {
        ApiError::Permanent { status, message } => Delivered::Failed(format!(
            "API rejected the reply to ticket {ticket} (HTTP {status}): {message}"
        )),
        ApiError::Credentials { status, message } => {
            tracing::error!(
                status,
                "the Thulium API refused our credentials ({message}); posting paused for every mailbox. \
                 Check thulium.user and the password, and that the API user may write to tickets"
            );
            bridge.credentials_refused();
            deferred(
                &format!("API credentials refused (HTTP {status})"),
                Some(crate::bridge::CREDENTIALS_PAUSE),
            )
        }
        ApiError::Transient {
            reason,
            retry_after,
            ..
        } => deferred(&format!("{what}: {reason}"), retry_after),
    }
}

/// Reads the ticket back: is this reply already among its messages?
async fn already_posted(bridge: &Bridge, ticket: u64, mail: &Outgoing) -> Result<bool, ApiError> {
    let info = {
        let _slot = bridge.api_slots.acquire().await;
        bridge.api.get_ticket(ticket).await?
    };
    let found = info.messages.iter().any(|m| {
        reconcile::is_same_reply(
            m.r#type.as_deref(),
            m.date.as_deref(),
            m.body.as_deref(),
            &mail.request,
        )
    });
    tracing::info!(
        ticket,
        uid = mail.uid,
        found,
        "outcome of an earlier post was unknown; read the ticket back"
    );
    Ok(found)
}

/// `verify_sender`: the ticket's customer must be the mail's sender.
async fn verify_sender(
    bridge: &Bridge,
    ticket: u64,
    mail: &Outgoing,
    ticket_info: &mut Option<Ticket>,
) -> Result<(), Delivered> {
    if ticket_info.is_none() {
        let fetched = {
            let _slot = bridge.api_slots.acquire().await;
            bridge.api.get_ticket(ticket).await
        };
        *ticket_info = Some(fetched.map_err(|e| {
            from_error(
                bridge,
                ticket,
                e,
                "reading the ticket for verify_sender failed",
            )
        })?);
    }
    let owner = ticket_info
        .as_ref()
        .and_then(|t| t.from.as_deref())
        .map(|f| f.trim().to_ascii_lowercase());
    let sender = mail.from.as_deref().unwrap_or("");
    if owner.as_deref() == Some(sender) {
        return Ok(());
    }
    let reason = format!(
        "sender {sender} is not the ticket's customer ({})",
        owner.as_deref().unwrap_or("unknown")
    );
    match bridge.config.thulium.verify_sender {
        VerifySender::Enforce => Err(Delivered::Ignored(reason)),
        _ => {
            tracing::warn!(
                ticket,
                uid = mail.uid,
                "{reason}; posting anyway (verify_sender = \"warn\")"
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
