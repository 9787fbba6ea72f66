//! Test builds only (feature `test-crash`, which `cargo test` turns on): a mail whose
//! header says `X-Test-Crash: abort` kills the process while it is being read, as a
//! stack overflow does (Rust aborts then), and one saying `X-Test-Crash: slow` takes
//! longer than the reading budget. So `tests/e2e_poison.rs` drives the poison path
//! from a real death and the real budget instead of imitating them.

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
