//! Why a reply was left for a later pass: a type, so that whether the API is down, how
//! long to wait and whether it costs the mail an attempt are read from it, never from text.

use std::fmt;
use std::time::Duration;

/// Wait before retrying after a transient API error that gave no `Retry-After`: short
/// enough that replies follow within a minute once an outage ends.
const API_RETRY: Duration = Duration::from_secs(30);
/// Wait while a copy of the mail is in another mailbox's hands.
const COPY_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeferCause {
    /// 5xx, 429, 408, a timeout or a broken connection.
    ApiUnavailable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// 401/403: posting is paused for every mailbox until the pause ends.
    ApiCredentials { status: u16, pause: Duration },
    /// An earlier POST's outcome is unknown and the ticket could not be read back.
    ReadBackFailed { reason: String },
    /// An earlier reply to the same ticket has to go first.
    EarlierReplyWaiting { ticket: u64 },
    /// A copy of this mail (this folder or another mailbox) is being delivered.
    CopyInFlight,
    /// The ledger could not record the attempt or its outcome.
    Ledger { reason: String },
    /// Shutdown (or a reload) began before this reply was posted.
    Stopping,
    /// Reading the mail ran out of time once (twice and it is quarantined).
    SlowToRead { reason: String },
    /// A mail this one answers is still being handled (a follow-up that came with the
    /// mail opening a ticket): decided again once that one is finished.
    AnsweredMailInFlight { message_id: String, finished: bool },
}

impl DeferCause {
    /// The API failed, not this mail: counts toward "the API is down" and the exit code of `once`.
    pub(crate) fn is_api_failure(&self) -> bool {
        matches!(
            self,
            DeferCause::ApiUnavailable { .. }
                | DeferCause::ApiCredentials { .. }
                | DeferCause::ReadBackFailed { .. }
        )
    }

    /// How long until this mail is worth trying again.
    pub(crate) fn wait(&self) -> Duration {
        match self {
            DeferCause::ApiUnavailable { retry_after, .. } => retry_after.unwrap_or(API_RETRY),
            DeferCause::ApiCredentials { pause, .. } => *pause,
            DeferCause::ReadBackFailed { .. } | DeferCause::Ledger { .. } => API_RETRY,
            DeferCause::CopyInFlight => COPY_RETRY,
            DeferCause::EarlierReplyWaiting { .. } | DeferCause::Stopping => Duration::ZERO,
            DeferCause::SlowToRead { .. } => Duration::from_secs(60),
            // Finished: the next pass finds its ticket; else give it a moment.
            DeferCause::AnsweredMailInFlight { finished, .. } => {
                if *finished {
                    Duration::ZERO
                } else {
                    COPY_RETRY
                }
            }
        }
    }

    /// Whether a later reply to the same ticket must wait for this one.
    pub(crate) fn holds_ticket(&self) -> bool {
        !matches!(self, DeferCause::Stopping)
    }
}

impl fmt::Display for DeferCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeferCause::ApiUnavailable { reason, .. } => write!(f, "API: {reason}"),
            DeferCause::ApiCredentials { status, pause } => write!(
                f,
                "API credentials refused (HTTP {status}); posting paused for {}",
                humantime::format_duration(Duration::from_secs(pause.as_secs().max(1)))
            ),
            DeferCause::ReadBackFailed { reason } => write!(
                f,
                "the outcome of an earlier post is unknown and reading the ticket back failed: {reason}"
            ),
            DeferCause::EarlierReplyWaiting { ticket } => {
                write!(f, "an earlier reply to ticket {ticket} is waiting")
            }
            DeferCause::CopyInFlight => f.write_str("a copy of this mail is being delivered"),
            DeferCause::Ledger { reason } => write!(f, "ledger: {reason}"),
            DeferCause::Stopping => f.write_str("stopping before it was posted"),
            DeferCause::SlowToRead { reason } => write!(f, "{reason}; tried once more later"),
            DeferCause::AnsweredMailInFlight { message_id, .. } => write!(
                f,
                "it answers {message_id}, which is still being handled; decided again after it"
            ),
        }
    }
}

impl From<crate::ledger::LedgerError> for DeferCause {
    fn from(e: crate::ledger::LedgerError) -> DeferCause {
        DeferCause::Ledger {
            reason: e.to_string(),
        }
    }
}
