//! systemd's notify protocol; every call is a no-op outside systemd (no NOTIFY_SOCKET).

use sd_notify::NotifyState;
use std::time::Duration;

fn send(state: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some()
        && let Err(e) = sd_notify::notify(false, state)
    {
        tracing::debug!("sd_notify failed: {e}");
    }
}

pub(crate) fn ready() {
    send(&[NotifyState::Ready]);
}

pub(crate) fn status(line: &str) {
    send(&[NotifyState::Status(line)]);
}

pub(crate) fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

pub(crate) fn reloading() {
    send(&[NotifyState::Reloading]);
}

pub(crate) fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// Half of `WatchdogSec=`, when systemd asked for keep-alives. As in sd_watchdog_enabled(3),
/// `WATCHDOG_PID`, when set, must name this process.
pub(crate) fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    let for_us = std::env::var("WATCHDOG_PID")
        .map(|pid| pid.parse() == Ok(std::process::id()))
        .unwrap_or(true);
    (for_us && usec > 0).then(|| Duration::from_micros(usec / 2))
}
