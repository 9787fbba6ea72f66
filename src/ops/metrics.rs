//! The Prometheus metrics named in SPEC "Operating", recorded wherever the event happens.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder once per process; returns the handle that renders `/metrics`.
pub(crate) fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!("metrics unavailable: {e}"))
                .ok()
        })
        .clone()
}

/// Text exposition of every metric.
pub(crate) fn render() -> String {
    install().map(|h| h.render()).unwrap_or_default()
}

/// outcome: posted, approved, duplicate, new_ticket, unmatched, ignored, unverified,
/// failed, retried (left for a later pass).
pub(crate) fn mail_handled(mailbox: &str, outcome: &'static str) {
    metrics::counter!("thulium_bridge_mails_total", "mailbox" => mailbox.to_string(), "outcome" => outcome)
        .increment(1);
}

/// One API request with its HTTP status (or "error" when none came back).
pub(crate) fn api_request(status: Option<u16>, took: Duration) {
    let status = status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "error".into());
    metrics::counter!("thulium_bridge_api_requests_total", "status" => status).increment(1);
    metrics::histogram!("thulium_bridge_api_request_duration_seconds").record(took.as_secs_f64());
}

pub(crate) fn mailbox_up(mailbox: &str, up: bool) {
    metrics::gauge!("thulium_bridge_mailbox_up", "mailbox" => mailbox.to_string()).set(if up {
        1.0
    } else {
        0.0
    });
}

/// 1 where this instance leads the mailbox (a shared ledger), 0 where it stopped.
pub(crate) fn mailbox_leader(mailbox: &str, instance: &str, leads: bool) {
    metrics::gauge!("thulium_bridge_mailbox_leader", "mailbox" => mailbox.to_string(), "instance" => instance.to_string())
        .set(if leads { 1.0 } else { 0.0 });
}

/// Whether the ledger answers (a shared one can be down while the bridge runs).
pub(crate) fn ledger_up(up: bool) {
    metrics::gauge!("thulium_bridge_ledger_up").set(if up { 1.0 } else { 0.0 });
}

/// 0 while the Thulium API fails for every request.
pub(crate) fn api_up(up: bool) {
    metrics::gauge!("thulium_bridge_api_up").set(if up { 1.0 } else { 0.0 });
}

/// Mails of a mailbox seen but not yet finished, and how long the oldest has waited.
pub(crate) fn waiting(mailbox: &str, mails: usize, oldest: Duration) {
    metrics::gauge!("thulium_bridge_waiting_mails", "mailbox" => mailbox.to_string())
        .set(mails as f64);
    metrics::gauge!("thulium_bridge_oldest_waiting_seconds", "mailbox" => mailbox.to_string())
        .set(oldest.as_secs_f64());
}

/// After every pass that completed without trouble.
pub(crate) fn pass_succeeded(mailbox: &str) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    metrics::gauge!("thulium_bridge_last_success_timestamp_seconds", "mailbox" => mailbox.to_string())
        .set(now.as_secs_f64());
}
