//! One leader per mailbox when instances share a PostgreSQL ledger. A lease is a row in
//! `leases`: holder, epoch (the fencing token every ledger write for the mailbox is
//! checked against, `ledger/postgres.rs`) and expiry on the database's clock. The keeper
//! renews what this instance holds every third of the lease and counts it as ours only
//! until half the lease after the renewal was sent: a leader that cannot renew (paused,
//! cut off, its database gone) stops posting and disposing before anyone else may take
//! over. Free mailboxes are taken up to an even share (⌈mailboxes / live instances⌉); a
//! surplus is handed back once its mailbox loop has finished the mail in hand.
//!
//! Only short statements on a session of its own, never a session advisory lock: those
//! do not survive a pooler in transaction mode, and a cancelled lock query can leave one
//! held.

use crate::ledger::postgres::{Fences, PgConn, Target};
use crate::ledger::sql::{Sql, SqlResult, params};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

use crate::ledger::leases::DB_NOW_MS as NOW_MS;

/// A mailbox this instance leads.
#[derive(Debug, Clone)]
struct Held {
    epoch: i64,
    /// Ours until then (monotonic): half a lease after the last renewal was sent.
    until: Instant,
    /// Handed back once its loop has stopped (a surplus).
    surrendering: bool,
}

pub(crate) struct Leadership {
    instance: String,
    /// Takes every mailbox it can (`once`), not an even share.
    greedy: bool,
    lease: Duration,
    held: Mutex<BTreeMap<String, Held>>,
    fences: Fences,
    /// Mailboxes whose loops should run: led, not being handed back.
    wanted: watch::Sender<BTreeSet<String>>,
    /// Loops that stopped, whose leases are to be handed back.
    let_go: Mutex<Vec<String>>,
    /// Mailboxes handed back, and when: not taken again for a lease, so that another
    /// instance takes them (else two would pass one to and fro).
    handed_back: Mutex<BTreeMap<String, Instant>>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Leadership {
    pub(crate) fn new(
        instance: String,
        lease: Duration,
        fences: Fences,
        greedy: bool,
    ) -> Arc<Leadership> {
        Arc::new(Leadership {
            instance,
            greedy,
            lease,
            held: Mutex::default(),
            fences,
            wanted: watch::channel(BTreeSet::new()).0,
            let_go: Mutex::default(),
            handed_back: Mutex::default(),
        })
    }

    pub(crate) fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether this instance may post and dispose for `mailbox` now.
    pub(crate) fn leads(&self, mailbox: &str) -> bool {
        lock(&self.held)
            .get(mailbox)
            .is_some_and(|h| Instant::now() < h.until)
    }

    /// Whether a loop for `mailbox` should run: led now, and not being handed back.
    pub(crate) fn serves(&self, mailbox: &str) -> bool {
        self.wanted.borrow().contains(mailbox) && self.leads(mailbox)
    }

    /// The mailboxes whose loops should run, as it changes.
    pub(crate) fn wanted(&self) -> watch::Receiver<BTreeSet<String>> {
        self.wanted.subscribe()
    }

    /// A mailbox's loop has stopped (or never ran): a lease being handed back goes.
    pub(crate) fn stopped(&self, mailbox: &str) {
        let surrendering = lock(&self.held)
            .get(mailbox)
            .is_some_and(|h| h.surrendering);
        let mut let_go = lock(&self.let_go);
        if surrendering && !let_go.iter().any(|m| m == mailbox) {
            let_go.push(mailbox.to_string());
        }
    }

    /// Renews, takes and hands back leases until `stop`, every third of the lease, on
    /// a thread of its own (the client blocks). At the end every lease is handed back,
    /// so that a successor takes over at once.
    pub(crate) fn keep(
        self: &Arc<Leadership>,
        target: Target,
        mailboxes: watch::Receiver<Vec<String>>,
        health: Arc<crate::ops::health::Health>,
        stop: tokio_util::sync::CancellationToken,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name("leases".into())
            .spawn(move || {
                let mut conn: Option<PgConn> = None;
                let mut down = false;
                while !stop.is_cancelled() {
                    let began = Instant::now();
                    let configured = mailboxes.borrow().clone();
                    let turn = match conn.as_mut() {
                        Some(c) => c.reconnect().map(|()| c),
                        None => PgConn::open(target.clone(), Fences::default())
                            .map(|c| conn.insert(c)),
                    };
                    let result = turn.and_then(|c| me.turn(c, &configured));
                    crate::ops::metrics::ledger_up(result.is_ok());
                    health.ledger(result.is_err().then_some(target.name()));
                    // Said once when it starts and once when it ends.
                    match (result, down) {
                        (Ok(()), true) => {
                            tracing::info!("leases: the ledger's database answers again");
                            down = false;
                        }
                        (Err(e), false) => {
                            tracing::warn!(
                                "leases: cannot renew ({e}); mailboxes stop being served when their lease runs out"
                            );
                            down = true;
                        }
                        _ => {}
                    }
                    me.expire();
                    // Short sleeps: a stop is noticed at once, a turn is taken on time.
                    while began.elapsed() < me.lease / 3 && !stop.is_cancelled() {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                if let Some(c) = conn.as_mut() {
                    me.release_all(c);
                }
            })
    }

    /// One turn: say we are up, renew, hand back, take.
    fn turn(&self, conn: &mut PgConn, configured: &[String]) -> SqlResult<()> {
        conn.execute(
            &format!(
                "INSERT INTO instances (instance, seen_ms) VALUES (?1, {NOW_MS}) \
                 ON CONFLICT (instance) DO UPDATE SET seen_ms = excluded.seen_ms"
            ),
            params![&self.instance],
        )?;
        self.renew(conn)?;
        let handing_back = !lock(&self.let_go).is_empty();
        self.hand_back(conn)?;
        let live = (conn as &mut dyn Sql).query_int(
            // Seen every third of a lease: one not seen for a whole lease is gone.
            &format!("SELECT COUNT(*) FROM instances WHERE seen_ms > {NOW_MS} - ?1"),
            params![self.lease_ms()],
        )?;
        let share = if self.greedy {
            configured.len()
        } else {
            configured
                .len()
                .div_ceil(usize::try_from(live.max(1)).unwrap_or(1))
        };
        // A mailbox without a leader (free, or its lease ran out) is taken whatever the
        // share: an instance that died still counts as live for a while, and its
        // mailboxes must not wait for that. Not in the turn that handed one back.
        if !handing_back {
            self.take_leaderless(conn, configured)?;
        }
        let held: Vec<String> = lock(&self.held).keys().cloned().collect();
        let surrendering = lock(&self.held).values().any(|h| h.surrendering);
        if held.len() > share && !surrendering {
            // One at a time: another instance takes it before more is handed back.
            if let Some(name) = held.iter().rev().find(|m| configured.contains(m)) {
                if let Some(h) = lock(&self.held).get_mut(name) {
                    h.surrendering = true;
                }
                tracing::info!(mailbox = %name, share, "leases: handing back a mailbox to spread the work");
            }
        }
        // A mailbox no longer configured (its loop was stopped before the keeper heard
        // of the new config) is handed back at the next turn.
        lock(&self.let_go).extend(held.iter().filter(|m| !configured.contains(m)).cloned());
        // 0 for each one led elsewhere: a mailbox nobody leads shows as 0 everywhere.
        for mailbox in configured {
            let leads = lock(&self.held).contains_key(mailbox);
            crate::ops::metrics::mailbox_leader(mailbox, &self.instance, leads);
        }
        self.publish();
        Ok(())
    }

    fn take_leaderless(&self, conn: &mut PgConn, configured: &[String]) -> SqlResult<()> {
        lock(&self.handed_back).retain(|_, at| at.elapsed() < self.lease);
        for mailbox in configured {
            let skip = lock(&self.held).contains_key(mailbox)
                || lock(&self.handed_back).contains_key(mailbox);
            if !skip {
                self.take(conn, mailbox)?;
            }
        }
        Ok(())
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }

    fn renew(&self, conn: &mut PgConn) -> SqlResult<()> {
        let held: Vec<(String, i64)> = lock(&self.held)
            .iter()
            .map(|(m, h)| (m.clone(), h.epoch))
            .collect();
        for (mailbox, epoch) in held {
            let sent = Instant::now();
            let renewed = conn.execute(
                &format!(
                    "UPDATE leases SET expires_ms = {NOW_MS} + ?1 WHERE mailbox = ?2 AND holder = ?3 AND epoch = ?4"
                ),
                params![self.lease_ms(), &mailbox, &self.instance, epoch],
            )?;
            if renewed == 1 {
                if let Some(h) = lock(&self.held).get_mut(&mailbox) {
                    h.until = sent + self.lease / 2;
                }
            } else {
                tracing::warn!(mailbox = %mailbox, epoch, "leases: lost the lease (another instance took it); not serving this mailbox");
                self.forget(&mailbox);
            }
        }
        Ok(())
    }

    /// Takes `mailbox` if nobody holds an unexpired lease on it.
    fn take(&self, conn: &mut PgConn, mailbox: &str) -> SqlResult<bool> {
        let sent = Instant::now();
        let rows = conn.query(
            &format!(
                "INSERT INTO leases (mailbox, holder, epoch, expires_ms, since_ms) \
                 VALUES (?1, ?2, 1, {NOW_MS} + ?3, {NOW_MS}) \
                 ON CONFLICT (mailbox) DO UPDATE SET holder = excluded.holder, epoch = leases.epoch + 1, \
                 expires_ms = excluded.expires_ms, since_ms = excluded.since_ms \
                 WHERE leases.expires_ms < excluded.since_ms RETURNING epoch"
            ),
            params![mailbox, &self.instance, self.lease_ms()],
        )?;
        let Some(row) = rows.first() else {
            return Ok(false);
        };
        let epoch = row.int(0)?;
        lock(&self.fences).insert(mailbox.to_string(), epoch);
        lock(&self.held).insert(
            mailbox.to_string(),
            Held {
                epoch,
                until: sent + self.lease / 2,
                surrendering: false,
            },
        );
        tracing::info!(mailbox = %mailbox, epoch, instance = %self.instance, "leases: leading this mailbox");
        crate::ops::metrics::mailbox_leader(mailbox, &self.instance, true);
        Ok(true)
    }

    fn hand_back(&self, conn: &mut PgConn) -> SqlResult<()> {
        let names: Vec<String> = std::mem::take(&mut *lock(&self.let_go));
        for (i, mailbox) in names.iter().enumerate() {
            if let Err(e) = self.release(conn, mailbox) {
                // Those not handed back yet are, at a later turn.
                lock(&self.let_go).extend(names.iter().skip(i).cloned());
                return Err(e);
            }
        }
        Ok(())
    }

    fn release(&self, conn: &mut PgConn, mailbox: &str) -> SqlResult<()> {
        let epoch = lock(&self.held).get(mailbox).map(|h| h.epoch);
        if let Some(epoch) = epoch {
            conn.execute(
                "UPDATE leases SET expires_ms = 0 WHERE mailbox = ?1 AND holder = ?2 AND epoch = ?3",
                params![mailbox, &self.instance, epoch],
            )?;
            self.forget(mailbox);
            lock(&self.handed_back).insert(mailbox.to_string(), Instant::now());
            tracing::info!(mailbox = %mailbox, epoch, "leases: handed back");
        }
        Ok(())
    }

    fn release_all(&self, conn: &mut PgConn) {
        let names: Vec<String> = lock(&self.held).keys().cloned().collect();
        for mailbox in names {
            if let Err(e) = self.release(conn, &mailbox) {
                // The database does not answer: the others would wait as long; they expire.
                tracing::warn!("leases: not handed back at stop ({e}); they expire by themselves");
                return;
            }
        }
        let _ = conn.execute(
            "DELETE FROM instances WHERE instance = ?1",
            params![&self.instance],
        );
    }

    /// Drops what ran out unrenewed: its loop stops, nothing more is written for it.
    fn expire(&self) {
        let now = Instant::now();
        let gone: Vec<String> = lock(&self.held)
            .iter()
            .filter(|(_, h)| now >= h.until)
            .map(|(m, _)| m.clone())
            .collect();
        for mailbox in gone {
            tracing::warn!(mailbox = %mailbox, "leases: not renewed in time; not serving this mailbox until it leads again");
            self.forget(&mailbox);
        }
        self.publish();
    }

    fn forget(&self, mailbox: &str) {
        lock(&self.held).remove(mailbox);
        lock(&self.fences).remove(mailbox);
        crate::ops::metrics::mailbox_leader(mailbox, &self.instance, false);
    }

    fn publish(&self) {
        let wanted: BTreeSet<String> = lock(&self.held)
            .iter()
            .filter(|(_, h)| !h.surrendering)
            .map(|(m, _)| m.clone())
            .collect();
        self.wanted.send_if_modified(|w| {
            let changed = *w != wanted;
            *w = wanted;
            changed
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
