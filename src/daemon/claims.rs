//! One mail, one deliverer: the first to see a mail claims it; a copy (in the same folder
//! or another mailbox) waits for the claimant's outcome and is then finished with it in
//! the same pass, instead of being left for later.

use super::outcome::Outcome;
use crate::mail::MailId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

#[derive(Debug, Default)]
pub(crate) struct Claims {
    in_hand: Mutex<HashMap<MailId, watch::Receiver<Option<Outcome>>>>,
}

/// Held by the claimant; says the outcome to the copies when released or dropped.
#[derive(Debug)]
pub(crate) struct Claim {
    claims: Arc<Claims>,
    id: MailId,
    outcome: watch::Sender<Option<Outcome>>,
}

impl Claims {
    /// The claim, or (for a copy) the claimant's outcome to wait for.
    pub(crate) fn claim(
        self: &Arc<Self>,
        id: &MailId,
    ) -> Result<Claim, watch::Receiver<Option<Outcome>>> {
        let mut in_hand = self.in_hand.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(outcome) = in_hand.get(id) {
            return Err(outcome.clone());
        }
        let (tx, rx) = watch::channel(None);
        in_hand.insert(id.clone(), rx);
        Ok(Claim {
            claims: Arc::clone(self),
            id: id.clone(),
            outcome: tx,
        })
    }
}

impl Claim {
    /// Ends the claim: copies waiting on it learn `outcome` (after its ledger commit).
    pub(crate) fn release(self, outcome: &Outcome) {
        self.outcome.send_replace(Some(outcome.clone()));
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claims
            .in_hand
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        // Released without an outcome (a task that ended unexpectedly): copies retry later.
        self.outcome.send_if_modified(|o| {
            if o.is_none() {
                *o = Some(Outcome::Deferred(
                    crate::daemon::defer_cause::DeferCause::CopyInFlight,
                ));
                true
            } else {
                false
            }
        });
    }
}

/// What a copy does once the claimant is done: a posted original makes it a duplicate.
pub(crate) async fn outcome_for_copy(mut claimant: watch::Receiver<Option<Outcome>>) -> Outcome {
    let outcome = match claimant.wait_for(Option::is_some).await {
        Ok(o) => o.clone(),
        Err(_) => None,
    };
    match outcome {
        Some(
            Outcome::Posted
            | Outcome::Approved
            | Outcome::Forwarded
            | Outcome::Duplicate
            | Outcome::NewTicket { .. },
        ) => Outcome::Duplicate,
        Some(other) => other,
        None => Outcome::Deferred(crate::daemon::defer_cause::DeferCause::CopyInFlight),
    }
}
