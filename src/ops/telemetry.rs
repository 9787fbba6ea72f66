//! Logging setup: text for people (no timestamps of our own under journald), JSON for shippers.

use crate::config::{LogConfig, LogFormat};
use std::io::IsTerminal;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry, fmt};

/// Protocol crates trace the raw bytes they send (an IMAP LOGIN, an Authorization
/// header): nothing of theirs below `info` is ever written.
const WIRE_CRATES: [&str; 9] = [
    "async_imap",
    "imap_proto",
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tokio_rustls",
    "tower",
];

/// Installs the global subscriber; `RUST_LOG` overrides `log.level` for debugging, but
/// not the cap on protocol crates: that is a filter of its own, after the directives.
pub(crate) fn init_logging(log: &LogConfig) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(&log.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let base = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false);
    let output: Box<dyn Layer<Registry> + Send + Sync> = match (log.format, under_journald) {
        (LogFormat::Json, _) => Box::new(base.json().flatten_event(true)),
        (LogFormat::Text, true) => Box::new(base.without_time()),
        (LogFormat::Text, false) => Box::new(base),
    };
    let _ = tracing_subscriber::registry()
        .with(
            output
                .with_filter(filter_fn(not_wire_detail))
                .with_filter(filter),
        )
        .try_init();
}

/// False for a protocol crate's event or span below `info`.
fn not_wire_detail(meta: &Metadata<'_>) -> bool {
    *meta.level() <= Level::INFO || !is_wire(meta.target())
}

fn is_wire(target: &str) -> bool {
    WIRE_CRATES.iter().any(|krate| {
        target == *krate
            || target
                .strip_prefix(krate)
                .is_some_and(|rest| rest.starts_with("::"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_crates_and_their_modules_are_capped_whatever_the_directives() {
        assert!(is_wire("async_imap"));
        assert!(is_wire("async_imap::client"));
        assert!(is_wire("reqwest::connect"));
        assert!(!is_wire("async_imapx"));
        assert!(!is_wire("thulium_mail_bridge::imap::session"));
    }
}
