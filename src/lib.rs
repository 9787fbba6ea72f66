//! thulium-mail-bridge: customer e-mail replies from IMAP to the Thulium helpdesk.
//!
//! Layers (ARCHITECTURE.md): the pure core decides (`config`, `mail` with `decide`);
//! the clients talk (`imap`, `thulium`, `oauth2`) and remember (`ledger`); `daemon`
//! runs the pipeline; `ops` is what operators see; `commands` are what the command
//! line calls. Public are only what tests, benches and the fuzz targets use.

// The bridge needs no unsafe code of its own (the test bed, with its libc calls, may).
#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod config;
pub(crate) mod daemon;
pub(crate) mod http_read;
pub(crate) mod imap;
pub(crate) mod ledger;
pub mod mail;
pub mod oauth2;
pub(crate) mod ops;
pub mod thulium;
