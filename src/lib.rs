//! thulium-mail-bridge: customer e-mail replies from IMAP to the Thulium helpdesk.
//!
//! The pure core (`config`, `mail`, `decide`) decides; the shell (`imap`, `thulium`,
//! `ledger`, `deliver`, `pass`, `worker`, `daemon`) talks.

pub mod api_health;
pub mod bridge;
pub mod check;
pub mod claims;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod decide;
pub mod defer;
pub mod deliver;
pub mod explain;
pub mod health;
pub mod http;
pub mod imap;
pub mod ledger;
pub mod ledger_report;
pub mod ledger_retry;
pub mod mail;
pub mod metrics;
pub mod notify;
pub mod oauth2;
pub mod pass;
pub mod telemetry;
pub mod thulium;
pub mod ticket_holds;
pub mod worker;
