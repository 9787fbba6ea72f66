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
    last_error: Option<String>,
}

/// Shared by the workers (writers) and the HTTP listener and notifier (readers).
#[derive(Debug, Default)]
pub struct Health {
    /// Whether the Thulium API fails for everyone.
    pub api: crate::ops::api_health::ApiHealth,
    mailboxes: Mutex<BTreeMap<String, MailboxHealth>>,
    posted: Mutex<(u64, Option<Instant>)>,
}

impl Health {
    pub fn connected(&self, mailbox: &str) {
        crate::ops::metrics::mailbox_up(mailbox, true);
        self.lock().insert(
            mailbox.to_string(),
            MailboxHealth {
                connected: true,
                failures: 0,
                down_since: None,
                last_error: None,
            },
        );
    }

    /// A failed connection or a broken session; `fatal` (e.g. a refused login) is down at once.
    pub fn failed(&self, mailbox: &str, error: &str, fatal: bool) {
        crate::ops::metrics::mailbox_up(mailbox, false);
        let mut all = self.lock();
        let h = all.entry(mailbox.to_string()).or_insert(MailboxHealth {
            connected: false,
            failures: 0,
            down_since: None,
            last_error: None,
        });
        h.connected = false;
        h.failures += 1;
        h.down_since.get_or_insert_with(SystemTime::now);
        h.last_error = Some(error.to_string());
        if fatal {
            h.failures = h.failures.max(DOWN_AFTER_FAILURES);
        }
    }

    pub fn forget(&self, mailbox: &str) {
        self.lock().remove(mailbox);
    }

    pub fn posted(&self, count: u64) {
        if count > 0 {
            let mut p = self.posted.lock().unwrap_or_else(|e| e.into_inner());
            p.0 += count;
            p.1 = Some(Instant::now());
        }
    }

    /// Healthy while every mailbox is connected or still recovering within its backoff,
    /// and the API is not failing for every request.
    pub fn report(&self) -> (bool, serde_json::Value) {
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
                    "error": h.last_error,
                })
            })
            .collect();
        let ok = down.is_empty() && api_down.is_none();
        let up = all.values().filter(|h| h.connected).count();
        let mut report =
            serde_json::json!({"ok": ok, "mailboxes": all.len(), "connected": up, "down": down});
        if let Some(api) = api_down {
            report["api"] = api;
        }
        (ok, report)
    }

    /// One line for systemd's STATUS=.
    pub fn status_line(&self) -> String {
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
}
