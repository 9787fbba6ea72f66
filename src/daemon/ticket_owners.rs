//! Who each ticket's customer is (`from` of `GET tickets/{id}`), remembered for a few
//! minutes, so a backlog of replies to one ticket costs one GET, not one per reply.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Long enough for a backlog, short enough that a ticket handed to another customer
/// is noticed soon.
const REMEMBERED: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub struct TicketOwners {
    known: Mutex<Known>,
}

#[derive(Debug, Default)]
struct Known {
    owners: HashMap<u64, (Instant, Option<String>)>,
    /// Stale entries are dropped when the map has doubled since the last sweep: a
    /// backlog over many tickets costs a sweep now and then, not one per ticket.
    swept_at_len: usize,
}

impl TicketOwners {
    /// The ticket's customer address (lower-cased), if remembered and fresh.
    pub fn get(&self, ticket: u64) -> Option<Option<String>> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .owners
            .get(&ticket)
            .filter(|(at, _)| at.elapsed() < REMEMBERED)
            .map(|(_, owner)| owner.clone())
    }

    pub fn remember(&self, ticket: u64, owner: Option<&str>) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.owners.len() >= 2 * known.swept_at_len.max(64) {
            known.owners.retain(|_, (at, _)| at.elapsed() < REMEMBERED);
            known.swept_at_len = known.owners.len();
        }
        known.owners.insert(
            ticket,
            (Instant::now(), owner.map(|o| o.trim().to_ascii_lowercase())),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_remembered_lower_cased() {
        let owners = TicketOwners::default();
        assert_eq!(owners.get(1), None);
        owners.remember(1, Some(" Anna@Customer.Example "));
        owners.remember(2, None);
        assert_eq!(owners.get(1), Some(Some("anna@customer.example".into())));
        assert_eq!(
            owners.get(2),
            Some(None),
            "a ticket without from is remembered too"
        );
    }
}
