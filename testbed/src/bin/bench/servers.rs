//! The real IMAP server and the fake API a scenario runs against.

use anyhow::Result;
use testbed::{Dovecot, FakeThulium, FakeThuliumConfig};

/// Every bench user's IMAP password.
pub(crate) const PASSWORD: &str = "bench-imap-pw";

/// A Dovecot with `users` (each with [`PASSWORD`]) and a fake API that keeps no bodies
/// (a benchmark's posts would otherwise weigh on its own memory).
pub(crate) async fn start(
    users: Vec<String>,
    api: FakeThuliumConfig,
) -> Result<(Dovecot, FakeThulium)> {
    let dovecot = tokio::task::spawn_blocking(move || -> Result<Dovecot> {
        let dovecot = Dovecot::start()?;
        for user in &users {
            dovecot.add_user(user, PASSWORD)?;
        }
        Ok(dovecot)
    })
    .await??;
    let api = FakeThulium::start_with(FakeThuliumConfig {
        record_bodies: false,
        ..api
    })
    .await?;
    Ok((dovecot, api))
}
