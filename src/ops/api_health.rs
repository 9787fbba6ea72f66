//! Is the Thulium API failing for everyone? One log line when an outage starts and one
//! when it ends, `thulium_bridge_api_up`, `/healthz`, and the time of the last accepted
//! POST, which decides whether a failed attempt counts against its mail.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Failed requests in a row, with no POST accepted in between, for this long (or this
/// many of them), and the API counts as down: a blip (a few resets at once) is retried,
/// not announced as an outage.
const DOWN_AFTER_FAILURES: u32 = 3;
const DOWN_AFTER: Duration = Duration::from_secs(5);
const DOWN_AT_ONCE_AFTER_FAILURES: u32 = 12;
/// While it is down, one POST this often finds out whether it is back; the rest wait
/// instead of hammering a helpdesk that is struggling.
const PROBE_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub(crate) struct ApiHealth {
    /// Unix milliseconds of the last accepted POST (0: none since start).
    last_post_ok_ms: AtomicU64,
    outage: Mutex<Outage>,
}

#[derive(Debug, Default)]
struct Outage {
    failures_in_a_row: u32,
    first_failure: Option<SystemTime>,
    down: bool,
    last_error: Option<String>,
    last_probe: Option<Instant>,
}

impl ApiHealth {
    /// A POST was accepted.
    pub(crate) fn post_succeeded(&self) {
        self.last_post_ok_ms
            .fetch_max(crate::ledger::unix_now_ms(), Ordering::Relaxed);
        self.works();
    }

    /// The API is seen to take replies (a POST accepted, or one found on its ticket).
    /// A GET answered alone proves nothing: POSTs may still fail.
    pub(crate) fn works(&self) {
        let mut o = self.lock();
        if o.down {
            let lasted = o
                .first_failure
                .and_then(|t| t.elapsed().ok())
                .map(|d| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string())
                .unwrap_or_default();
            tracing::warn!(lasted = %lasted, "the Thulium API works again; waiting replies are being posted");
            crate::ops::metrics::api_up(true);
        }
        *o = Outage::default();
    }

    /// A request failed for a reason that is not the mail's (transient, credentials).
    pub(crate) fn request_failed(&self, reason: &str, credentials: bool) {
        let mut o = self.lock();
        o.failures_in_a_row = o.failures_in_a_row.saturating_add(1);
        let first = *o.first_failure.get_or_insert_with(SystemTime::now);
        o.last_error = Some(reason.to_string());
        let lasting = first.elapsed().is_ok_and(|d| d >= DOWN_AFTER);
        let many = o.failures_in_a_row >= DOWN_AT_ONCE_AFTER_FAILURES;
        if !o.down
            && (credentials || (o.failures_in_a_row >= DOWN_AFTER_FAILURES && (lasting || many)))
        {
            o.down = true;
            tracing::error!(
                error = %reason,
                "the Thulium API is failing for every request; replies wait (none is given up) until it recovers"
            );
            crate::ops::metrics::api_up(false);
        }
    }

    /// Whether a POST may be tried now: always while the API works, one per
    /// [`PROBE_EVERY`] while it is down.
    pub(crate) fn may_try(&self) -> bool {
        let mut o = self.lock();
        if !o.down {
            return true;
        }
        let now = Instant::now();
        if o.last_probe
            .is_some_and(|t| now.duration_since(t) < PROBE_EVERY)
        {
            return false;
        }
        o.last_probe = Some(now);
        true
    }

    /// Whether a POST was accepted after `since_ms` (unix ms): then the API works and a
    /// failure is this mail's own.
    pub(crate) fn post_succeeded_after(&self, since_ms: u64) -> bool {
        self.last_post_ok_ms.load(Ordering::Relaxed) > since_ms
    }

    /// Whether any POST was accepted since start.
    pub(crate) fn any_post_succeeded(&self) -> bool {
        self.last_post_ok_ms.load(Ordering::Relaxed) > 0
    }

    /// `Some((since, last error))` while the API is down.
    pub(crate) fn down(&self) -> Option<(SystemTime, String)> {
        let o = self.lock();
        o.down.then(|| {
            (
                o.first_failure.unwrap_or_else(SystemTime::now),
                o.last_error.clone().unwrap_or_default(),
            )
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outage> {
        self.outage.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_after_failures_in_a_row_for_a_while_or_one_refusal() {
        let h = ApiHealth::default();
        for _ in 0..5 {
            h.request_failed("HTTP 503", false);
        }
        assert!(h.down().is_none(), "a blip is not an outage");
        h.lock().first_failure = SystemTime::now().checked_sub(DOWN_AFTER);
        h.request_failed("HTTP 502", false);
        let (_, error) = h.down().expect("down");
        assert_eq!(error, "HTTP 502");
        h.works();
        assert!(h.down().is_none());
        for _ in 0..DOWN_AT_ONCE_AFTER_FAILURES {
            h.request_failed("HTTP 503", false);
        }
        assert!(h.down().is_some(), "many failures at once");
        h.post_succeeded();
        h.request_failed("HTTP 401", true);
        assert!(h.down().is_some());
    }

    #[test]
    fn only_an_accepted_post_makes_a_failure_count() {
        let h = ApiHealth::default();
        let before = crate::ledger::unix_now_ms() - 1;
        assert!(!h.post_succeeded_after(before));
        h.works();
        assert!(
            !h.post_succeeded_after(before),
            "a reply found on its ticket is not a post"
        );
        h.post_succeeded();
        assert!(h.post_succeeded_after(before));
        assert!(!h.post_succeeded_after(u64::MAX));
    }
}
