//! What every mailbox worker shares: the config-derived parts (rules, API client, limits),
//! replaced on reload, and the [`Runtime`], which outlives reloads.

use crate::config::{Config, VerifySender};
use crate::daemon::api_turns::{ReadTurn, WriteTurn};
use crate::daemon::claims::{Claim, Claims};
use crate::daemon::clock_learning::ClockLearning;
use crate::daemon::defer_cause::DeferCause;
use crate::daemon::leadership::Leadership;
use crate::daemon::outcome::Outcome;
use crate::daemon::ticket_holds::TicketHolds;
use crate::daemon::ticket_owners::TicketOwners;
use crate::ledger::Ledger;
use crate::mail::MailId;
use crate::mail::decide::Rules;
use crate::mail::size::ByteSize;
use crate::ops::api_health::ApiHealth;
use crate::ops::health::Health;
use crate::thulium::{Gate, ThuliumClient};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore, watch};

/// How long posting pauses after the API refused our credentials.
pub(crate) const CREDENTIALS_PAUSE: Duration = Duration::from_secs(300);

/// State that must survive a reload: a copy being delivered, a ticket on hold, an
/// outage in progress are facts about the world, not about the config.
#[derive(Debug)]
pub(crate) struct Runtime {
    ledger: Ledger,
    health: Arc<Health>,
    claims: Arc<Claims>,
    holds: TicketHolds,
    owners: TicketOwners,
    /// What the API's `created_at` means, as far as it is known.
    clock: ClockLearning,
    /// Raw mail bytes being fetched and decided at once, across mailboxes, in KiB.
    reading: Arc<Semaphore>,
    /// Which mailboxes this instance leads, when instances share the ledger.
    leadership: Option<Arc<Leadership>>,
}

/// A mail costs about four times its size while fetched and parsed (measured: 108 MiB
/// peak for a 27 MiB mail); 64 MiB of mail at once keeps that near 260 MiB whatever the
/// number of mailboxes, well inside the unit's `MemoryMax=512M`.
pub(crate) const READING_BUDGET_KIB: u32 = 64 << 10;

impl Runtime {
    pub(crate) async fn new(
        ledger: Ledger,
        health: Arc<Health>,
        timezone: chrono_tz::Tz,
        leadership: Option<Arc<Leadership>>,
    ) -> Arc<Runtime> {
        Arc::new(Runtime {
            clock: ClockLearning::new(&ledger, timezone).await,
            ledger,
            health,
            claims: Arc::default(),
            holds: TicketHolds::default(),
            owners: TicketOwners::default(),
            reading: Arc::new(Semaphore::new(READING_BUDGET_KIB as usize)),
            leadership,
        })
    }

    pub(crate) fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub(crate) fn api_health(&self) -> &ApiHealth {
        &self.health.api
    }
}

/// The daemon's parts as one config made them; each reached through a method that
/// says what a caller may do with it.
pub(crate) struct Bridge {
    config: Arc<Config>,
    rules: Rules,
    /// The rules with each mailbox's own facts (its address, its trusted
    /// Authentication-Results ids), by mailbox name.
    mailbox_rules: std::collections::HashMap<String, Rules>,
    /// The same for mails in each mailbox's approve folder: vouched for by a person.
    approve_rules: std::collections::HashMap<String, (String, Rules)>,
    api: ThuliumClient,
    runtime: Arc<Runtime>,
    /// `thulium.concurrency`: POSTs in flight across all mailboxes and tickets.
    api_slots: Semaphore,
    /// As many again for reading tickets (verify_sender, read-backs): a backlog to many
    /// tickets needs one read per ticket, which must not halve the posting rate.
    read_slots: Semaphore,
    dry_run: bool,
    /// `StateConfig::host_name`, read once (it may read the host name from /proc).
    host_name: String,
    /// Set while the API refuses our credentials (with the status it answered): nobody
    /// posts until it has passed. Not carried over a reload: a new password is tried at once.
    credentials_refused_until: Mutex<Option<(u16, Instant)>>,
}

impl Bridge {
    pub(crate) fn new(
        config: Arc<Config>,
        dry_run: bool,
        runtime: Arc<Runtime>,
    ) -> anyhow::Result<Bridge> {
        let rules = config.rules().map_err(anyhow::Error::msg)?;
        let t = &config.thulium;
        let password = t
            .password
            .clone()
            .ok_or_else(|| anyhow::anyhow!("thulium.password was not resolved"))?;
        let instance = runtime
            .leadership
            .as_ref()
            .map(|l| l.instance().to_string());
        let api = ThuliumClient::new(&t.url, &t.user, password, t.timeout, instance.as_deref())?;
        runtime.clock.set_account(rules.timezone);
        let mailbox_rules = config
            .mailboxes
            .iter()
            .map(|mb| (mb.name.clone(), mb.rules(&rules)))
            .collect();
        let approve_rules = config
            .mailboxes
            .iter()
            .filter_map(|mb| {
                let folder = mb.approve_folder()?.to_string();
                Some((mb.name.clone(), (folder, mb.rules(&rules).vouched())))
            })
            .collect();
        Ok(Bridge {
            mailbox_rules,
            approve_rules,
            api_slots: Semaphore::new(t.concurrency),
            read_slots: Semaphore::new(t.concurrency),
            rules,
            api,
            runtime,
            dry_run,
            host_name: config.state.host_name(),
            credentials_refused_until: Mutex::new(None),
            config,
        })
    }

    /// The rules for one mailbox (the general ones for a name the config lacks).
    pub(crate) fn rules_for(&self, mailbox: &str) -> &Rules {
        self.mailbox_rules.get(mailbox).unwrap_or(&self.rules)
    }

    /// The rules for a mail in `folder` of `mailbox`: vouched for in its approve folder.
    pub(crate) fn rules_at(&self, mailbox: &str, folder: &str) -> &Rules {
        match self.approve_rules.get(mailbox) {
            Some((approve, rules)) if approve == folder => rules,
            _ => self.rules_for(mailbox),
        }
    }

    pub(crate) fn ledger(&self) -> &Ledger {
        &self.runtime.ledger
    }

    /// Nothing is written: not to the API, the ledger or the mailbox.
    pub(crate) fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// Whether this instance may post and dispose for `mailbox` now: always on its own
    /// ledger; with a shared one, while its lease on the mailbox is surely its own.
    pub(crate) fn leads(&self, mailbox: &str) -> bool {
        self.runtime
            .leadership
            .as_ref()
            .is_none_or(|l| l.leads(mailbox))
    }

    /// What a POST for `mailbox` asks as it leaves: whether this instance still leads it
    /// (a process paused after its own check must not send on waking).
    pub(crate) fn gate(&self, mailbox: &str) -> Gate {
        match &self.runtime.leadership {
            Some(l) => {
                let (leadership, mailbox) = (Arc::clone(l), mailbox.to_string());
                Gate::new(move || leadership.leads(&mailbox))
            }
            None => Gate::open(),
        }
    }

    /// Waits for a turn at writing to the API.
    pub(crate) async fn write_turn(&self) -> WriteTurn<'_> {
        WriteTurn {
            api: &self.api,
            _slot: self.api_slots.acquire().await.ok(),
        }
    }

    /// Waits for a turn at reading tickets.
    pub(crate) async fn read_turn(&self) -> ReadTurn<'_> {
        ReadTurn {
            api: &self.api,
            _slot: self.read_slots.acquire().await.ok(),
        }
    }

    /// Whether the API is up, and what a request's result says about it.
    pub(crate) fn api_health(&self) -> &ApiHealth {
        self.runtime.api_health()
    }

    /// The daemon's health, for `/healthz` and the status line.
    pub(crate) fn health(&self) -> &Health {
        &self.runtime.health
    }

    /// Claims a mail for this delivery, or hands over the claimant's outcome to wait for.
    pub(crate) fn claim(&self, id: &MailId) -> Result<Claim, watch::Receiver<Option<Outcome>>> {
        self.runtime.claims.claim(id)
    }

    /// Tickets whose next reply has to wait.
    pub(crate) fn holds(&self) -> &TicketHolds {
        &self.runtime.holds
    }

    /// Each ticket's customer, as read.
    pub(crate) fn owners(&self) -> &TicketOwners {
        &self.runtime.owners
    }

    /// What the API's `created_at` means, as far as it is known.
    pub(crate) fn clock(&self) -> &ClockLearning {
        &self.runtime.clock
    }

    /// Waits for `kib` of the process-wide budget for mail being read.
    pub(crate) async fn reading_budget(
        &self,
        kib: u32,
    ) -> Result<OwnedSemaphorePermit, AcquireError> {
        Arc::clone(&self.runtime.reading)
            .acquire_many_owned(kib)
            .await
    }

    /// `delivery.max_attempts` / `max_age`: why a mail is given up, if it is.
    pub(crate) fn given_up(&self, attempts: u32, age: Duration) -> Option<String> {
        self.config.delivery.given_up(attempts, age)
    }

    pub(crate) fn verify_sender(&self) -> VerifySender {
        self.config.thulium.verify_sender
    }

    pub(crate) fn max_message_size(&self) -> ByteSize {
        self.rules.content.max_message_size
    }

    pub(crate) fn state_dir(&self) -> &Path {
        &self.config.state.dir
    }

    /// This host, as the poison strikes name it.
    pub(crate) fn host_name(&self) -> &str {
        &self.host_name
    }

    /// `state.keep_decisions`: how long `ledger list` remembers a decided mail.
    pub(crate) fn keep_decisions(&self) -> Duration {
        self.config.state.keep_decisions
    }

    /// `delivery.stop_timeout`: how long a stop waits for the posts under way.
    pub(crate) fn stop_timeout(&self) -> Duration {
        self.config.delivery.stop_timeout
    }

    /// While the API refuses our credentials: what a mail waits for (the status it
    /// answered, and the pause left).
    pub(crate) fn credentials_paused(&self) -> Option<DeferCause> {
        let mut until = self
            .credentials_refused_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (status, t) = (*until)?;
        let left = t.saturating_duration_since(Instant::now());
        if left.is_zero() {
            *until = None;
            return None;
        }
        Some(DeferCause::ApiCredentials {
            status,
            pause: left,
        })
    }

    /// The API refused our credentials with `status`: said loudly, counted against the
    /// API's health, and posting pauses for every mailbox. What the mail waits for.
    pub(crate) fn credentials_refused(&self, status: u16, message: &str) -> DeferCause {
        tracing::error!(
            status,
            "the Thulium API refused our credentials ({message}); posting paused for every mailbox. \
             Check thulium.user and the password, and that the API user may write to tickets"
        );
        self.api_health()
            .request_failed(&format!("HTTP {status}: {message}"), true);
        let mut until = self
            .credentials_refused_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *until = Instant::now()
            .checked_add(CREDENTIALS_PAUSE)
            .map(|t| (status, t));
        DeferCause::ApiCredentials {
            status,
            pause: CREDENTIALS_PAUSE,
        }
    }
}
