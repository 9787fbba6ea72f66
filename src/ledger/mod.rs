//! The ledger (SQLite in WAL mode, `state.dir/ledger.sqlite3`) that makes each mail post once.
//!
//! Intent before action (SPEC "Delivering"): a mail is recorded `Pending` in a durable
//! commit before its POST and `Posted` after it, before any IMAP disposition. Writes go
//! through one writer thread that groups them (see `writer.rs`); reads use their own
//! connection and never wait for it, so `ledger show` works while the daemon runs, and
//! the stock `sqlite3` tool can read the file. `Ledger` is a cheap `Clone`.

mod begin;
mod clock;
mod copy;
mod decisions;
mod entry;
mod error;
pub(crate) mod leases;
mod migrate;
pub(crate) mod postgres;
mod read_only;
mod schema;
pub(crate) mod sql;
mod sqlite;
mod store;
mod writer;

pub(crate) use copy::{Copied, Export};
pub(crate) use decisions::{DecisionQuery, DecisionRecord};
pub(crate) use entry::{
    Attempt, Entry, EntryState, Finish, Location, Stats, unix_now, unix_now_ms,
};
pub(crate) use error::LedgerError;
pub(crate) use read_only::ReadOnlyLedger;
pub(crate) use schema::VERSION as SCHEMA_VERSION;
pub(crate) use store::{Begun, PostedReply, Strikes};

use crate::mail::MailId;
use rusqlite::{Connection, OpenFlags};
use sql::{Sql, SqlResult};
use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// The file, or the PostgreSQL URL (without a password): what errors name.
    path: PathBuf,
    reader: writer::Sender,
    writer: writer::Sender,
    /// Shared by instances on several hosts: writes are fenced by leases.
    shared: Option<Shared>,
}

/// What a shared (PostgreSQL) ledger needs beyond its connections.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub target: postgres::Target,
    /// The epochs of the mailboxes this instance leads (kept by `daemon/leadership.rs`).
    pub fences: postgres::Fences,
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
        sqlite::configure(&conn).map_err(open_err)?;
        schema::create(&mut conn).map_err(|e| LedgerError::Open {
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
        Ledger::start(path, Box::new(conn), Box::new(read), None)
    }

    /// The ledger `[state]` names: SQLite in `dir`, or the shared PostgreSQL one.
    pub(crate) fn open_configured(
        state: &crate::config::StateConfig,
    ) -> Result<Ledger, LedgerError> {
        match state.backend {
            crate::config::LedgerBackend::Sqlite => Ledger::open(&state.dir),
            crate::config::LedgerBackend::Postgres => {
                Ledger::open_postgres(postgres::Target::of(state))
            }
        }
    }

    /// Connects (writer and reader sessions) and creates or upgrades the tables, on a
    /// thread of its own: the client runs a runtime of its own, which may not start
    /// inside the daemon's.
    pub(crate) fn open_postgres(target: postgres::Target) -> Result<Ledger, LedgerError> {
        let path = PathBuf::from(target.name());
        std::thread::scope(|s| {
            s.spawn(|| Ledger::connect_postgres(target))
                .join()
                .unwrap_or_else(|_| {
                    Err(LedgerError::Open {
                        path,
                        message: "the connecting thread failed".into(),
                    })
                })
        })
    }

    fn connect_postgres(target: postgres::Target) -> Result<Ledger, LedgerError> {
        let path = PathBuf::from(target.name());
        let open_err = |e: sql::SqlError| LedgerError::Open {
            path: path.clone(),
            message: e.0,
        };
        let fences = postgres::Fences::default();
        let mut write = postgres::PgConn::open(target.clone(), fences.clone()).map_err(open_err)?;
        schema::create(&mut write).map_err(|e| LedgerError::Open {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let read = postgres::PgConn::open(target.clone(), fences.clone()).map_err(open_err)?;
        let shared = Shared { target, fences };
        Ledger::start(path, Box::new(write), Box::new(read), Some(shared))
    }

    /// Shared by several instances (PostgreSQL): each mailbox needs a lease to be served.
    pub(crate) fn shared(&self) -> Option<&Shared> {
        self.inner.shared.as_ref()
    }

    /// Starts the writer and the reader on their connections.
    fn start(
        path: PathBuf,
        write: Box<dyn Sql>,
        read: Box<dyn Sql>,
        shared: Option<Shared>,
    ) -> Result<Ledger, LedgerError> {
        let thread_err = |e: std::io::Error| LedgerError::Open {
            path: path.clone(),
            message: format!("cannot start the ledger's threads: {e}"),
        };
        let writer =
            writer::spawn(write, path.clone(), writer::Role::Writer).map_err(thread_err)?;
        let reader = writer::spawn(read, path.clone(), writer::Role::Reader).map_err(thread_err)?;
        Ok(Ledger {
            inner: Arc::new(Inner {
                path,
                reader,
                writer,
                shared,
            }),
        })
    }

    /// The file, or the PostgreSQL URL without a password.
    pub(crate) fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Records POSTs about to begin, in one durable commit; see [`begin::begin_all`].
    pub(crate) async fn begin(&self, attempts: Vec<Attempt>) -> Result<Vec<Begun>, LedgerError> {
        self.write("recording attempts", move |conn| {
            begin::begin_all(conn, &attempts)
        })
        .await
    }

    /// Records how mails ended (posted, failed, deferred), in one durable commit.
    pub(crate) async fn finish(&self, finished: Vec<Finish>) -> Result<(), LedgerError> {
        if finished.is_empty() {
            return Ok(());
        }
        self.write("recording outcomes", move |conn| {
            store::finish_all(conn, &finished)
        })
        .await
    }

    /// Marks failed entries to be tried again (every failed one with `None`).
    pub(crate) async fn mark_retry(
        &self,
        message_id: Option<String>,
    ) -> Result<Vec<Entry>, LedgerError> {
        self.write("marking for retry", move |conn| {
            store::mark_retry(conn, message_id.as_deref())
        })
        .await
    }

    /// Counts a crash (on host `killed_on`) or hang while reading the mail at `place`
    /// (durably); returns its strikes now.
    pub(crate) async fn strike(
        &self,
        place: Location,
        reason: String,
        killed_on: Option<String>,
    ) -> Result<u32, LedgerError> {
        self.write("counting a strike", move |conn| {
            store::strike(conn, &place, &reason, killed_on.as_deref())
        })
        .await
    }

    /// The struck mails of one folder, by UID: their strikes, and why.
    pub(crate) async fn struck(
        &self,
        mailbox: &str,
        uid_validity: u32,
    ) -> Result<HashMap<u32, Strikes>, LedgerError> {
        let mailbox = mailbox.to_string();
        self.read("reading strikes", move |conn| {
            store::struck(conn, &mailbox, uid_validity)
        })
        .await
    }

    /// The entry of one mail, if it was ever attempted.
    pub(crate) async fn find(&self, id: &MailId) -> Result<Option<Entry>, LedgerError> {
        let id = id.clone();
        self.read("reading an entry", move |conn| store::find(conn, &id))
            .await
    }

    /// Every entry of a Message-ID (brackets optional), or of a `sha256:` content prefix.
    pub(crate) async fn entries(
        &self,
        message_id_or_hash: &str,
    ) -> Result<Vec<Entry>, LedgerError> {
        let key = message_id_or_hash.to_string();
        self.read("reading entries", move |conn| store::entries(conn, &key))
            .await
    }

    /// The tickets posted mails with this Message-ID went to.
    pub(crate) async fn tickets_for_message_id(
        &self,
        message_id: &str,
    ) -> Result<Vec<u64>, LedgerError> {
        let id = crate::mail::identity::message_id_key(message_id);
        self.read("looking up a Message-ID", move |conn| {
            store::tickets_for_message_id(conn, &id)
        })
        .await
    }

    /// Posted mails other than `id` with the same text on `ticket`: each one's date sent,
    /// when it was first seen and when it was recorded posted (unix seconds).
    pub(crate) async fn posted_with_same_text(
        &self,
        ticket: u64,
        text_hash: &str,
        id: &MailId,
    ) -> Result<Vec<(String, u64, u64)>, LedgerError> {
        let (text_hash, id) = (text_hash.to_string(), id.clone());
        self.read("counting posted replies", move |conn| {
            store::posted_with_same_text(conn, ticket, &text_hash, &id)
        })
        .await
    }

    /// Replies recorded posted to `ticket`: what the API's clock is learned from.
    pub(crate) async fn posted_on_ticket(
        &self,
        ticket: u64,
    ) -> Result<Vec<store::PostedReply>, LedgerError> {
        self.read("listing a ticket's posted replies", move |conn| {
            store::posted_on_ticket(conn, ticket)
        })
        .await
    }

    /// What the API's clock was learned from, oldest first.
    pub(crate) async fn clock_observations(
        &self,
    ) -> Result<Vec<crate::thulium::api_clock::Observation>, LedgerError> {
        self.read("reading the API's clock", clock::observations)
            .await
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
    pub(crate) async fn pending_since(
        &self,
        mailbox: &str,
    ) -> Result<Vec<(u32, std::time::SystemTime)>, LedgerError> {
        let mailbox = mailbox.to_string();
        let rows = self
            .read("listing pending mails", move |conn| {
                store::pending_since(conn, &mailbox)
            })
            .await?;
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
    pub(crate) async fn new_tickets_in_last_hour(
        &self,
        sender: &str,
        except: &MailId,
    ) -> Result<u32, LedgerError> {
        let (sender, except) = (sender.to_string(), except.clone());
        self.read("counting new tickets", move |conn| {
            store::new_tickets_from(conn, &sender, 3600, &except)
        })
        .await
    }

    /// Whether a mail other than `id` is recorded as having opened `ticket`.
    pub(crate) async fn ticket_opened_by_another(
        &self,
        ticket: u64,
        id: &MailId,
    ) -> Result<bool, LedgerError> {
        let id = id.clone();
        self.read("looking up a new ticket", move |conn| {
            store::ticket_opened_by_another(conn, ticket, &id)
        })
        .await
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
    pub(crate) async fn decisions(
        &self,
        query: &DecisionQuery,
    ) -> Result<Vec<DecisionRecord>, LedgerError> {
        let query = query.clone();
        self.read("listing decisions", move |conn| {
            decisions::list(conn, &query)
        })
        .await
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
    pub(crate) async fn failed_since(&self, secs: u64) -> Result<u64, LedgerError> {
        self.read("counting failures", move |conn| {
            store::failed_since(conn, secs)
        })
        .await
    }

    pub(crate) async fn stats(&self) -> Result<Stats, LedgerError> {
        self.read("counting entries", store::stats).await
    }

    /// Every mailbox's lease (a shared ledger; none on one host's own).
    pub(crate) async fn leases(&self) -> Result<Vec<leases::LeaseRow>, LedgerError> {
        if self.inner.shared.is_none() {
            return Ok(Vec::new());
        }
        self.read("reading the leases", leases::leases).await
    }

    /// Everything `ledger copy` carries to another ledger.
    pub(crate) async fn export(&self) -> Result<Export, LedgerError> {
        self.read("reading the ledger to copy", copy::export).await
    }

    /// Adds what `from` has and this ledger lacks, in one transaction.
    pub(crate) async fn import(&self, from: Export) -> Result<Copied, LedgerError> {
        self.write("copying a ledger in", move |conn| copy::import(conn, &from))
            .await
    }

    async fn write<T, F>(&self, op: &'static str, run: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Sql) -> SqlResult<T> + Send + 'static,
    {
        let answer =
            writer::submit(&self.inner.writer, op, run).ok_or_else(|| self.writer_gone())?;
        answer.await.map_err(|_| self.writer_gone())?
    }

    async fn read<T, F>(&self, op: &'static str, run: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Sql) -> SqlResult<T> + Send + 'static,
    {
        let answer =
            writer::submit(&self.inner.reader, op, run).ok_or_else(|| self.writer_gone())?;
        answer.await.map_err(|_| self.writer_gone())?
    }

    fn writer_gone(&self) -> LedgerError {
        LedgerError::WriterGone {
            path: self.inner.path.clone(),
        }
    }
}

/// `use_references` lookups for `decide`: an unreadable ledger, or a Message-ID posted
/// to more than one ticket (reused by some sender), means "not found".
/// `decide` runs on a blocking thread (`daemon/poison.rs`), where waiting is allowed.
impl crate::mail::decide::References for Ledger {
    fn ticket_for(&self, message_id: &str) -> Option<u64> {
        one_ticket(
            futures::executor::block_on(self.tickets_for_message_id(message_id)),
            message_id,
        )
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
mod fence_tests;
#[cfg(test)]
mod tests;
