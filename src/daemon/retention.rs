//! `state.keep_decisions`: what became of each mail (its sender and subject among it) is
//! kept for `ledger list` only so long. Swept at start and once a day after.

use crate::ledger::Ledger;
use std::time::Duration;

/// How often the daemon sweeps.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Forgets the decisions older than `keep`; a failure is said, and the next sweep
/// tries again.
pub(super) async fn sweep(ledger: &Ledger, keep: Duration) {
    match ledger.sweep_decisions(keep).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            decisions = n,
            keep_decisions = %humantime::format_duration(keep),
            "forgot decisions older than state.keep_decisions"
        ),
        Err(e) => tracing::warn!("{e}; old decisions are swept at the next try"),
    }
}
