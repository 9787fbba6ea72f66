//! The number that matters for an SLO: how many mails of a mailbox wait (seen, not yet
//! finished: deferred for a retry) and how long the oldest has waited.

use super::tally::Deferrals;
use crate::ops::metrics;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// When each waiting mail (by UID) was first seen waiting.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    since: HashMap<u32, SystemTime>,
}

impl Waiting {
    /// Seeds the times of mails the ledger has had pending since before this start.
    pub(crate) fn seed(&mut self, pending: impl IntoIterator<Item = (u32, SystemTime)>) {
        self.since.extend(pending);
    }

    /// After a pass: the deferred mails are the waiting ones; publishes the gauges.
    pub(crate) fn update(&mut self, mailbox: &str, deferred: &Deferrals) {
        let now = SystemTime::now();
        self.since.retain(|uid, _| deferred.contains_key(uid));
        for uid in deferred.keys() {
            self.since.entry(*uid).or_insert(now);
        }
        let oldest = self
            .since
            .values()
            .filter_map(|t| now.duration_since(*t).ok())
            .max()
            .unwrap_or(Duration::ZERO);
        metrics::waiting(mailbox, self.since.len(), oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn only_deferred_mails_wait_and_the_oldest_keeps_its_time() {
        let mut w = Waiting::default();
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        w.seed([(7, hour_ago), (8, hour_ago)]);
        let mut deferred = Deferrals::new();
        deferred.insert(7, Instant::now());
        deferred.insert(9, Instant::now());
        w.update("m", &deferred);
        assert_eq!(w.since.len(), 2, "8 was finished");
        assert_eq!(w.since.get(&7), Some(&hour_ago));
    }
}
