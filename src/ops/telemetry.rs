//! Logging setup: text for people (no timestamps of our own under journald), JSON for shippers.

use crate::config::{LogConfig, LogFormat};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `RUST_LOG` overrides `log.level` for debugging.
pub fn init_logging(log: &LogConfig) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(capped(&v)).ok())
        .or_else(|| EnvFilter::try_new(capped(&log.level)).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let _ = match (log.format, under_journald) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Text, true) => builder.without_time().try_init(),
        (LogFormat::Text, false) => builder.try_init(),
    };
}

/// Protocol crates trace the raw bytes they send (an IMAP LOGIN, an Authorization
/// header); they never log below `info`, whatever the level asked for.
fn capped(directives: &str) -> String {
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
    let mut out = directives.to_string();
    for krate in WIRE_CRATES {
        out.push_str(&format!(",{krate}=info"));
    }
    out
}
