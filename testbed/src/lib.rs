//! Test bed for thulium-mail-bridge: a real Dovecot and a fake Thulium API,
//! both on loopback ports, for integration tests, the demo and the benchmark.
//!
//! Other real IMAP servers, configured as Debian ships them: [`Cyrus`] and
//! [`Courier`] (personal namespace `INBOX.` with `.`, so `Processed` is
//! `INBOX.Processed`; unpacked by `scripts/imap-servers.sh`, since they
//! conflict with dovecot-imapd). They are seeded and read over IMAP
//! ([`ImapClient`]), with folder names in UTF-8 (modified UTF-7 on the wire).
//! [`CapabilityProxy`] stands in front of a Dovecot for what Exchange Online
//! and Gmail lack (no MOVE, UIDPLUS, IDLE or kept keywords; dropped sessions).
//! [`Postgres`] is a real PostgreSQL for the bridge's ledger; a
//! [`CuttableProxy`] in front of it cuts one bridge's connections while the
//! server stays up for the others.
//!
//! ```no_run
//! use std::time::Duration;
//! use testbed::{Dovecot, FakeThulium, Fault};
//!
//! #[tokio::test(flavor = "multi_thread")] // Dovecot's calls block
//! async fn posts_a_reply() -> anyhow::Result<()> {
//!     let dovecot = Dovecot::start()?;
//!     dovecot.add_user("support", "secret")?;
//!     dovecot.append("support", "INBOX", b"Subject: [#1234] Re: help\r\n\r\nHi\r\n", &[])?;
//!     let api = FakeThulium::start().await?;
//!     api.add_ticket(1234, "customer@example.com");
//!     api.fail_next(1, Fault::Status(503));
//!     // ... run the bridge against dovecot.plain_port() / dovecot.ca_file()
//!     // and api.url() / api.user() / api.password() ...
//!     api.wait_posted(1, Duration::from_secs(20)).await?;
//!     testbed::wait_until("mail moved", Duration::from_secs(20), || {
//!         dovecot.folder_mails("support", "Processed").is_ok_and(|m| m.len() == 1)
//!     })
//!     .await
//! }
//! # fn main() {}
//! ```

mod cert;
mod conn;
mod contract;
mod courier;
mod cuttable_proxy;
mod cyrus;
mod dovecot;
mod fake_thulium;
mod faults;
pub mod fixtures;
mod headers;
mod held_proxy;
mod idp;
mod imap_client;
mod imap_store;
mod maildir;
mod ports;
mod postgres;
mod process;
mod proxy;
mod render;
mod self_signed;
mod server_process;
mod unpacked;
mod utf7;
mod wait;

pub use cert::TestCert;
pub use contract::{AccountTimezone, BodyStorage, CreatedAt, Reading};
pub use courier::Courier;
pub use cuttable_proxy::CuttableProxy;
pub use cyrus::Cyrus;
pub use dovecot::{Dovecot, DovecotOptions, NO_IDLE_CAPABILITY, NO_MOVE_CAPABILITY, SessionLog};
pub use fake_thulium::{
    BODY_STORAGE_ENV, CLOCK_ZONE_ENV, CREATED_AT_ENV, CreatedTicket, FakeThulium,
    FakeThuliumConfig, RecordedRequest, StoredResponse, TOKEN_LIFETIME, UploadedFile,
};
pub use faults::{Endpoint, Fault};
pub use held_proxy::HeldProxy;
pub use idp::{FakeIdp, GOOGLE_MAIL_SCOPE, Introspection, IssuedToken, TokenRequest};
pub use imap_client::{ImapClient, ImapMail, ListEntry, Reply, Status};
pub use imap_store::ImapServer;
pub use maildir::{Maildir, MaildirMail, Owner};
pub use postgres::{Postgres, PostgresOptions};
pub use proxy::{CapabilityProxy, ProxyOptions};
pub use self_signed::MadeBy;
pub use unpacked::{DEFAULT_IMAP_SERVERS_DIR, IMAP_SERVERS_DIR_ENV};
pub use utf7::{decode_mutf7, encode_mutf7};
pub use wait::{wait_until, wait_until_blocking};

/// Tests share both through `Arc` and move them across tasks.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Dovecot>();
    send_sync::<Cyrus>();
    send_sync::<Courier>();
    send_sync::<FakeThulium>();
    send_sync::<Postgres>();
};
