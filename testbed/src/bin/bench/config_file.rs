//! The bridge's config file for a bench run, in pieces each scenario puts together: the
//! fake API, a Dovecot mailbox over TLS, the state directory.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use testbed::{Dovecot, FakeThulium};

use crate::ledger::Ledger;

/// `[thulium]` for the fake API; keys of the same table may follow.
pub(crate) fn thulium(api: &FakeThulium, timeout: &str) -> String {
    format!(
        "[thulium]\nurl = {:?}\nuser = {:?}\npassword = {:?}\ntimezone = \"Europe/Warsaw\"\ntimeout = {timeout:?}\n",
        api.url(),
        api.user(),
        api.password(),
    )
}

/// One `[[mailbox]]` on Dovecot's TLS port; keys of the same table may follow.
pub(crate) fn mailbox(dovecot: &Dovecot, name: &str, username: &str, password: &str) -> String {
    format!(
        "\n[[mailbox]]\nname = {name:?}\nhost = \"127.0.0.1\"\nport = {}\ntls = \"tls\"\nca_file = {:?}\nusername = {username:?}\npassword = {password:?}\n",
        dovecot.tls_port(),
        dovecot.ca_file(),
    )
}

/// `[state]` in `dir` (the instance lock, and the ledger when it is SQLite), then the
/// keys of `ledger`'s backend.
pub(crate) fn state(dir: &Path, ledger: &Ledger) -> Result<String> {
    Ok(format!("\n[state]\ndir = {:?}\n", state_dir(dir)) + &ledger.state_keys(dir)?)
}

/// The `[state] dir` of a scenario working in `dir`.
pub(crate) fn state_dir(dir: &Path) -> PathBuf {
    dir.join("state")
}

/// Writes `config.toml` into `dir`, readable by its owner only: an inline password in a
/// file others can read draws a warning.
pub(crate) fn write(dir: &Path, text: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("config.toml");
    fs::write(&path, text)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
    Ok(path)
}
