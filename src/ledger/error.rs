//! Ledger errors; each names the ledger file, since ops must find it. Clone, because
//! one failed commit answers every command grouped into it.

use std::path::PathBuf;

#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum LedgerError {
    #[error(
        "cannot create the ledger directory {path}: {message} (state.dir must be writable by the service user)"
    )]
    CreateDir { path: PathBuf, message: String },
    #[error("cannot open the ledger {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("ledger {path}: {op} failed: {message}")]
    Store {
        path: PathBuf,
        op: &'static str,
        message: String,
    },
    #[error("ledger {path}: migrating {from} failed: {message} (the old file is left as it was)")]
    Migrate {
        path: PathBuf,
        from: PathBuf,
        message: String,
    },
    #[error(
        "{path} is locked: another thulium-mail-bridge is running with this state.dir; stop it, or give each instance its own state.dir"
    )]
    Locked { path: PathBuf },
    #[error("ledger {path}: the writer has stopped")]
    WriterGone { path: PathBuf },
}
