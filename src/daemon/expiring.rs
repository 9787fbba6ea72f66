//! A per-ticket map whose entries expire: a backlog over many tickets must not sweep the
//! whole map on every insert, so stale entries go when the map has doubled since the
//! last sweep (the map stays within twice its live entries).

use std::collections::HashMap;
use std::time::Instant;

#[derive(Debug)]
pub(super) struct Expiring<V> {
    entries: HashMap<u64, (Instant, V)>,
    swept_at_len: usize,
}

impl<V> Default for Expiring<V> {
    fn default() -> Self {
        Expiring {
            entries: HashMap::new(),
            swept_at_len: 0,
        }
    }
}

impl<V> Expiring<V> {
    /// The entry of `key` with its expiry, unless it has expired by `now`.
    pub(super) fn get(&self, key: u64, now: Instant) -> Option<&(Instant, V)> {
        self.entries.get(&key).filter(|(expires, _)| *expires > now)
    }

    pub(super) fn insert(&mut self, key: u64, expires: Instant, value: V, now: Instant) {
        if self.entries.len() >= 2 * self.swept_at_len.max(64) {
            self.entries.retain(|_, (expires, _)| *expires > now);
            self.swept_at_len = self.entries.len();
        }
        self.entries.insert(key, (expires, value));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expired_entries_are_not_found_and_are_swept_once_the_map_has_doubled() {
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        let mut m = Expiring::default();
        for k in 0..128 {
            m.insert(k, now + Duration::from_secs(1), (), now);
        }
        assert!(m.get(3, now).is_some());
        assert!(m.get(3, later).is_none(), "expired");
        // The next insert, after they all expired, sweeps them.
        m.insert(1000, later + Duration::from_secs(1), (), later);
        assert_eq!(m.len(), 1);
        assert!(m.get(1000, later).is_some());
    }
}
