//! A logged-in IMAP session and the few commands the bridge needs, each bounded in time.
//!
//! Any error consumes nothing but marks the session broken: callers drop it and reconnect.

use super::error::ImapError;
use super::stream::ImapStream;
use super::uidset::uid_set;
use crate::config::Disposition;
use chrono::{DateTime, FixedOffset};
use futures::TryStreamExt;
use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

/// Longest wait for one command's complete answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Fetching a batch of full mails may take longer on a slow link.
const FETCH_TIMEOUT: Duration = Duration::from_secs(300);

pub struct MailSession {
    session: async_imap::Session<ImapStream>,
    has_idle: bool,
    has_move: bool,
    has_uidplus: bool,
}

/// A mail's UID, size and arrival time, known before downloading it.
#[derive(Debug, Clone, Copy)]
pub struct MailMeta {
    pub uid: u32,
    pub size: u32,
    pub internal_date: Option<DateTime<FixedOffset>>,
}

/// A downloaded mail.
#[derive(Debug, Clone)]
pub struct RawMail {
    pub uid: u32,
    pub raw: Vec<u8>,
    pub internal_date: Option<DateTime<FixedOffset>>,
}

/// What the selected folder looks like.
#[derive(Debug, Clone, Copy)]
pub struct FolderState {
    pub uid_validity: u32,
    pub exists: u32,
}

/// How IDLE ended.
#[derive(Debug, PartialEq, Eq)]
pub enum IdleEnd {
    /// The server reported a change in the folder.
    NewData,
    /// Our own period ended (re-issue IDLE, poll as a safety net).
    Timeout,
    /// Shutdown or reload was asked for.
    Interrupted,
}

async fn bounded<T, E: std::fmt::Display>(
    command: &str,
    limit: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ImapError::command(command, e)),
        Err(_) => Err(ImapError::Timeout {
            command: command.to_string(),
            after: limit,
        }),
    }
}

/// An IMAP quoted string (folder names, keywords come from the config).
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl MailSession {
    pub(super) async fn new(
        mut session: async_imap::Session<ImapStream>,
    ) -> Result<Self, ImapError> {
        let caps = bounded("CAPABILITY", COMMAND_TIMEOUT, session.capabilities()).await?;
        Ok(MailSession {
            has_idle: caps.has_str("IDLE"),
            has_move: caps.has_str("MOVE"),
            has_uidplus: caps.has_str("UIDPLUS"),
            session,
        })
    }

    pub fn has_idle(&self) -> bool {
        self.has_idle
    }

    /// Unsolicited responses go to a bounded channel that drops when full; keep it empty.
    fn drain(&mut self) {
        while self.session.unsolicited_responses.try_recv().is_ok() {}
    }

    pub async fn select(&mut self, folder: &str) -> Result<FolderState, ImapError> {
        let mailbox = bounded("SELECT", COMMAND_TIMEOUT, self.session.select(folder)).await?;
        self.drain();
        Ok(FolderState {
            uid_validity: mailbox.uid_validity.unwrap_or(0),
            exists: mailbox.exists,
        })
    }

    /// Creates the folders that do not exist yet; returns the ones it created.
    pub async fn ensure_folders(&mut self, folders: &[&str]) -> Result<Vec<String>, ImapError> {
        let existing: HashSet<String> = bounded("LIST", COMMAND_TIMEOUT, async {
            let names: Vec<_> = self
                .session
                .list(Some(""), Some("*"))
                .await?
                .try_collect()
                .await?;
            Ok::<_, async_imap::error::Error>(names.iter().map(|n| n.name().to_string()).collect())
        })
        .await?;
        let mut created = Vec::new();
        for folder in folders {
            let exists = existing.contains(*folder)
                || (folder.eq_ignore_ascii_case("INBOX")
                    && existing.iter().any(|n| n.eq_ignore_ascii_case("INBOX")));
            if !exists && !created.iter().any(|c: &String| c == folder) {
                bounded("CREATE", COMMAND_TIMEOUT, self.session.create(folder)).await?;
                created.push(folder.to_string());
            }
        }
        self.drain();
        Ok(created)
    }

    /// UIDs of mails that carry none of the bridge's own marks.
    pub async fn candidates(
        &mut self,
        own_keywords: &[&str],
        unseen_only: bool,
    ) -> Result<Vec<u32>, ImapError> {
        let mut query = String::from("UNDELETED");
        for kw in own_keywords {
            query.push_str(" UNKEYWORD ");
            query.push_str(kw);
        }
        if unseen_only {
            query.push_str(" UNSEEN");
        }
        let uids = bounded(
            "UID SEARCH",
            COMMAND_TIMEOUT,
            self.session.uid_search(&query),
        )
        .await?;
        self.drain();
        let mut uids: Vec<u32> = uids.into_iter().collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// Sizes and INTERNALDATEs, so oversize mails are never downloaded.
    pub async fn meta(&mut self, uids: &[u32]) -> Result<Vec<MailMeta>, ImapError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(uids);
        let fetches: Vec<_> = bounded("UID FETCH (RFC822.SIZE)", FETCH_TIMEOUT, async {
            self.session
                .uid_fetch(&set, "(UID RFC822.SIZE INTERNALDATE)")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        self.drain();
        Ok(fetches
            .iter()
            .filter_map(|f| {
                Some(MailMeta {
                    uid: f.uid?,
                    size: f.size.unwrap_or(0),
                    internal_date: f.internal_date(),
                })
            })
            .collect())
    }

    /// Downloads whole mails with `BODY.PEEK[]`, which never sets `\Seen`.
    pub async fn fetch(&mut self, uids: &[u32]) -> Result<Vec<RawMail>, ImapError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(uids);
        let fetches: Vec<_> = bounded("UID FETCH (BODY.PEEK[])", FETCH_TIMEOUT, async {
            self.session
                .uid_fetch(&set, "(UID INTERNALDATE BODY.PEEK[])")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        self.drain();
        Ok(fetches
            .iter()
            .filter_map(|f| {
                Some(RawMail {
                    uid: f.uid?,
                    raw: f.body()?.to_vec(),
                    internal_date: f.internal_date(),
                })
            })
            .collect())
    }

    /// Applies one disposition to a set of UIDs in as few commands as the server allows.
    pub async fn dispose(
        &mut self,
        disposition: &Disposition,
        uids: &[u32],
    ) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        let set = uid_set(uids);
        match disposition {
            Disposition::Move(folder) if self.has_move => {
                self.run(&format!("UID MOVE {set} {}", quoted(folder)))
                    .await?;
            }
            Disposition::Move(folder) => {
                self.run(&format!("UID COPY {set} {}", quoted(folder)))
                    .await?;
                self.delete(&set).await?;
            }
            Disposition::Flag(keyword) => {
                self.run(&format!("UID STORE {set} +FLAGS.SILENT ({keyword})"))
                    .await?;
            }
            Disposition::Seen => {
                self.run(&format!("UID STORE {set} +FLAGS.SILENT (\\Seen)"))
                    .await?;
            }
            Disposition::Delete => self.delete(&set).await?,
        }
        Ok(())
    }

    /// `\Deleted`, then `UID EXPUNGE` of exactly these UIDs; never a plain EXPUNGE of other mails.
    async fn delete(&mut self, set: &str) -> Result<(), ImapError> {
        self.run(&format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"))
            .await?;
        if self.has_uidplus {
            self.run(&format!("UID EXPUNGE {set}")).await?;
        }
        Ok(())
    }

    async fn run(&mut self, command: &str) -> Result<(), ImapError> {
        let name = command.split(' ').take(2).collect::<Vec<_>>().join(" ");
        bounded(
            &name,
            COMMAND_TIMEOUT,
            self.session.run_command_and_check_ok(command),
        )
        .await?;
        self.drain();
        Ok(())
    }

    /// Keeps a connection alive and checks it still works.
    pub async fn noop(&mut self) -> Result<(), ImapError> {
        bounded("NOOP", COMMAND_TIMEOUT, self.session.noop()).await?;
        self.drain();
        Ok(())
    }

    /// Waits in IDLE for up to `period`, or until `interrupt` completes. Consumes the
    /// session on error so a broken one is never reused.
    pub async fn idle(
        self,
        period: Duration,
        interrupt: impl Future<Output = ()>,
    ) -> Result<(Self, IdleEnd), ImapError> {
        let MailSession {
            session,
            has_idle,
            has_move,
            has_uidplus,
        } = self;
        let mut handle = session.idle();
        bounded("IDLE", COMMAND_TIMEOUT, handle.init()).await?;
        let end = {
            let (wait, _stop) = handle.wait_with_timeout(period);
            tokio::select! {
                r = tokio::time::timeout(period, wait) => match r {
                    Ok(Ok(async_imap::extensions::idle::IdleResponse::NewData(_))) => IdleEnd::NewData,
                    Ok(Ok(_)) | Err(_) => IdleEnd::Timeout,
                    Ok(Err(e)) => return Err(ImapError::command("IDLE", e)),
                },
                _ = interrupt => IdleEnd::Interrupted,
            }
        };
        let session = bounded("DONE", COMMAND_TIMEOUT, handle.done()).await?;
        let mut s = MailSession {
            session,
            has_idle,
            has_move,
            has_uidplus,
        };
        s.drain();
        Ok((s, end))
    }

    /// Says goodbye; errors do not matter any more.
    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.session.logout()).await;
    }
}
