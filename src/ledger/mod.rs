//! The embedded ledger (redb, `state.dir/ledger.redb`) that makes each mail post once.
//!
//! Intent before action (SPEC "Delivering"): a mail is recorded `Pending` in a durable
//! commit before its POST and `Posted` after it, before any IMAP disposition. A mail
//! still `Pending` at start had an unknown outcome and is read back from the ticket.
//!
//! redb is synchronous: every write commits with `Durability::Immediate` (one fsync),
//! so from async code call the writing methods in `spawn_blocking`; [`Ledger::get`]
//! and the other reads are MVCC snapshots that never wait for a writer and may be
//! called briefly from any task. `Ledger` is a cheap `Clone` (one shared database).

mod entry;
mod error;

pub use entry::{Attempt, Entry, EntryState, PostedMail, Stats, message_id_key};
pub use error::LedgerError;

use crate::decide::References;
use entry::unix_now;
use redb::{
    Builder, Database, DatabaseError, ReadableDatabase, ReadableTable, StorageError, Table,
    TableDefinition,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The ledger file inside `state.dir`.
pub const FILE_NAME: &str = "ledger.redb";

/// Ledger key -> [`Entry`] as JSON.
const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
/// Keys whose entry is `Pending`, so reconciliation at start need not scan every mail.
const PENDING: TableDefinition<&str, ()> = TableDefinition::new("pending");
/// `<message-id>` -> ticket of every posted mail, for `match.use_references`.
const MESSAGE_IDS: TableDefinition<&str, u64> = TableDefinition::new("message_ids");

/// redb's page cache; the default (1 GiB) is far beyond what a ledger needs.
const CACHE_BYTES: usize = 4 << 20;

#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Ledger {
    /// Opens (or creates) `dir/ledger.redb`, creating `dir` if missing. Refused while
    /// another instance holds the file.
    pub fn open(dir: impl AsRef<Path>) -> Result<Ledger, LedgerError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| LedgerError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let mut builder = Builder::new();
        builder.set_cache_size(CACHE_BYTES);
        let db = builder.create(&path).map_err(|e| open_error(&path, e))?;
        let ledger = Ledger {
            inner: Arc::new(Inner { db, path }),
        };
        // Created up front so a reader never meets a missing table.
        ledger.write("creating tables", |txn| {
            txn.open_table(ENTRIES)
                .map_err(ledger.err("creating tables"))?;
            txn.open_table(PENDING)
                .map_err(ledger.err("creating tables"))?;
            txn.open_table(MESSAGE_IDS)
                .map_err(ledger.err("creating tables"))?;
            Ok(true)
        })?;
        Ok(ledger)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The entry of one mail, if it was ever attempted.
    pub fn get(&self, key: &str) -> Result<Option<Entry>, LedgerError> {
        const OP: &str = "reading an entry";
        let txn = self.inner.db.begin_read().map_err(self.err(OP))?;
        let table = txn.open_table(ENTRIES).map_err(self.err(OP))?;
        let found = table.get(key).map_err(self.err(OP))?;
        found.map(|v| self.decode(key, v.value())).transpose()
    }

    /// Records one attempt; see [`Ledger::begin_attempts`].
    pub fn begin_attempt(&self, attempt: &Attempt) -> Result<Entry, LedgerError> {
        let mut entries = self.begin_attempts(std::slice::from_ref(attempt))?;
        entries.pop().ok_or_else(|| LedgerError::Corrupt {
            path: self.inner.path.clone(),
            key: attempt.key.clone(),
            message: "no entry came back from begin_attempts".into(),
        })
    }

    /// Records each mail `Pending` with one more attempt, in one durable commit, before
    /// the POSTs. Returns the entries in order; a mail already `Posted` is left as it is
    /// and comes back `Posted`: the caller must not post it.
    ///
    /// A retry overwrites ticket, body hash and date with the new ones, so a mail whose
    /// previous outcome is unknown must be reconciled before it is attempted again.
    pub fn begin_attempts(&self, attempts: &[Attempt]) -> Result<Vec<Entry>, LedgerError> {
        const OP: &str = "recording attempts";
        self.write_returning(OP, |txn| {
            let mut entries = txn.open_table(ENTRIES).map_err(self.err(OP))?;
            let mut pending = txn.open_table(PENDING).map_err(self.err(OP))?;
            let now = unix_now();
            let mut changed = false;
            let mut out = Vec::with_capacity(attempts.len());
            for a in attempts {
                let entry = match self.read_in(&entries, &a.key, OP)? {
                    Some(e) if e.state == EntryState::Posted => e,
                    previous => {
                        let e = Entry {
                            state: EntryState::Pending,
                            ticket: a.ticket,
                            body_hash: a.body_hash.clone(),
                            date: a.date.clone(),
                            attempts: previous
                                .as_ref()
                                .map_or(0, |p| p.attempts)
                                .saturating_add(1),
                            first_seen: previous.as_ref().map_or(now, |p| p.first_seen),
                            updated: now,
                            mailbox: a.mailbox.clone(),
                            uid: a.uid,
                            reason: None,
                        };
                        self.put(&mut entries, &a.key, &e, OP)?;
                        pending.insert(a.key.as_str(), ()).map_err(self.err(OP))?;
                        changed = true;
                        e
                    }
                };
                out.push(entry);
            }
            Ok((changed, out))
        })
    }

    /// Records a batch of accepted posts in one durable commit (one fsync per batch),
    /// with their Message-IDs for `use_references`. A mail with no pending entry is
    /// recorded anyway: that it was posted is what must not be lost.
    pub fn mark_posted(&self, mails: &[PostedMail]) -> Result<(), LedgerError> {
        const OP: &str = "recording posts";
        self.write(OP, |txn| {
            let mut entries = txn.open_table(ENTRIES).map_err(self.err(OP))?;
            let mut pending = txn.open_table(PENDING).map_err(self.err(OP))?;
            let mut ids = txn.open_table(MESSAGE_IDS).map_err(self.err(OP))?;
            let now = unix_now();
            for m in mails {
                let previous = self.read_in(&entries, &m.key, OP).unwrap_or_else(|e| {
                    tracing::error!(key = %m.key, "{e}; recording it as posted afresh");
                    None
                });
                let entry = match previous {
                    Some(e) => Entry {
                        state: EntryState::Posted,
                        ticket: m.ticket,
                        updated: now,
                        reason: None,
                        ..e
                    },
                    None => {
                        tracing::warn!(key = %m.key, ticket = m.ticket, "posted without a pending ledger entry");
                        Entry {
                            state: EntryState::Posted,
                            ticket: m.ticket,
                            body_hash: String::new(),
                            date: String::new(),
                            attempts: 1,
                            first_seen: now,
                            updated: now,
                            mailbox: String::new(),
                            uid: 0,
                            reason: None,
                        }
                    }
                };
                self.put(&mut entries, &m.key, &entry, OP)?;
                pending.remove(m.key.as_str()).map_err(self.err(OP))?;
                let message_id = match &m.message_id {
                    Some(id) if !id.trim().is_empty() => Some(message_id_key(id)),
                    _ if m.key.starts_with('<') => Some(m.key.clone()),
                    _ => None,
                };
                if let Some(id) = message_id {
                    ids.insert(id.as_str(), m.ticket).map_err(self.err(OP))?;
                }
            }
            Ok(!mails.is_empty())
        })
    }

    /// Records a permanent failure; see [`Ledger::mark_failed_many`].
    pub fn mark_failed(&self, key: &str, reason: &str) -> Result<(), LedgerError> {
        self.mark_failed_many(&[(key, reason)])
    }

    /// Records permanent failures (key, reason) in one commit. A `Posted` entry stays
    /// posted; a key never attempted is not recorded (there is nothing to protect).
    pub fn mark_failed_many(&self, failures: &[(&str, &str)]) -> Result<(), LedgerError> {
        const OP: &str = "recording a failure";
        self.write(OP, |txn| {
            let mut entries = txn.open_table(ENTRIES).map_err(self.err(OP))?;
            let mut pending = txn.open_table(PENDING).map_err(self.err(OP))?;
            let mut changed = false;
            for &(key, reason) in failures {
                match self.read_in(&entries, key, OP)? {
                    Some(e) if e.state == EntryState::Posted => {
                        tracing::warn!(key, reason, "not marking a posted mail as failed");
                    }
                    Some(e) => {
                        let e = Entry {
                            state: EntryState::Failed,
                            updated: unix_now(),
                            reason: Some(reason.to_string()),
                            ..e
                        };
                        self.put(&mut entries, key, &e, OP)?;
                        pending.remove(key).map_err(self.err(OP))?;
                        changed = true;
                    }
                    None => {}
                }
            }
            Ok(changed)
        })
    }

    /// The ticket a mail with this Message-ID was posted to (brackets optional).
    pub fn ticket_for_message_id(&self, id: &str) -> Result<Option<u64>, LedgerError> {
        const OP: &str = "looking up a Message-ID";
        let txn = self.inner.db.begin_read().map_err(self.err(OP))?;
        let table = txn.open_table(MESSAGE_IDS).map_err(self.err(OP))?;
        let found = table
            .get(message_id_key(id).as_str())
            .map_err(self.err(OP))?;
        Ok(found.map(|v| v.value()))
    }

    /// Every `Pending` entry, for reconciliation at start. An unreadable entry is logged
    /// and left out, so one bad record does not block the rest.
    pub fn pending(&self) -> Result<Vec<(String, Entry)>, LedgerError> {
        const OP: &str = "listing pending mails";
        let txn = self.inner.db.begin_read().map_err(self.err(OP))?;
        let pending = txn.open_table(PENDING).map_err(self.err(OP))?;
        let entries = txn.open_table(ENTRIES).map_err(self.err(OP))?;
        let mut out = Vec::new();
        for item in pending.iter().map_err(self.err(OP))? {
            let (key, _) = item.map_err(self.err(OP))?;
            let key = key.value().to_string();
            match self.read_in(&entries, &key, OP) {
                Ok(Some(e)) if e.state == EntryState::Pending => out.push((key, e)),
                Ok(_) => tracing::warn!(%key, "pending index names a mail that is not pending"),
                Err(e) => tracing::error!("{e}"),
            }
        }
        Ok(out)
    }

    /// Counts by state (a full scan: for `check`, status lines and metrics, not per mail).
    pub fn stats(&self) -> Result<Stats, LedgerError> {
        const OP: &str = "counting entries";
        #[derive(serde::Deserialize)]
        struct StateOnly {
            state: EntryState,
        }
        let txn = self.inner.db.begin_read().map_err(self.err(OP))?;
        let entries = txn.open_table(ENTRIES).map_err(self.err(OP))?;
        let mut stats = Stats::default();
        for item in entries.iter().map_err(self.err(OP))? {
            let (key, value) = item.map_err(self.err(OP))?;
            match serde_json::from_slice::<StateOnly>(value.value()) {
                Ok(s) => match s.state {
                    EntryState::Pending => stats.pending += 1,
                    EntryState::Posted => stats.posted += 1,
                    EntryState::Failed => stats.failed += 1,
                },
                Err(e) => tracing::error!(key = key.value(), "unreadable ledger entry: {e}"),
            }
        }
        Ok(stats)
    }

    /// Runs `f` in one write transaction; commits (durably) when it reports a change.
    fn write(
        &self,
        op: &'static str,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<bool, LedgerError>,
    ) -> Result<(), LedgerError> {
        self.write_returning(op, |txn| f(txn).map(|changed| (changed, ())))
    }

    fn write_returning<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(bool, T), LedgerError>,
    ) -> Result<T, LedgerError> {
        let txn = self.inner.db.begin_write().map_err(self.err(op))?;
        // On an error the transaction is dropped, which aborts it.
        let (changed, out) = f(&txn)?;
        if changed {
            // Durability::Immediate, redb's default: durable once commit returns.
            txn.commit().map_err(self.err(op))?;
        } else {
            txn.abort().map_err(self.err(op))?;
        }
        Ok(out)
    }

    fn read_in(
        &self,
        table: &impl ReadableTable<&'static str, &'static [u8]>,
        key: &str,
        op: &'static str,
    ) -> Result<Option<Entry>, LedgerError> {
        let found = table.get(key).map_err(self.err(op))?;
        found.map(|v| self.decode(key, v.value())).transpose()
    }

    fn put(
        &self,
        table: &mut Table<'_, &'static str, &'static [u8]>,
        key: &str,
        entry: &Entry,
        op: &'static str,
    ) -> Result<(), LedgerError> {
        let bytes = serde_json::to_vec(entry).map_err(|e| LedgerError::Corrupt {
            path: self.inner.path.clone(),
            key: key.to_string(),
            message: format!("cannot encode: {e}"),
        })?;
        table.insert(key, bytes.as_slice()).map_err(self.err(op))?;
        Ok(())
    }

    fn decode(&self, key: &str, bytes: &[u8]) -> Result<Entry, LedgerError> {
        serde_json::from_slice(bytes).map_err(|e| LedgerError::Corrupt {
            path: self.inner.path.clone(),
            key: key.to_string(),
            message: e.to_string(),
        })
    }

    fn err<E: Into<redb::Error>>(&self, op: &'static str) -> impl Fn(E) -> LedgerError + '_ {
        move |e| LedgerError::Store {
            path: self.inner.path.clone(),
            op,
            source: Box::new(e.into()),
        }
    }
}

/// `use_references` lookups for `decide`: an unreadable ledger means "not found".
impl References for Ledger {
    fn ticket_for(&self, message_id: &str) -> Option<u64> {
        self.ticket_for_message_id(message_id).unwrap_or_else(|e| {
            tracing::warn!("{e}; treating {message_id} as not posted");
            None
        })
    }
}

fn open_error(path: &Path, e: DatabaseError) -> LedgerError {
    let path = path.to_path_buf();
    match e {
        DatabaseError::DatabaseAlreadyOpen => LedgerError::Locked { path },
        DatabaseError::Storage(StorageError::Io(source))
            if matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            LedgerError::NotWritable { path, source }
        }
        source => LedgerError::Open {
            path,
            source: Box::new(source),
        },
    }
}

#[cfg(test)]
mod tests;
