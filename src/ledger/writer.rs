//! The one writer: a thread owning the read-write connection. Commands come in over a
//! channel; whatever has queued up meanwhile is applied in one transaction, each command
//! in its own savepoint (one failing does not undo the others), and every command is
//! answered only once the commit is durable. Grouping is what makes one fsync serve many
//! mails without anyone having to batch by hand.

use super::error::LedgerError;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, oneshot};

/// Commands applied in one transaction at most.
const GROUP: usize = 1024;

pub(super) type Sender = mpsc::UnboundedSender<Box<dyn Job>>;

/// A command: applied inside the group's transaction, answered after its commit.
pub(super) trait Job: Send {
    fn apply(&mut self, conn: &Connection, path: &Path);
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
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send,
{
    fn apply(&mut self, conn: &Connection, path: &Path) {
        if let Some(run) = self.run.take() {
            self.result = Some(in_savepoint(conn, run).map_err(|e| store_error(path, self.op, e)));
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

/// Queues `run` for the writer; the receiver answers once it is committed.
pub(super) fn submit<T, F>(
    sender: &Sender,
    op: &'static str,
    run: F,
) -> Option<oneshot::Receiver<Result<T, LedgerError>>>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
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

/// Starts the writer thread; it ends when every sender is gone.
pub(super) fn spawn(conn: Connection, path: PathBuf) -> std::io::Result<Sender> {
    let (sender, mut receiver) = mpsc::unbounded_channel::<Box<dyn Job>>();
    std::thread::Builder::new()
        .name("ledger-writer".into())
        .spawn(move || {
            while let Some(first) = receiver.blocking_recv() {
                let mut jobs = vec![first];
                while jobs.len() < GROUP {
                    match receiver.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
                let commit = run_group(&conn, &path, &mut jobs);
                for job in jobs {
                    job.answer(commit.clone());
                }
            }
        })?;
    Ok(sender)
}

fn run_group(conn: &Connection, path: &Path, jobs: &mut [Box<dyn Job>]) -> Result<(), LedgerError> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| store_error(path, "starting a transaction", e))?;
    for job in jobs.iter_mut() {
        job.apply(conn, path);
    }
    conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        store_error(path, "committing", e)
    })
}

fn in_savepoint<T>(
    conn: &Connection,
    run: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.execute_batch("SAVEPOINT job")?;
    match run(conn) {
        Ok(v) => {
            conn.execute_batch("RELEASE job")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            Err(e)
        }
    }
}

pub(super) fn store_error(path: &Path, op: &'static str, e: rusqlite::Error) -> LedgerError {
    LedgerError::Store {
        path: path.to_path_buf(),
        op,
        message: e.to_string(),
    }
}
