//! Per-ticket order across passes: while a reply to a ticket waits (a `Retry-After`, an
//! outage), every later reply to that ticket waits until the same moment, so the next
//! pass finds them together and posts them oldest first.

use super::expiring::Expiring;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Deadlines this far out are cut; `Instant` arithmetic must never overflow.
const LONGEST_HOLD: Duration = Duration::from_secs(24 * 3600);
/// A hold lasts at least this long, so that a reply told to retry at once (or whose
/// task ended unexpectedly) still keeps the later ones behind it.
const SHORTEST_HOLD: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(crate) struct TicketHolds {
    until: Mutex<Expiring<()>>,
}

impl TicketHolds {
    /// Holds `ticket` for `wait` from now (at least [`SHORTEST_HOLD`], longer if it was
    /// held longer); returns until when it is held.
    pub(crate) fn hold(&self, ticket: u64, wait: Duration) -> Instant {
        let now = Instant::now();
        let own = now
            .checked_add(wait.clamp(SHORTEST_HOLD, LONGEST_HOLD))
            .unwrap_or(now);
        let mut until = self.lock();
        let held = until.get(ticket, now).map_or(own, |(t, _)| own.max(*t));
        until.insert(ticket, held, (), now);
        held
    }

    /// Until when `ticket` is held, if it is.
    pub(crate) fn held_until(&self, ticket: u64) -> Option<Instant> {
        let now = Instant::now();
        self.lock().get(ticket, now).map(|(t, _)| *t)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Expiring<()>> {
        self.until.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_only_grows_and_ends() {
        let h = TicketHolds::default();
        assert_eq!(h.held_until(7), None);
        let long = h.hold(7, Duration::from_secs(60));
        assert_eq!(
            h.hold(7, Duration::from_secs(1)),
            long,
            "a shorter wait keeps the longer hold"
        );
        assert_eq!(h.held_until(7), Some(long));
        assert_eq!(h.held_until(8), None);
        let short = h.hold(9, Duration::ZERO);
        assert!(
            short >= Instant::now() + SHORTEST_HOLD - Duration::from_millis(100),
            "a zero wait still holds a moment"
        );
        let huge = h.hold(10, Duration::MAX);
        assert!(huge <= Instant::now() + LONGEST_HOLD);
    }
}
