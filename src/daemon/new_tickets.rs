//! A mail without a ticket number becomes a new ticket (`on_unmatched = "new_ticket"`),
//! exactly once: its intent is recorded before the uploads and the POST; when the
//! outcome is unknown, `GET tickets` is read back (subject, customer and text must
//! match) before creating again; the new ticket's id is recorded against the mail's
//! Message-ID, so the customer's follow-ups go to it.

use super::attachment_stream;
use super::bridge::Bridge;
use super::defer_cause::DeferCause;
use super::handled::{About, Handled};
use super::outcome::Outcome;
use crate::ledger::{
    Attempt, Begun, EntryState, Ledger, LedgerError, Location, unix_now, unix_now_ms,
};
use crate::mail::MailId;
use crate::mail::authentication::AuthVerdict;
use crate::mail::body::{Attachment, BodyType};
use crate::thulium::new_ticket::NewTicketRequest;
use crate::thulium::read_back;
use crate::thulium::{ApiError, TICKET_PAGE, Ticket};
use std::sync::Arc;
use std::time::Duration;

/// How long a pending mail counts as being handled, for a follow-up that answers it.
const IN_FLIGHT_FOR: Duration = Duration::from_secs(3600);

/// A mail `decide` wants opened as a ticket.
pub(crate) struct NewTicketMail {
    pub uid: u32,
    pub id: MailId,
    pub request: NewTicketRequest,
    pub attachments: Vec<Attachment>,
    pub authentication: AuthVerdict,
    /// Message-IDs it answers (In-Reply-To, References).
    pub references: Vec<String>,
    /// The mail as fetched (an agent's forward: the forwarded mail): the attachments are
    /// streamed from it.
    pub raw: Arc<Vec<u8>>,
    /// An agent forwarded it: the agent vouched for it, as a person does in the approve
    /// folder.
    pub forwarded: bool,
    /// Its share of the process-wide reading budget, held while `raw` is.
    pub reading: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Opens the ticket (or finds it opened before); what became of the mail.
pub(crate) async fn open(bridge: &Arc<Bridge>, place: &Location, mail: NewTicketMail) -> Handled {
    let settings = match bridge.rules_for(&place.mailbox).new_ticket.clone() {
        Some(s) => s,
        None => {
            let outcome = Outcome::Unmatched("no ticket number in the subject".into());
            return handled(&mail, outcome);
        }
    };
    // A person who moved the mail into the approve folder, or an agent who forwarded
    // it, vouched for its sender.
    let vouched = bridge.rules_at(&place.mailbox, &place.folder).vouched || mail.forwarded;
    if let AuthVerdict::Fail(why) = &mail.authentication
        && !vouched
    {
        let outcome = Outcome::Unmatched(format!(
            "not opened as a ticket: From {} is not authenticated: {why}",
            mail.request.from
        ));
        return handled(&mail, outcome);
    }
    let ledger = bridge.ledger();
    match answered_in_flight(ledger, &mail.references, &mail.id).await {
        Ok(Some(cause)) => return handled(&mail, Outcome::Deferred(cause)),
        Ok(None) => {}
        Err(e) => return handled(&mail, Outcome::Deferred(e.into())),
    }
    match ledger
        .new_tickets_in_last_hour(&mail.request.from, &mail.id)
        .await
    {
        Ok(n) if n >= settings.per_sender_per_hour && !vouched => {
            let outcome = Outcome::Unmatched(format!(
                "not opened as a ticket: {} opened {n} in the last hour (per_sender_per_hour = {})",
                mail.request.from, settings.per_sender_per_hour
            ));
            return handled(&mail, outcome);
        }
        Ok(_) => {}
        Err(e) => return handled(&mail, Outcome::Deferred(e.into())),
    }
    if bridge.dry_run() {
        tracing::info!(uid = mail.uid, to = %mail.request.to, from = %mail.request.from,
            subject = %mail.request.subject, attachments = mail.attachments.len(),
            "dry run: would open a ticket");
        return handled(&mail, Outcome::NewTicket { ticket: 0 });
    }
    let attempt = Attempt {
        id: mail.id.clone(),
        ticket: 0,
        body_hash: String::new(),
        text_hash: read_back::text_hash_of(&mail.request.body, BodyType::Html),
        date: String::new(),
        location: Location {
            uid: mail.uid,
            ..place.clone()
        },
        new_ticket_from: Some(mail.request.from.clone()),
    };
    let begun = match ledger.begin(vec![attempt.clone()]).await {
        Ok(mut b) if !b.is_empty() => b.remove(0),
        Ok(_) => {
            let cause = DeferCause::Ledger {
                reason: "no entry".into(),
            };
            return handled(&mail, Outcome::Deferred(cause));
        }
        Err(e) => return handled(&mail, Outcome::Deferred(e.into())),
    };
    match begun.entry.state {
        EntryState::Posted => return handled(&mail, Outcome::Duplicate),
        EntryState::Failed => {
            let reason = begun.entry.reason.clone().unwrap_or_default();
            return handled(&mail, Outcome::Unmatched(reason));
        }
        EntryState::Pending => {}
    }
    let tried_ms = unix_now_ms();
    let (outcome, unknown) = create(bridge, &mail, &begun, &settings.ticket_queue_id).await;
    let mut tried = handled(&mail, outcome);
    tried.counted = counts(bridge, &begun, tried_ms, &tried.outcome);
    tried.outcome_unknown = unknown;
    if let Some(record) = tried.ledger_record(attempt.location)
        && let Err(e) = ledger.finish(vec![record]).await
    {
        tracing::error!("ledger write failed after opening a ticket: {e}");
        return handled(&mail, Outcome::Deferred(e.into()));
    }
    tried
}

/// What became of a mail to be opened as a ticket.
pub(crate) fn handled(mail: &NewTicketMail, outcome: Outcome) -> Handled {
    let ticket = match outcome {
        Outcome::NewTicket { ticket } => Some(ticket),
        _ => None,
    };
    let about = About {
        id: mail.id.clone(),
        sender: Some(mail.request.from.clone()),
        subject: mail.request.subject.clone(),
    };
    Handled::new(mail.uid, Some(about), ticket, outcome)
}

/// The rule for replies holds for new tickets too: an API failure counts as an attempt
/// only when another POST was accepted since this mail's previous try (the API works,
/// this mail does not).
fn counts(bridge: &Bridge, begun: &Begun, tried_ms: u64, outcome: &Outcome) -> bool {
    let since = begun.previous_attempt_ms.unwrap_or(tried_ms);
    matches!(
        outcome,
        Outcome::Deferred(DeferCause::ApiUnavailable { .. })
    ) && bridge.api_health().post_succeeded_after(since)
}

/// After `max_attempts` counted tries, or `max_age` after first seen, the mail goes to the
/// fallback instead of being tried again. Asked only once an earlier try is known not to
/// have opened a ticket (read back), so giving up never hides a ticket that exists.
fn exhausted(bridge: &Bridge, begun: &Begun) -> Option<String> {
    let given_up = bridge.given_up(begun.entry.attempts, begun.entry.age())?;
    let read_back = if begun.outcome_unknown {
        " (read back: none of them opened one)"
    } else {
        ""
    };
    Some(format!("not opened as a ticket: {given_up}{read_back}"))
}

/// A mail this one answers that was not finished when this one was decided: posted since
/// (this pass opened it as a ticket) or still pending (recently). Then this one is a reply,
/// not a ticket of its own, and waits to be decided again.
async fn answered_in_flight(
    ledger: &Ledger,
    references: &[String],
    own: &MailId,
) -> Result<Option<DeferCause>, LedgerError> {
    let recent = unix_now().saturating_sub(IN_FLIGHT_FOR.as_secs());
    for message_id in references {
        for entry in ledger.entries(message_id).await? {
            if entry.id == *own {
                continue;
            }
            let finished = match entry.state {
                EntryState::Posted => true,
                // A pending entry untouched for long belongs to a mail nobody handles any more.
                EntryState::Pending if entry.updated >= recent => false,
                _ => continue,
            };
            return Ok(Some(DeferCause::AnsweredMailInFlight {
                message_id: message_id.clone(),
                finished,
            }));
        }
    }
    Ok(None)
}

/// Reads back if an earlier try may have created it, uploads, creates. The outcome and
/// whether a create may now be out with its answer unknown.
async fn create(
    bridge: &Arc<Bridge>,
    mail: &NewTicketMail,
    begun: &Begun,
    queue: &Option<u64>,
) -> (Outcome, bool) {
    let api = bridge.api_health();
    if begun.outcome_unknown {
        match find_created(bridge, mail, begun, *queue).await {
            Ok(Some(ticket)) => {
                api.works();
                return (Outcome::NewTicket { ticket }, false);
            }
            Ok(None) => {}
            Err(cause) => return (Outcome::Deferred(cause), true),
        }
    }
    if let Some(reason) = exhausted(bridge, begun) {
        return (Outcome::Unmatched(reason), false);
    }
    if let Some(cause) = bridge.credentials_paused() {
        return (Outcome::Deferred(cause), false);
    }
    let mut request = mail.request.clone();
    for a in &mail.attachments {
        let Some(body) = attachment_stream::body(Arc::clone(&mail.raw), a) else {
            // Not expected (decide found the part in the same bytes); said, not hidden.
            tracing::warn!(uid = mail.uid, attachment = %a.name,
                "an attachment could not be read back from the mail; the ticket opens without it");
            continue;
        };
        let uploaded = bridge
            .write_turn()
            .await
            .upload(&upload_name(&a.name), body, a.size)
            .await;
        match uploaded {
            Ok(token) => request.attachments.push(token),
            Err(e) => return (trouble(bridge, e, "uploading an attachment"), false),
        }
    }
    let turn = bridge.write_turn().await;
    // Another instance may lead the mailbox by now (a shared ledger): it opens it.
    if !bridge.leads(&begun.entry.location.mailbox) {
        return (Outcome::Deferred(DeferCause::Stopping), false);
    }
    let gate = bridge.gate(&begun.entry.location.mailbox);
    let created = turn.create_ticket(&request, &gate).await;
    match created {
        Ok(ticket) => {
            api.post_succeeded();
            (Outcome::NewTicket { ticket }, false)
        }
        // Withheld as it left, or failed after the lease ran out: the new leader opens it.
        Err(ApiError::Transient { sent, reason, .. })
            if !bridge.leads(&begun.entry.location.mailbox) =>
        {
            tracing::warn!(mailbox = %begun.entry.location.mailbox, %reason,
                "no ticket opened: this instance's lease on the mailbox ran out before the request left; whoever leads it now opens it");
            (Outcome::Deferred(DeferCause::Stopping), sent)
        }
        Err(e @ ApiError::Transient { sent, .. }) => (trouble(bridge, e, "POST tickets"), sent),
        Err(e) => (trouble(bridge, e, "POST tickets"), false),
    }
}

/// The name a file is stored under: no path separators, so a made-up name (`unnamed
/// application/pdf`) or a hostile one (`../../x`) never reads as a path at the helpdesk.
fn upload_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect();
    if safe.trim().trim_matches('.').is_empty() {
        "attachment".into()
    } else {
        safe
    }
}

/// An API error as the mail's outcome: refused → the fallback, else wait.
fn trouble(bridge: &Bridge, e: ApiError, what: &str) -> Outcome {
    match e {
        ApiError::Permanent { status, message } => Outcome::Unmatched(format!(
            "not opened as a ticket: the API refused {what} (HTTP {status}): {message}"
        )),
        ApiError::Credentials { status, message } => {
            Outcome::Deferred(bridge.credentials_refused(status, &message))
        }
        ApiError::Transient {
            reason,
            retry_after,
            ..
        } => {
            bridge.api_health().request_failed(&reason, false);
            Outcome::Deferred(DeferCause::ApiUnavailable {
                reason: format!("{what}: {reason}"),
                retry_after,
            })
        }
    }
}

/// A ticket an earlier, unanswered try created: created since that try (in the queue),
/// with our subject and customer, whose first customer message shows our text, and
/// that no other mail of the ledger opened.
async fn find_created(
    bridge: &Arc<Bridge>,
    mail: &NewTicketMail,
    begun: &Begun,
    queue: Option<u64>,
) -> Result<Option<u64>, DeferCause> {
    let failed = |e: ApiError| DeferCause::ReadBackFailed {
        reason: e.to_string(),
    };
    let since = begun.entry.unknown_since.unwrap_or(begun.entry.first_seen);
    // The day only: the page's example of a `_from` filter is a date ("2014-07-04"),
    // and candidates are matched on customer, subject and text anyway. The day as the
    // API's clock may write it: the earliest any clock still possible would.
    let from = bridge
        .clock()
        .with(|c| c.earliest_day(since.saturating_sub(120) as i64));
    for page in 0..READ_BACK_PAGES {
        let listed = bridge
            .read_turn()
            .await
            .find_tickets(&from, queue, page * TICKET_PAGE)
            .await
            .map_err(failed)?;
        let full = listed.len() >= TICKET_PAGE;
        if let Some(id) = created_among(bridge, mail, listed).await? {
            return Ok(Some(id));
        }
        if !full {
            return Ok(None);
        }
    }
    Err(DeferCause::ReadBackFailed {
        reason: format!(
            "more than {} tickets were opened since {from}; cannot tell whether one is this mail's",
            READ_BACK_PAGES * TICKET_PAGE
        ),
    })
}

/// Pages of `GET tickets` read back at most: past them, whether a ticket was opened is
/// unknown (and the mail waits) rather than guessed.
const READ_BACK_PAGES: usize = 20;

/// The ticket among `listed` that this mail opened, if any.
async fn created_among(
    bridge: &Arc<Bridge>,
    mail: &NewTicketMail,
    listed: Vec<Ticket>,
) -> Result<Option<u64>, DeferCause> {
    let failed = |e: ApiError| DeferCause::ReadBackFailed {
        reason: e.to_string(),
    };
    let same =
        |a: Option<&str>, b: &str| a.is_some_and(|a| a.trim().eq_ignore_ascii_case(b.trim()));
    for candidate in listed {
        // The list may or may not carry `from` and `subject`; what it carries must match.
        if candidate
            .from
            .as_deref()
            .is_some_and(|f| !same(Some(f), &mail.request.from))
            || candidate
                .subject
                .as_deref()
                .is_some_and(|s| !same(Some(s), &mail.request.subject))
        {
            continue;
        }
        let ticket = bridge
            .read_turn()
            .await
            .get_ticket(candidate.ticket_id)
            .await
            .map_err(failed)?;
        let first_mail = ticket.messages.iter().find(|m| m.is_mail());
        let ours = same(ticket.from.as_deref(), &mail.request.from)
            && same(ticket.subject.as_deref(), &mail.request.subject)
            && first_mail
                .and_then(|m| m.body.as_deref())
                .is_some_and(|b| read_back::same_body(b, &mail.request.body, BodyType::Html));
        if ours
            && !bridge
                .ledger()
                .ticket_opened_by_another(ticket.ticket_id, &mail.id)
                .await
                .map_err(DeferCause::from)?
        {
            tracing::info!(
                ticket = ticket.ticket_id,
                uid = mail.uid,
                "an earlier try had opened the ticket; read back, not opened again"
            );
            return Ok(Some(ticket.ticket_id));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::upload_name;

    #[test]
    fn upload_names_are_never_paths() {
        assert_eq!(upload_name("faktura.pdf"), "faktura.pdf");
        assert_eq!(
            upload_name("zam\u{f3}wienie 17.csv"),
            "zam\u{f3}wienie 17.csv"
        );
        assert_eq!(
            upload_name("unnamed application/pdf"),
            "unnamed application_pdf"
        );
        assert_eq!(upload_name("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(upload_name("C:\\x.txt"), "C:_x.txt");
        assert_eq!(upload_name(".."), "attachment");
        assert_eq!(upload_name(" "), "attachment");
    }
}
