//! What every mailbox worker shares: the rules, the API client, the ledger and the limits.

use crate::config::Config;
use crate::decide::Rules;
use crate::health::Health;
use crate::ledger::Ledger;
use crate::thulium::ThuliumClient;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How long posting pauses after the API refused our credentials.
pub const CREDENTIALS_PAUSE: Duration = Duration::from_secs(300);

pub struct Bridge {
    pub config: Arc<Config>,
    pub rules: Rules,
    pub api: ThuliumClient,
    pub ledger: Ledger,
    pub health: Arc<Health>,
    /// `thulium.concurrency`: requests in flight across all mailboxes and tickets.
    pub api_slots: Semaphore,
    pub dry_run: bool,
    /// Set while the API refuses our credentials: nobody posts until it has passed.
    credentials_refused_until: Mutex<Option<Instant>>,
    /// Ledger keys being delivered right now, so a copy in a second mailbox waits.
    in_flight: Mutex<HashSet<String>>,
}

impl Bridge {
    /// The ledger and health outlive a reload, so they are passed in.
    pub fn new(
        config: Arc<Config>,
        dry_run: bool,
        ledger: Ledger,
        health: Arc<Health>,
    ) -> anyhow::Result<Bridge> {
        let rules = Rules::new(&config).map_err(anyhow::Error::msg)?;
        let t = &config.thulium;
        let password = t
            .password
            .clone()
            .ok_or_else(|| anyhow::anyhow!("thulium.password was not resolved"))?;
        let api = ThuliumClient::new(&t.url, &t.user, password, t.timeout)?;
        Ok(Bridge {
            api_slots: Semaphore::new(t.concurrency),
            rules,
            api,
            ledger,
            health,
            dry_run,
            credentials_refused_until: Mutex::new(None),
            in_flight: Mutex::new(HashSet::new()),
            config,
        })
    }

    /// False while posting is paused after a 401/403.
    pub fn may_post(&self) -> bool {
        let mut until = self
            .credentials_refused_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match *until {
            Some(t) if Instant::now() < t => false,
            Some(_) => {
                *until = None;
                true
            }
            None => true,
        }
    }

    /// Pauses posting for every mailbox after the API refused our credentials.
    pub fn credentials_refused(&self) {
        let mut until = self
            .credentials_refused_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *until = Some(Instant::now() + CREDENTIALS_PAUSE);
    }

    /// Claims a mail for delivery; false when another worker has it in hand.
    pub fn claim(&self, key: &str) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string())
    }

    pub fn release(&self, key: &str) {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}
