//! The first start after an upgrade from 0.1: the redb ledger (`ledger.redb`) is copied
//! into SQLite and kept beside it as `ledger.redb.bak`, so nothing it recorded is posted
//! again. Idempotent: a crash before the rename copies the same entries once more.

use super::error::LedgerError;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use rusqlite::{Connection, params};
use serde::Deserialize;
use std::path::Path;

pub(super) const OLD_FILE: &str = "ledger.redb";
pub(super) const BACKUP_FILE: &str = "ledger.redb.bak";

const ENTRIES: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("entries");
const MESSAGE_IDS: TableDefinition<'static, &str, u64> = TableDefinition::new("message_ids");

/// 0.1's entry, as it stored it (JSON).
#[derive(Deserialize)]
struct OldEntry {
    state: String,
    ticket: u64,
    #[serde(default)]
    body_hash: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    attempts: u32,
    #[serde(default)]
    first_seen: u64,
    #[serde(default)]
    updated: u64,
    #[serde(default)]
    mailbox: String,
    #[serde(default)]
    uid: u32,
    #[serde(default)]
    reason: Option<String>,
}

/// Copies `dir/ledger.redb` into `conn` if it is there; returns how many entries.
pub(super) fn from_redb(
    dir: &Path,
    conn: &mut Connection,
    path: &Path,
) -> Result<Option<usize>, LedgerError> {
    let old = dir.join(OLD_FILE);
    if !old.exists() {
        return Ok(None);
    }
    let fail = |message: String| LedgerError::Migrate {
        path: path.to_path_buf(),
        from: old.clone(),
        message,
    };
    let db = redb::Database::open(&old).map_err(|e| fail(e.to_string()))?;
    let read = db.begin_read().map_err(|e| fail(e.to_string()))?;
    let tx = conn.transaction().map_err(|e| fail(e.to_string()))?;
    let mut copied = 0;
    {
        let insert = |key: &str, e: &OldEntry| {
            // 0.1 keyed by `<message-id>`, or `sha256:` of the raw mail when it had none;
            // the content hash is unknown, so the first mail that matches adopts the entry.
            let (message_id, content, legacy) = if key.starts_with("sha256:") {
                ("", key, Some(key))
            } else {
                (key, "", None)
            };
            tx.execute(
                "INSERT OR IGNORE INTO mails (message_id, content, legacy, state, ticket, body_hash, text_hash, \
                 date_sent, attempts, first_seen, last_attempt_ms, updated, outcome_unknown, unknown_since, mailbox, \
                 folder, uid_validity, uid, reason, retry) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, '', ?7, ?8, ?9, NULL, ?10, ?11, ?9, ?12, '', 0, ?13, ?14, 0)",
                params![
                    message_id,
                    content,
                    legacy,
                    e.state,
                    e.ticket as i64,
                    e.body_hash,
                    e.date,
                    e.attempts as i64,
                    e.first_seen as i64,
                    e.updated as i64,
                    e.state == "pending",
                    e.mailbox,
                    e.uid as i64,
                    e.reason,
                ],
            )
        };
        let entries = read.open_table(ENTRIES).map_err(|e| fail(e.to_string()))?;
        for item in entries.iter().map_err(|e| fail(e.to_string()))? {
            let (key, value) = item.map_err(|e| fail(e.to_string()))?;
            let entry: OldEntry = match serde_json::from_slice(value.value()) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(
                        key = key.value(),
                        "old ledger entry unreadable, not migrated: {e}"
                    );
                    continue;
                }
            };
            insert(key.value(), &entry).map_err(|e| fail(e.to_string()))?;
            copied += 1;
        }
        // Message-IDs posted under a `sha256:` key still answer References lookups.
        if let Ok(ids) = read.open_table(MESSAGE_IDS) {
            for item in ids.iter().map_err(|e| fail(e.to_string()))? {
                let (id, ticket) = item.map_err(|e| fail(e.to_string()))?;
                let posted = OldEntry {
                    state: "posted".into(),
                    ticket: ticket.value(),
                    body_hash: String::new(),
                    date: String::new(),
                    attempts: 0,
                    first_seen: 0,
                    updated: 0,
                    mailbox: String::new(),
                    uid: 0,
                    reason: None,
                };
                insert(id.value(), &posted).map_err(|e| fail(e.to_string()))?;
            }
        }
    }
    tx.commit().map_err(|e| fail(e.to_string()))?;
    drop(read);
    drop(db);
    std::fs::rename(&old, dir.join(BACKUP_FILE))
        .map_err(|e| fail(format!("cannot rename it: {e}")))?;
    Ok(Some(copied))
}
