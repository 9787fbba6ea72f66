//! Shared by the fuzz targets: the fixed INTERNALDATE, the checks on a decision, and
//! the list of known, triaged panics the targets step over so fuzzing can go on.
//!
//! cargo-fuzz builds with debug assertions, so a `debug_assert!` inside a dependency
//! fails like a crash. A known one is listed here with its triage; `FUZZ_STRICT=1`
//! turns the list off (to reproduce one). Remove an entry once its fix is in.

use chrono::{DateTime, FixedOffset};
use std::panic::{self, AssertUnwindSafe, PanicHookInfo};
use std::sync::OnceLock;
use thulium_mail_bridge::mail::decide::{Action, Decision};

/// (file the panic is raised in, start of its message).
const KNOWN_PANICS: &[(&str, &str)] = &[
    // mail-parser 0.11.9, `debug_assert!` in MessageParser::parse_ (message.rs:485):
    // a multipart part that is message/rfc822 whose embedded message is itself an
    // empty message/rfc822. Debug builds only; release parses it (empty body).
    // Minimal input: fuzz/README.md.
    (
        "mail-parser-0.11.9/src/parsers/message.rs",
        "Invalid part ID, could not find multipart.",
    ),
];

fn message<'a>(info: &'a PanicHookInfo<'_>) -> &'a str {
    let payload = info.payload();
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("")
}

fn is_known(info: &PanicHookInfo<'_>) -> bool {
    let file = info.location().map(|l| l.file()).unwrap_or("");
    let msg = message(info);
    KNOWN_PANICS
        .iter()
        .any(|(f, m)| file.ends_with(f) && msg.starts_with(m))
}

/// Runs `f`; a known panic is stepped over, any other one aborts (a crash for libFuzzer).
pub fn run(f: impl FnOnce()) {
    static STRICT: OnceLock<bool> = OnceLock::new();
    let strict = *STRICT.get_or_init(|| {
        let strict = std::env::var_os("FUZZ_STRICT").is_some_and(|v| v != "0");
        if !strict {
            // libfuzzer-sys's hook aborts on every panic; let the known ones unwind.
            let abort = panic::take_hook();
            panic::set_hook(Box::new(move |info| {
                if !is_known(info) {
                    abort(info);
                }
            }));
        }
        strict
    });
    if strict {
        f();
    } else {
        // Only a known panic gets here unwinding: any other aborted in the hook.
        let _ = panic::catch_unwind(AssertUnwindSafe(f));
    }
}

/// The daemon always has an INTERNALDATE; with it a mail without a usable Date
/// header still reaches body extraction.
pub fn internal_date() -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339("2025-03-04T10:15:30+01:00").ok()
}

/// What every decision must satisfy.
pub fn check(d: &Decision) {
    // The ledger's identity: a SHA-256 of the body, in hex, always.
    assert_eq!(d.id.content.len(), 64, "{:?}", d.id);
    match &d.action {
        Action::Post { request, .. } => {
            assert_eq!(request.date.len(), 16, "{:?}", request.date);
        }
        Action::Skip { reason, .. } => assert!(!reason.is_empty()),
        // The targets' rules leave `on_unmatched` alone: no mail opens a ticket.
        Action::NewTicket { .. } => panic!("a new ticket under rules that open none"),
    }
}
