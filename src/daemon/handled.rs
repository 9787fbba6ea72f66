//! What became of one mail, on its way back from wherever it was handled (skipped,
//! posted, opened as a ticket): the one result the tally records, and the one mapping
//! from it to the mail's ledger record.

use super::outcome::Outcome;
use crate::ledger::{Finish, Location};
use crate::mail::MailId;
use std::time::Instant;

/// One handled mail.
pub(crate) struct Handled {
    pub uid: u32,
    /// What the mail said of itself; `None` for one not read (too big, unreadable).
    pub about: Option<About>,
    /// The ticket it went to (a reply's, or the one it opened).
    pub ticket: Option<u64>,
    pub outcome: Outcome,
    /// A POST may have reached the helpdesk unseen (read back before the next one).
    pub outcome_unknown: bool,
    /// The failure counts against the mail's `max_attempts`.
    pub counted: bool,
    /// For a deferred mail: when it is worth trying again, if later than its cause's
    /// own wait (a ticket held longer).
    pub retry_at: Option<Instant>,
}

/// A read mail's identity and what `ledger list` shows of it.
pub(crate) struct About {
    pub id: MailId,
    pub sender: Option<String>,
    pub subject: String,
}

impl Handled {
    /// A mail whose outcome leaves nothing unknown and counts no attempt.
    pub(crate) fn new(
        uid: u32,
        about: Option<About>,
        ticket: Option<u64>,
        outcome: Outcome,
    ) -> Handled {
        Handled {
            uid,
            about,
            ticket,
            outcome,
            outcome_unknown: false,
            counted: false,
            retry_at: None,
        }
    }

    /// What the ledger records of a mail whose entry this try began (`pending`), replies
    /// and new tickets alike. The ticket posted to is the one the mail opened or else its
    /// own; `Unmatched` reaches here only from a mail that could not be opened as a
    /// ticket, which is given up for good like a `Failed` reply. `None` for a mail with no
    /// identity or a posted one with no ticket: nothing to record.
    pub(crate) fn ledger_record(&self, location: Location) -> Option<Finish> {
        let id = self.about.as_ref()?.id.clone();
        let outcome_unknown = self.outcome_unknown;
        Some(match &self.outcome {
            Outcome::NewTicket { ticket } => Finish::Posted {
                id,
                ticket: *ticket,
            },
            Outcome::Posted | Outcome::Approved | Outcome::Forwarded | Outcome::Duplicate => {
                Finish::Posted {
                    id,
                    ticket: self.ticket?,
                }
            }
            Outcome::Failed(reason) | Outcome::Unmatched(reason) => Finish::Failed {
                id,
                reason: reason.clone(),
                outcome_unknown,
                location,
            },
            Outcome::Unverified(_) | Outcome::Ignored(_) => Finish::Released {
                id,
                outcome_unknown,
            },
            Outcome::Deferred(_) => Finish::Deferred {
                id,
                counted: self.counted,
                outcome_unknown,
            },
        })
    }
}
