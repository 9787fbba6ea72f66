//! The Thulium helpdesk REST API: the client, its error classes and retry timing.
//!
//! Every response is sorted by one pure function, [`classify`], into success or one of
//! the three [`ApiError`] classes the deliverer acts on (retry, give up, stop posting).

pub mod api_clock;
mod classify;
mod client;
mod error;
mod gate;
pub mod new_ticket;
pub mod read_back;
mod request;
mod retry;
mod ticket;

pub use classify::classify;
pub use client::{TICKET_PAGE, ThuliumClient};
pub use error::ApiError;
pub use gate::Gate;
pub(crate) use request::{body_hash, request_body};
pub(crate) use retry::Backoff;
pub use ticket::{Ticket, TicketMessage};

#[cfg(test)]
mod client_tests;
