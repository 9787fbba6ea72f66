//! Learning the API's clock (`thulium::api_clock`) from what tickets show of replies the
//! bridge posted: from every ticket it reads anyway (the sender check, read-backs) and,
//! while little is known, from one extra read of the ticket after a post. What is
//! learned is kept in the ledger and said in the log when it changes.

use crate::ledger::{Ledger, PostedReply};
use crate::thulium::Ticket;
use crate::thulium::api_clock::{ApiClock, Observation};
use crate::thulium::read_back::stored_text_hashes;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Observations that agree before reads after a post stop.
const ENOUGH: usize = 3;
/// Reads that taught nothing before the bridge stops trying (an API whose tickets never
/// show a post as one message with its text), until the next start.
const FRUITLESS: u32 = 20;

#[derive(Debug)]
pub(crate) struct ClockLearning {
    clock: Mutex<ApiClock>,
    /// An extra read after a post is under way (one at a time).
    reading: AtomicBool,
    /// Reads in a row that taught nothing.
    fruitless: AtomicU32,
}

impl ClockLearning {
    /// What the ledger kept, for an account in `account`; said in the log when known.
    pub(crate) async fn new(ledger: &Ledger, account: chrono_tz::Tz) -> ClockLearning {
        let kept = ledger.clock_observations().await.unwrap_or_else(|e| {
            tracing::warn!("{e}; learning the API's clock afresh");
            Vec::new()
        });
        let clock = ApiClock::learn(account, kept);
        if clock.learned() {
            tracing::info!("{}", clock.describe());
        }
        ClockLearning {
            clock: Mutex::new(clock),
            reading: AtomicBool::new(false),
            fruitless: AtomicU32::new(0),
        }
    }

    /// Runs `f` on what is known now.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&ApiClock) -> R) -> R {
        f(&self.clock.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A new `thulium.timezone`: what was seen is read again in it.
    pub(crate) fn set_account(&self, account: chrono_tz::Tz) {
        let mut clock = self.clock.lock().unwrap_or_else(|e| e.into_inner());
        if clock.account() != account {
            *clock = ApiClock::learn(account, clock.observations().cloned().collect::<Vec<_>>());
        }
    }

    /// Whether a ticket read only to learn is worth it now; if so, the caller holds the
    /// one turn until the returned guard drops.
    pub(crate) fn read_turn(&self) -> Option<ReadTurn<'_>> {
        if !self.wants_more() {
            return None;
        }
        (!self.reading.swap(true, Ordering::AcqRel)).then_some(ReadTurn(&self.reading))
    }

    /// Whether tickets read for other reasons should be looked at.
    pub(crate) fn wants_more(&self) -> bool {
        self.with(|c| c.agreeing()) < ENOUGH && self.fruitless.load(Ordering::Relaxed) < FRUITLESS
    }

    /// Learns from `ticket`'s messages that are replies the ledger (or `just_posted`)
    /// knows were posted: only a text that one message and one post share says which
    /// message is which post.
    pub(crate) async fn learn(
        &self,
        ledger: &Ledger,
        ticket: &Ticket,
        just_posted: Option<PostedReply>,
    ) {
        let mut known = match ledger.posted_on_ticket(ticket.ticket_id).await {
            Ok(known) => known,
            Err(e) => {
                tracing::debug!("{e}; not learning from ticket {}", ticket.ticket_id);
                return;
            }
        };
        known.extend(just_posted);
        if known.is_empty() {
            return;
        }
        let mut posts: HashMap<&str, Vec<&PostedReply>> = HashMap::new();
        for p in &known {
            posts.entry(p.text_hash.as_str()).or_default().push(p);
        }
        let mut shown: HashMap<&str, Vec<&str>> = HashMap::new();
        for m in ticket.messages.iter().filter(|m| m.is_mail()) {
            let (Some(body), Some(time)) = (m.body.as_deref(), m.time()) else {
                continue;
            };
            let hashes = stored_text_hashes(body);
            if let Some((hash, _)) = posts
                .get_key_value(hashes[0].as_str())
                .or_else(|| posts.get_key_value(hashes[1].as_str()))
            {
                shown.entry(hash).or_default().push(time);
            }
        }
        let seen: Vec<Observation> = shown
            .into_iter()
            .filter_map(|(hash, times)| {
                match (times.as_slice(), posts.get(hash).map(Vec::as_slice)) {
                    ([created_at], Some([p])) => Some(Observation {
                        created_at: (*created_at).to_string(),
                        date_sent: p.date_sent.clone(),
                        from: p.from,
                        to: p.to,
                    }),
                    _ => None,
                }
            })
            .collect();
        let (before, after, new) = {
            let mut clock = self.clock.lock().unwrap_or_else(|e| e.into_inner());
            let before = clock.summary();
            let new: Vec<Observation> = seen
                .into_iter()
                .filter(|o| clock.observe(o.clone()))
                .collect();
            (before, clock.describe(), new)
        };
        if new.is_empty() {
            self.fruitless.fetch_add(1, Ordering::Relaxed);
        } else {
            self.fruitless.store(0, Ordering::Relaxed);
        }
        if !new.is_empty() && !after.starts_with(&before) {
            tracing::info!("{after}");
        }
        for o in new {
            if let Err(e) = ledger.observe_clock(ticket.ticket_id, o).await {
                tracing::warn!("{e}; what the API's clock showed is not kept");
            }
        }
    }
}

/// The one extra read after a post at a time; given back when dropped.
pub(crate) struct ReadTurn<'a>(&'a AtomicBool);

impl Drop for ReadTurn<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
