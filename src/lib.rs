//! thulium-mail-bridge: customer e-mail replies from IMAP to the Thulium helpdesk.

pub mod config;
pub mod decide;
pub mod mail;
