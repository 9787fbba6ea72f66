//! Where `scripts/imap-servers.sh` unpacked Cyrus and Courier. They conflict
//! with the installed dovecot-imapd, so they are never installed; a harness
//! whose server is missing fails (never skips) and says how to get it.

use std::path::PathBuf;

use anyhow::{Result, bail};

/// Overrides [`DEFAULT_IMAP_SERVERS_DIR`] (the script honours it too).
pub const IMAP_SERVERS_DIR_ENV: &str = "TESTBED_IMAP_SERVERS_DIR";
/// Where the script unpacks by default: `cyrus/` and `courier/` below it.
pub const DEFAULT_IMAP_SERVERS_DIR: &str = "/var/cache/thulium-mail-bridge-testbed";

/// The unpacked root of `name` (`cyrus` or `courier`), checked to hold
/// `files` (relative); also checks the installed `system_files` (absolute).
pub(crate) fn unpacked(
    server: &str,
    name: &str,
    files: &[&str],
    system_files: &[&str],
) -> Result<PathBuf> {
    let base = std::env::var_os(IMAP_SERVERS_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_IMAP_SERVERS_DIR));
    let root = base.join(name);
    let missing: Vec<PathBuf> = files
        .iter()
        .map(|f| root.join(f))
        .chain(system_files.iter().map(PathBuf::from))
        .filter(|p| !p.exists())
        .collect();
    if !missing.is_empty() {
        bail!(
            "{server} is not set up for the tests: missing {}. Run `scripts/imap-servers.sh` \
             as root: it unpacks Debian's packages into {} (set {IMAP_SERVERS_DIR_ENV} for \
             another dir) and installs their libraries, without touching dovecot",
            missing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            base.display()
        );
    }
    Ok(root)
}
