//! Test builds only (feature `test-crash`, which `cargo test` turns on): a mail whose
//! header says `X-Test-Crash: abort` kills the process while it is being read, as a
//! stack overflow does (Rust aborts then), and one saying `X-Test-Crash: slow` takes
//! longer than the reading budget. So `tests/e2e_poison.rs` drives the poison path
//! from a real death and the real budget instead of imitating them. A reply whose text
//! says `X-Test-Crash: hold-post` waits between its last lease check and its POST, so
//! `tests/e2e_two_hosts.rs` can freeze a leader in exactly that window.

use super::poison::DECIDE_BUDGET;
use std::time::Duration;

/// Past the budget by a margin a loaded machine cannot eat.
const SLOW: Duration = DECIDE_BUDGET.saturating_add(Duration::from_secs(3));

/// Only the head of a mail is looked at: the marker is a header.
const HEAD: usize = 8 << 10;

/// Called on the reading thread, with the mail marked as in hand.
pub(super) fn on_marker(raw: &[u8]) {
    let head = &raw[..raw.len().min(HEAD)];
    let has = |line: &[u8]| head.windows(line.len()).any(|w| w == line);
    if has(b"\nX-Test-Crash: abort\r\n") {
        std::process::abort();
    }
    if has(b"\nX-Test-Crash: slow\r\n") {
        std::thread::sleep(SLOW);
    }
}

/// Long enough for a test to see the log line and freeze the process.
const HOLD: Duration = Duration::from_secs(2);

/// Called after a delivery's last lease check, before its POST.
pub(super) async fn before_post(body: &str) {
    if body.contains("X-Test-Crash: hold-post") {
        tracing::info!("test: a POST holds between its lease check and its send");
        tokio::time::sleep(HOLD).await;
    }
}
