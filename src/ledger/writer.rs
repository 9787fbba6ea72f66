//! The threads that own the ledger's connections, so that no ledger call blocks a
//! runtime thread on either backend: callers await an answer.
//!
//! The writer: whatever has queued up meanwhile is applied in one transaction, each
//! command in its own savepoint (one failing does not undo the others), and every
//! command is answered only once the commit is durable. Grouping is what makes one
//! fsync (or one round trip to PostgreSQL) serve many mails without anyone having to
//! batch by hand. The reader: one query at a time on a connection of its own, so
//! `ledger show` and the daemon's lookups never wait for a commit.

use super::error::LedgerError;
use super::sql::{Sql, SqlError, SqlResult};
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, oneshot};

/// Commands applied in one transaction at most.
const GROUP: usize = 1024;

pub(super) type Sender = mpsc::UnboundedSender<Box<dyn Job>>;

/// A command: applied (inside the group's transaction, for the writer), answered after.
pub(super) trait Job: Send {
    fn apply(&mut self, conn: &mut dyn Sql, ledger: &Path, savepoint: bool);
    fn answer(self: Box<Self>, commit: Result<(), LedgerError>);
}

struct Typed<T, F> {
    op: &'static str,
    run: Option<F>,
    result: Option<Result<T, LedgerError>>,
    reply: oneshot::Sender<Result<T, LedgerError>>,
}

impl<T, F> Job for Typed<T, F>
where
    T: Send,
    F: FnOnce(&mut dyn Sql) -> SqlResult<T> + Send,
{
    fn apply(&mut self, conn: &mut dyn Sql, ledger: &Path, savepoint: bool) {
        if let Some(run) = self.run.take() {
            let result = if savepoint {
                in_savepoint(conn, run)
            } else {
                run(conn)
            };
            self.result = Some(result.map_err(|e| store_error(ledger, self.op, e)));
        }
    }

    fn answer(self: Box<Self>, commit: Result<(), LedgerError>) {
        let Typed {
            op, result, reply, ..
        } = *self;
        let result = commit.and_then(|()| {
            result.unwrap_or_else(|| {
                Err(LedgerError::Store {
                    path: PathBuf::new(),
                    op,
                    message: "not applied".into(),
                })
            })
        });
        let _ = reply.send(result);
    }
}

/// Queues `run` for the thread behind `sender`; the receiver answers once it is done
/// (committed, for the writer).
pub(super) fn submit<T, F>(
    sender: &Sender,
    op: &'static str,
    run: F,
) -> Option<oneshot::Receiver<Result<T, LedgerError>>>
where
    T: Send + 'static,
    F: FnOnce(&mut dyn Sql) -> SqlResult<T> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job = Typed {
        op,
        run: Some(run),
        result: None,
        reply,
    };
    sender.send(Box::new(job)).ok()?;
    Some(answer)
}

/// Whether a thread groups its commands into transactions (the writer) or runs each
/// alone (the reader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Writer,
    Reader,
}

/// Starts a thread owning `conn`; it ends when every sender is gone.
pub(super) fn spawn(
    mut conn: Box<dyn Sql>,
    ledger: PathBuf,
    role: Role,
) -> std::io::Result<Sender> {
    let (sender, mut receiver) = mpsc::unbounded_channel::<Box<dyn Job>>();
    let name = match role {
        Role::Writer => "ledger-writer",
        Role::Reader => "ledger-reader",
    };
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            while let Some(first) = receiver.blocking_recv() {
                let mut jobs = vec![first];
                while role == Role::Writer && jobs.len() < GROUP {
                    match receiver.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
                let done = match conn.reconnect() {
                    Err(e) => Err(store_error(&ledger, "connecting", e)),
                    Ok(()) if role == Role::Writer => run_group(conn.as_mut(), &ledger, &mut jobs),
                    Ok(()) => {
                        for job in jobs.iter_mut() {
                            job.apply(conn.as_mut(), &ledger, false);
                        }
                        Ok(())
                    }
                };
                for job in jobs {
                    job.answer(done.clone());
                }
            }
        })?;
    Ok(sender)
}

fn run_group(
    conn: &mut dyn Sql,
    ledger: &Path,
    jobs: &mut [Box<dyn Job>],
) -> Result<(), LedgerError> {
    let begin = conn.begin_group();
    conn.batch(begin)
        .map_err(|e| store_error(ledger, "starting a transaction", e))?;
    for job in jobs.iter_mut() {
        job.apply(conn, ledger, true);
    }
    conn.batch("COMMIT").map_err(|e| {
        let _ = conn.batch("ROLLBACK");
        store_error(ledger, "committing", e)
    })
}

fn in_savepoint<T>(
    conn: &mut dyn Sql,
    run: impl FnOnce(&mut dyn Sql) -> SqlResult<T>,
) -> SqlResult<T> {
    conn.batch("SAVEPOINT job")?;
    match run(conn) {
        Ok(v) => {
            conn.batch("RELEASE SAVEPOINT job")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.batch("ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job");
            Err(e)
        }
    }
}

pub(super) fn store_error(ledger: &Path, op: &'static str, e: SqlError) -> LedgerError {
    LedgerError::Store {
        path: ledger.to_path_buf(),
        op,
        message: e.0,
    }
}
