//! Ledger errors; each names the ledger file, since ops must find it.
//! (redb's errors are boxed: they are large and errors are rare.)

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(
        "cannot create the ledger directory {path}: {source} (state.dir must be writable by the service user)"
    )]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot open the ledger {path} for writing: {source} (state.dir must be writable by the service user)"
    )]
    NotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the ledger {path} is locked: another thulium-mail-bridge is running with this state.dir; stop it, or give each instance its own state.dir"
    )]
    Locked { path: PathBuf },
    #[error("cannot open the ledger {path}: {source}")]
    Open {
        path: PathBuf,
        source: Box<redb::DatabaseError>,
    },
    #[error("ledger {path}: {op} failed: {source}")]
    Store {
        path: PathBuf,
        op: &'static str,
        source: Box<redb::Error>,
    },
    #[error("ledger {path}: the entry for {key} is unreadable: {message}")]
    Corrupt {
        path: PathBuf,
        key: String,
        message: String,
    },
}
