//! Test bed for thulium-mail-bridge: a real Dovecot and a fake Thulium API,
//! both on loopback ports, for integration tests, the demo and the benchmark.

mod cert;
mod dovecot;
mod fake_thulium;
mod faults;
mod maildir;
mod process;
mod wait;

pub use cert::TestCert;
pub use dovecot::{Dovecot, DovecotOptions, NO_IDLE_CAPABILITY};
pub use fake_thulium::{FakeThulium, FakeThuliumConfig, RecordedRequest, StoredResponse};
pub use faults::Fault;
pub use maildir::{Maildir, MaildirMail, Owner};
pub use wait::{wait_until, wait_until_blocking};
