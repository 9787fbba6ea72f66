//! Posting decided replies: per ticket in date order, tickets concurrently, each mail once.
//!
//! Intent before action: every mail is recorded `pending` in the ledger (one commit per
//! batch) before its POST, and `posted` (one commit per batch) before any disposition.
//! A mail found `pending` had an unknown outcome: the ticket is read back first.

use crate::bridge::Bridge;
use crate::config::VerifySender;
use crate::decide::CustomerResponse;
use crate::ledger::{Attempt, EntryState, PostedMail};
use crate::reconcile;
use crate::thulium::{ApiError, Backoff, Ticket};
use chrono::{DateTime, FixedOffset};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Tries of one POST within a pass before the mail waits for a later pass.
const TRIES_PER_PASS: u32 = 3;
/// A `Retry-After` longer than this is not slept through within a pass.
const LONGEST_IN_PASS_WAIT: Duration = Duration::from_secs(30);

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
}

/// Delivers one batch; returns each mail's uid with its outcome, in no particular order.
pub async fn deliver(
    bridge: &Arc<Bridge>,
    mailbox: &str,
    mails: Vec<Outgoing>,
) -> Vec<(Outgoing, Delivered)> {
    let mut done: Vec<(Outgoing, Delivered)> = Vec::new();
    let mut todo: Vec<(Outgoing, bool)> = Vec::new();
    let max = &bridge.config.delivery;
    for mail in mails {
        if !bridge.claim(&mail.key) {
            done.push((
                mail,
                deferred("a copy is being delivered from another mailbox", None),
            ));
            continue;
        }
        match bridge.ledger.get(&mail.key) {
            Ok(Some(e)) if e.state == EntryState::Posted => done.push((mail, Delivered::Duplicate)),
            Ok(Some(e)) if e.state == EntryState::Failed => {
                let reason = e.reason.unwrap_or_else(|| "failed before".into());
                done.push((mail, Delivered::Failed(reason)))
            }
            Ok(Some(e)) if e.attempts >= max.max_attempts || e.age() >= max.max_age => {
                let reason = format!(
                    "gave up after {} attempts over {}",
                    e.attempts,
                    humantime::format_duration(Duration::from_secs(e.age().as_secs()))
                );
                done.push((mail, Delivered::Failed(reason)))
            }
            Ok(Some(_)) => todo.push((mail, true)),
            Ok(None) => todo.push((mail, false)),
            Err(e) => done.push((mail, deferred(&format!("ledger unreadable: {e}"), None))),
        }
    }

    if !bridge.dry_run && !todo.is_empty() {
        let attempts: Vec<Attempt> = todo
            .iter()
            .map(|(m, _)| Attempt {
                key: m.key.clone(),
                ticket: m.ticket,
                body_hash: crate::thulium::body_hash(&m.request),
                date: m.request.date.clone(),
                mailbox: mailbox.to_string(),
                uid: m.uid,
            })
            .collect();
        if let Err(e) = tokio::task::block_in_place(|| bridge.ledger.begin_attempts(&attempts)) {
            let reason = format!("ledger write failed: {e}");
            done.extend(todo.drain(..).map(|(m, _)| (m, deferred(&reason, None))));
        }
    }

    let mut by_ticket: BTreeMap<u64, Vec<(Outgoing, bool)>> = BTreeMap::new();
    for (mail, unknown) in todo {
        by_ticket
            .entry(mail.ticket)
            .or_default()
            .push((mail, unknown));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (ticket, mut group) in by_ticket {
        group.sort_by_key(|(m, _)| (m.sent, m.uid));
        let bridge = Arc::clone(bridge);
        tasks.spawn(async move { deliver_ticket(&bridge, ticket, group).await });
    }
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(outcomes) => done.extend(outcomes),
            Err(e) => tracing::error!("delivery task failed: {e}"),
        }
    }

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
    for (m, d) in &done {
        if let Delivered::Failed(reason) = d
            && !bridge.dry_run
        {
            let _ = bridge.ledger.mark_failed(&m.key, reason);
        }
        bridge.release(&m.key);
    }
    done
}

fn deferred(reason: &str, retry_after: Option<Duration>) -> Delivered {
    Delivered::Deferred {
        reason: reason.to_string(),
        retry_after,
    }
}

/// One ticket's replies, oldest first; a reply that must wait holds back the later ones.
async fn deliver_ticket(
    bridge: &Bridge,
    ticket: u64,
    group: Vec<(Outgoing, bool)>,
) -> Vec<(Outgoing, Delivered)> {
    let mut out = Vec::with_capacity(group.len());
    let mut ticket_info: Option<Ticket> = None;
    let mut held: Option<String> = None;
    for (mail, unknown_outcome) in group {
        if let Some(reason) = &held {
            out.push((mail, deferred(reason, None)));
            continue;
        }
        let outcome = deliver_one(bridge, ticket, &mail, unknown_outcome, &mut ticket_info).await;
        if let Delivered::Deferred { reason, .. } = &outcome {
            held = Some(format!(
                "an earlier reply to ticket {ticket} is waiting ({reason})"
            ));
        }
        out.push((mail, outcome));
    }
    out
}

async fn deliver_one(
    bridge: &Bridge,
    ticket: u64,
    mail: &Outgoing,
    mut unknown_outcome: bool,
    ticket_info: &mut Option<Ticket>,
) -> Delivered {
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
