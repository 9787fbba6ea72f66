//! The shell around the pure core: one supervisor, a worker per mailbox, its passes,
//! and the delivery of replies to the API.

pub(crate) mod api_turns;
pub(crate) mod attachment_stream;
pub(crate) mod bridge;
pub(crate) mod claims;
pub(crate) mod clock_learning;
pub(crate) mod defer_cause;
pub(crate) mod delivery;
mod expiring;
pub(crate) mod handled;
pub(crate) mod leadership;
pub(crate) mod new_tickets;
pub(crate) mod outcome;
pub(crate) mod pass;
pub(crate) mod poison;
mod retention;
mod supervisor;
pub(crate) mod tally;
#[cfg(feature = "test-crash")]
mod test_crash;
pub(crate) mod ticket_holds;
pub(crate) mod ticket_owners;
pub(crate) mod waiting;
pub(crate) mod worker;

pub(crate) use supervisor::runtime;
pub(crate) use supervisor::{once, run};
