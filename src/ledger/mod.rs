//! The ledger (SQLite in WAL mode, `state.dir/ledger.sqlite3`) that makes each mail post once.
//!
//! Intent before action (SPEC "Delivering"): a mail is recorded `Pending` in a durable
//! commit before its POST and `Posted` after it, before any IMAP disposition. Writes go
//! through one writer thread that groups them (see `writer.rs`); reads use their own
//! connection and never wait for it, so `ledger show` works while the daemon runs, and
//! the stock `sqlite3` tool can read the file. `Ledger` is a cheap `Clone`.

mod clock;
mod decisions;
mod entry;
mod error;
mod migrate;
mod read_only;
mod schema;
mod store;
mod writer;

pub(crate) use decisions::{DecisionQuery, DecisionRecord};
pub(crate) use entry::{
    Attempt, Entry, EntryState, Finish, Location, Stats, unix_now, unix_now_ms,
};
pub(crate) use error::LedgerError;
pub(crate) use read_only::ReadOnlyLedger;
pub(crate) use store::{Begun, PostedReply};

use crate::mail::MailId;
use rusqlite::{Connection, OpenFlags};
use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The ledger file inside `state.dir`.
pub(crate) const FILE_NAME: &str = "ledger.sqlite3";
/// Held (flock) by the one daemon (`run`, `once`) working on a `state.dir`; `ledger`
/// commands do not need it.
pub(crate) const LOCK_FILE: &str = "daemon.lock";

/// Makes sure no other daemon works on `dir`: two would each think a mail in flight
/// is theirs. Held until the returned file is dropped (or the process dies).
pub(crate) fn lock_instance(dir: &Path) -> Result<std::fs::File, LedgerError> {
    create_private_dir(dir)?;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LedgerError::Open {
            path: path.clone(),
            message: e.to_string(),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(LedgerError::Locked { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(LedgerError::Open {
            path,
            message: e.to_string(),
        }),
    }
}

/// `state.dir`, 0700 whatever the umask (it holds who wrote to which ticket).
fn create_private_dir(dir: &Path) -> Result<(), LedgerError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| LedgerError::CreateDir {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
    restrict(dir, 0o700);
    Ok(())
}

#[derive(Clone)]
pub(crate) struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    read: Mutex<Connection>,
    writer: writer::Sender,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Ledger {
    /// Opens (or creates) `dir/ledger.sqlite3`: the directory 0700 and the file 0600
    /// whatever the umask; a 0.1 redb ledger found there is migrated first.
    pub(crate) fn open(dir: impl AsRef<Path>) -> Result<Ledger, LedgerError> {
        let dir = dir.as_ref();
        create_private_dir(dir)?;
        let path = dir.join(FILE_NAME);
        let open_err = |e: rusqlite::Error| LedgerError::Open {
            path: path.clone(),
            message: open_hint(&e),
        };
        let mut conn = Connection::open(&path).map_err(open_err)?;
        restrict(&path, 0o600);
        schema::configure(&conn).map_err(open_err)?;
        schema::create(&conn).map_err(|e| LedgerError::Open {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if let Some(n) = migrate::from_redb(dir, &mut conn, &path)? {
            tracing::info!(
                entries = n,
                backup = %dir.join(migrate::BACKUP_FILE).display(),
                "migrated the 0.1 ledger to {}",
                path.display()
            );
        }
        let read = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        read.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(open_err)?;
        for suffix in ["-wal", "-shm"] {
            restrict(Path::new(&format!("{}{suffix}", path.display())), 0o600);
        }
        let writer = writer::spawn(conn, path.clone()).map_err(|e| LedgerError::Open {
            path: path.clone(),
            message: format!("cannot start the writer thread: {e}"),
        })?;
        Ok(Ledger {
            inner: Arc::new(Inner {
                path,
                read: Mutex::new(read),
                writer,
            }),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Records POSTs about to begin, in one durable commit; see [`store::begin`].
    pub(crate) async fn begin(&self, attempts: Vec<Attempt>) -> Result<Vec<Begun>, LedgerError> {
        self.write("recording attempts", move |conn| {
            attempts.iter().map(|a| store::begin(conn, a)).collect()
        })
        .await
    }

    /// Records how mails ended (posted, failed, deferred), in one durable commit.
    pub(crate) async fn finish(&self, finished: Vec<Finish>) -> Result<(), LedgerError> {
        if finished.is_empty() {
            return Ok(());
        }
        self.write("recording outcomes", move |conn| {
            finished.iter().try_for_each(|f| store::finish(conn, f))
        })
        .await
    }

    /// Marks failed entries to be tried again (every failed one with `None`).
    pub(crate) fn mark_retry_blocking(
        &self,
        message_id: Option<&str>,
    ) -> Result<Vec<Entry>, LedgerError> {
        let id = message_id.map(str::to_string);
        let answer = writer::submit(&self.inner.writer, "marking for retry", move |conn| {
            store::mark_retry(conn, id.as_deref())
        })
        .ok_or_else(|| self.writer_gone())?;
        answer.blocking_recv().map_err(|_| self.writer_gone())?
    }

    /// Counts a crash or hang while reading the mail at `place` (durably); returns its
    /// strikes now.
    pub(crate) async fn strike(&self, place: Location, reason: String) -> Result<u32, LedgerError> {
        self.write("counting a strike", move |conn| {
            store::strike(conn, &place, &reason)
        })
        .await
    }

    /// The struck mails of one folder, by UID: their strikes, and why.
    pub(crate) fn struck(
        &self,
        mailbox: &str,
        uid_validity: u32,
    ) -> Result<HashMap<u32, (u32, String)>, LedgerError> {
        self.read("reading strikes", |conn| {
            store::struck(conn, mailbox, uid_validity)
        })
    }

    /// The entry of one mail, if it was ever attempted.
    pub(crate) fn find(&self, id: &MailId) -> Result<Option<Entry>, LedgerError> {
        self.read("reading an entry", |conn| store::find(conn, id))
    }

    /// Every entry of a Message-ID (brackets optional), or of a `sha256:` content prefix.
    pub(crate) fn entries(&self, message_id_or_hash: &str) -> Result<Vec<Entry>, LedgerError> {
        self.read("reading entries", |conn| {
            store::entries(conn, message_id_or_hash)
        })
    }

    /// The tickets posted mails with this Message-ID went to.
    pub(crate) fn tickets_for_message_id(&self, message_id: &str) -> Result<Vec<u64>, LedgerError> {
        let id = crate::mail::identity::message_id_key(message_id);
        self.read("looking up a Message-ID", |conn| {
            store::tickets_for_message_id(conn, &id)
        })
    }

    /// Posted mails other than `id` with the same text on `ticket`: each one's date sent,
    /// when it was first seen and when it was recorded posted (unix seconds).
    pub(crate) fn posted_with_same_text(
        &self,
        ticket: u64,
        text_hash: &str,
        id: &MailId,
    ) -> Result<Vec<(String, u64, u64)>, LedgerError> {
        self.read("counting posted replies", |conn| {
            store::posted_with_same_text(conn, ticket, text_hash, id)
        })
    }

    /// Replies recorded posted to `ticket`: what the API's clock is learned from.
    pub(crate) fn posted_on_ticket(
        &self,
        ticket: u64,
    ) -> Result<Vec<store::PostedReply>, LedgerError> {
        self.read("listing a ticket's posted replies", |conn| {
            store::posted_on_ticket(conn, ticket)
        })
    }

    /// What the API's clock was learned from, oldest first.
    pub(crate) fn clock_observations(
        &self,
    ) -> Result<Vec<crate::thulium::api_clock::Observation>, LedgerError> {
        self.read("reading the API's clock", clock::observations)
    }

    /// Keeps what a ticket showed of one of our replies (`ticket`'s).
    pub(crate) async fn observe_clock(
        &self,
        ticket: u64,
        o: crate::thulium::api_clock::Observation,
    ) -> Result<(), LedgerError> {
        self.write("keeping what the API's clock showed", move |conn| {
            clock::observe(conn, ticket, &o, unix_now())
        })
        .await
    }

    /// The pending mails of `mailbox`: UID and when each was first seen.
    pub(crate) fn pending_since(
        &self,
        mailbox: &str,
    ) -> Result<Vec<(u32, std::time::SystemTime)>, LedgerError> {
        let rows = self.read("listing pending mails", |conn| {
            store::pending_since(conn, mailbox)
        })?;
        Ok(rows
            .into_iter()
            .map(|(uid, secs)| {
                (
                    uid,
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
                )
            })
            .collect())
    }

    /// New tickets `sender` began in the last hour with mails other than `except`.
    pub(crate) fn new_tickets_in_last_hour(
        &self,
        sender: &str,
        except: &MailId,
    ) -> Result<u32, LedgerError> {
        self.read("counting new tickets", |conn| {
            store::new_tickets_from(conn, sender, 3600, except)
        })
    }

    /// Whether a mail other than `id` is recorded as having opened `ticket`.
    pub(crate) fn ticket_opened_by_another(
        &self,
        ticket: u64,
        id: &MailId,
    ) -> Result<bool, LedgerError> {
        self.read("looking up a new ticket", |conn| {
            store::ticket_opened_by_another(conn, ticket, id)
        })
    }

    /// Records what became of mails (their latest decision, for `ledger list`), in one
    /// command of the grouped writer.
    pub(crate) async fn record_decisions(
        &self,
        decided: Vec<DecisionRecord>,
    ) -> Result<(), LedgerError> {
        if decided.is_empty() {
            return Ok(());
        }
        self.write("recording decisions", move |conn| {
            decisions::record(conn, &decided)
        })
        .await
    }

    /// The decisions `query` asks for, oldest first.
    pub(crate) fn decisions(
        &self,
        query: &DecisionQuery,
    ) -> Result<Vec<DecisionRecord>, LedgerError> {
        self.read("listing decisions", |conn| decisions::list(conn, query))
    }

    /// Forgets decisions made more than `keep` ago (`state.keep_decisions`); returns how many.
    pub(crate) async fn sweep_decisions(
        &self,
        keep: std::time::Duration,
    ) -> Result<usize, LedgerError> {
        self.write("sweeping old decisions", move |conn| {
            decisions::sweep(conn, keep)
        })
        .await
    }

    /// Mails that failed in the last `secs` seconds.
    pub(crate) fn failed_since(&self, secs: u64) -> Result<u64, LedgerError> {
        self.read("counting failures", |conn| store::failed_since(conn, secs))
    }

    pub(crate) fn stats(&self) -> Result<Stats, LedgerError> {
        self.read("counting entries", store::stats)
    }

    async fn write<T, F>(&self, op: &'static str, run: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let answer =
            writer::submit(&self.inner.writer, op, run).ok_or_else(|| self.writer_gone())?;
        answer.await.map_err(|_| self.writer_gone())?
    }

    fn read<T>(
        &self,
        op: &'static str,
        run: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, LedgerError> {
        let conn = self.inner.read.lock().unwrap_or_else(|e| e.into_inner());
        run(&conn).map_err(|e| writer::store_error(&self.inner.path, op, e))
    }

    fn writer_gone(&self) -> LedgerError {
        LedgerError::WriterGone {
            path: self.inner.path.clone(),
        }
    }
}

/// `use_references` lookups for `decide`: an unreadable ledger, or a Message-ID posted
/// to more than one ticket (reused by some sender), means "not found".
impl crate::mail::decide::References for Ledger {
    fn ticket_for(&self, message_id: &str) -> Option<u64> {
        one_ticket(self.tickets_for_message_id(message_id), message_id)
    }
}

/// The one ticket a Message-ID was posted to, if exactly one (the rule `explain` shares).
fn one_ticket(tickets: Result<Vec<u64>, impl std::fmt::Display>, message_id: &str) -> Option<u64> {
    match tickets {
        Ok(tickets) if tickets.len() == 1 => tickets.first().copied(),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("{e}; treating {message_id} as not posted");
            None
        }
    }
}

/// Tightens permissions of what the ledger keeps (best effort: a directory the service
/// does not own, as under some test set-ups, stays as it is).
fn restrict(path: &Path, mode: u32) {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o777 != mode
    {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    }
}

fn open_hint(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(
            rusqlite::ErrorCode::CannotOpen
            | rusqlite::ErrorCode::PermissionDenied
            | rusqlite::ErrorCode::ReadOnly,
        ) => {
            format!("{e} (state.dir must be writable by the service user)")
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod decisions_tests;
#[cfg(test)]
mod tests;
