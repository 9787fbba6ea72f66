//! Which mailboxes are up, for `/healthz`, `STATUS=` and `thulium_bridge_mailbox_up`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Failed connection attempts in a row after which a mailbox counts as down
/// rather than recovering.
const DOWN_AFTER_FAILURES: u32 = 3;

#[derive(Debug, Clone)]
struct MailboxHealth {
    connected: bool,
    failures: u32,
    down_since: Option<SystemTime>,
    /// The kind of trouble (never the error text: it may name the user).
    problem: Option<&'static str>,
}

/// Shared by the workers (writers) and the HTTP listener and notifier (readers).
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Whether the Thulium API fails for everyone.
    pub api: crate::ops::api_health::ApiHealth,
    /// Every mailbox seen connected or failed at least once (ready when all have been).
    mailboxes: Mutex<BTreeMap<String, MailboxHealth>>,
    /// The mailboxes the config has, for readiness.
    expected: Mutex<std::collections::BTreeSet<String>>,
    posted: Mutex<(u64, Option<Instant>)>,
    /// A shared ledger that stopped answering: since when, and which (its URL).
    ledger_down: Mutex<Option<(SystemTime, String)>>,
}

impl Health {
    pub(crate) fn connected(&self, mailbox: &str) {
        crate::ops::metrics::mailbox_up(mailbox, true);
        self.lock().insert(
            mailbox.to_string(),
            MailboxHealth {
                connected: true,
                failures: 0,
                down_since: None,
                problem: None,
            },
        );
    }

    /// A failed connection or a broken session, by its kind; `fatal` (e.g. a refused
    /// login) is down at once.
    pub(crate) fn failed(&self, mailbox: &str, problem: &'static str, fatal: bool) {
        crate::ops::metrics::mailbox_up(mailbox, false);
        let mut all = self.lock();
        let h = all.entry(mailbox.to_string()).or_insert(MailboxHealth {
            connected: false,
            failures: 0,
            down_since: None,
            problem: None,
        });
        h.connected = false;
        h.failures += 1;
        h.down_since.get_or_insert_with(SystemTime::now);
        h.problem = Some(problem);
        if fatal {
            h.failures = h.failures.max(DOWN_AFTER_FAILURES);
        }
    }

    pub(crate) fn forget(&self, mailbox: &str) {
        self.lock().remove(mailbox);
        self.expected_lock().remove(mailbox);
    }

    /// A mailbox the config has; readiness waits for its first connection or failure.
    pub(crate) fn expect(&self, mailbox: &str) {
        self.expected_lock().insert(mailbox.to_string());
    }

    /// `/readyz`: starting until every mailbox has connected or failed once, then as
    /// `/healthz`.
    pub(crate) fn readiness(&self) -> (bool, serde_json::Value) {
        let expected = self.expected_lock().clone();
        let all = self.lock();
        let seen = expected.iter().filter(|m| all.contains_key(*m)).count();
        let connected = expected
            .iter()
            .filter(|m| all.get(*m).is_some_and(|h| h.connected))
            .count();
        drop(all);
        if seen < expected.len() {
            let status = format!(
                "starting: {connected} of {} mailboxes connected",
                expected.len()
            );
            return (false, serde_json::json!({"ready": false, "status": status}));
        }
        let (ok, mut report) = self.report();
        report["ready"] = serde_json::Value::Bool(ok);
        (ok, report)
    }

    /// The shared ledger answers (`None`) or not since now (`Some(its URL)`): nothing
    /// is posted meanwhile, and `/healthz` says so.
    pub(crate) fn ledger(&self, down: Option<&str>) {
        let mut state = self.ledger_down.lock().unwrap_or_else(|e| e.into_inner());
        match down {
            None => *state = None,
            Some(name) => {
                state.get_or_insert_with(|| (SystemTime::now(), name.to_string()));
            }
        }
    }

    pub(crate) fn posted(&self, count: u64) {
        if count > 0 {
            let mut p = self.posted.lock().unwrap_or_else(|e| e.into_inner());
            p.0 += count;
            p.1 = Some(Instant::now());
        }
    }

    /// Healthy while every mailbox is connected or still recovering within its backoff,
    /// and the API is not failing for every request.
    pub(crate) fn report(&self) -> (bool, serde_json::Value) {
        let api_down = self.api.down().map(|(since, error)| {
            serde_json::json!({
                "down_since": humantime::format_rfc3339_seconds(since).to_string(),
                "error": error,
            })
        });
        let all = self.lock();
        let down: Vec<serde_json::Value> = all
            .iter()
            .filter(|(_, h)| !h.connected && h.failures >= DOWN_AFTER_FAILURES)
            .map(|(name, h)| {
                serde_json::json!({
                    "mailbox": name,
                    "down_since": h.down_since.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
                    "problem": h.problem,
                })
            })
            .collect();
        let ledger_down = self
            .ledger_down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .map(|(since, name)| {
                serde_json::json!({
                    "down_since": humantime::format_rfc3339_seconds(since).to_string(),
                    "ledger": name,
                })
            });
        let ok = down.is_empty() && api_down.is_none() && ledger_down.is_none();
        let up = all.values().filter(|h| h.connected).count();
        let mut report =
            serde_json::json!({"ok": ok, "mailboxes": all.len(), "connected": up, "down": down});
        if let Some(api) = api_down {
            report["api"] = api;
        }
        if let Some(ledger) = ledger_down {
            report["ledger"] = ledger;
        }
        (ok, report)
    }

    /// One line for systemd's STATUS=.
    pub(crate) fn status_line(&self) -> String {
        let all = self.lock();
        let up = all.values().filter(|h| h.connected).count();
        let (posted, last) = *self.posted.lock().unwrap_or_else(|e| e.into_inner());
        let last = match last {
            Some(t) => format!(
                ", last post {} ago",
                humantime::format_duration(Duration::from_secs(t.elapsed().as_secs()))
            ),
            None => String::new(),
        };
        format!(
            "{} mailboxes ({up} connected), {posted} posted{last}",
            all.len()
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, MailboxHealth>> {
        self.mailboxes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn expected_lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<String>> {
        self.expected.lock().unwrap_or_else(|e| e.into_inner())
    }
}
