//! Waiting on a condition with a deadline: the only synchronization tests use.

use std::time::Duration;

use anyhow::{Result, bail};

/// How often a condition is re-checked.
const TICK: Duration = Duration::from_millis(10);

/// Polls `condition` until it holds; fails after `timeout` naming `what`.
pub async fn wait_until(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(TICK).await;
    }
}

/// [`wait_until`] for code outside an async runtime.
pub fn wait_until_blocking(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if condition() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(TICK);
    }
}
