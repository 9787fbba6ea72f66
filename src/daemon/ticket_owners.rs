//! Who each ticket's customer is (`from` of `GET tickets/{id}`), remembered for a few
//! minutes, so a backlog of replies to one ticket costs one GET, not one per reply.

use super::expiring::Expiring;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Long enough for a backlog, short enough that a ticket handed to another customer
/// is noticed soon.
const REMEMBERED: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub(crate) struct TicketOwners {
    known: Mutex<Expiring<Option<String>>>,
}

impl TicketOwners {
    /// The ticket's customer address (lower-cased), if remembered and fresh.
    pub(crate) fn get(&self, ticket: u64) -> Option<Option<String>> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(ticket, Instant::now())
            .map(|(_, owner)| owner.clone())
    }

    pub(crate) fn remember(&self, ticket: u64, owner: Option<&str>) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let owner = owner.map(|o| o.trim().to_ascii_lowercase());
        known.insert(ticket, now + REMEMBERED, owner, now);
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
