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
    /// The selected folder, once selected.
    selected: Option<FolderState>,
}

/// A mail's UID and size, known before downloading it.
#[derive(Debug, Clone, Copy)]
pub struct MailMeta {
    pub uid: u32,
    pub size: u32,
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

async fn bounded<T>(
    command: &str,
    limit: Duration,
    fut: impl Future<Output = Result<T, async_imap::error::Error>>,
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

/// Longest UID set in one command: RFC 7162 asks clients to keep command lines within
/// 8192 octets, and scattered UIDs take about 7 characters each.
const MAX_SET_CHARS: usize = 4000;

/// The UIDs as IMAP sets of at most `max_chars` each (a single range may be longer),
/// split between ranges: `[1,2,3,7,9,10]` fits `"1:3,7,9:10"`.
fn uid_sets(uids: &[u32], max_chars: usize) -> Vec<String> {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut sets = Vec::new();
    let mut set = String::new();
    let mut rest = sorted.as_slice();
    while let Some(&start) = rest.first() {
        let run = rest
            .iter()
            .zip(start..)
            .take_while(|(uid, want)| **uid == *want)
            .count();
        let range = uid_set(&rest[..run]);
        rest = &rest[run..];
        if !set.is_empty() && set.len() + 1 + range.len() > max_chars {
            sets.push(std::mem::take(&mut set));
        }
        if !set.is_empty() {
            set.push(',');
        }
        set.push_str(&range);
    }
    if !set.is_empty() {
        sets.push(set);
    }
    sets
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
            selected: None,
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

    /// UIDVALIDITY of the selected folder: a UID means the same mail only under it.
    pub fn uid_validity(&self) -> u32 {
        self.selected.map_or(0, |s| s.uid_validity)
    }

    pub async fn select(&mut self, folder: &str) -> Result<FolderState, ImapError> {
        let mailbox = bounded("SELECT", COMMAND_TIMEOUT, self.session.select(folder)).await?;
        self.drain();
        let state = FolderState {
            uid_validity: mailbox.uid_validity.unwrap_or(0),
            exists: mailbox.exists,
        };
        self.selected = Some(state);
        Ok(state)
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
        self.search(&query).await
    }

    /// UIDs of the mails in the selected folder with this Message-ID (`ledger retry --move-back`).
    pub async fn find_message_id(&mut self, message_id: &str) -> Result<Vec<u32>, ImapError> {
        self.search(&format!("HEADER Message-ID {}", quoted(message_id)))
            .await
    }

    /// `UID SEARCH query`, in ascending order.
    async fn search(&mut self, query: &str) -> Result<Vec<u32>, ImapError> {
        let uids = bounded(
            "UID SEARCH",
            COMMAND_TIMEOUT,
            self.session.uid_search(query),
        )
        .await?;
        self.drain();
        let mut uids: Vec<u32> = uids.into_iter().collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// Sizes, so oversize mails are never downloaded.
    pub async fn meta(&mut self, uids: &[u32]) -> Result<Vec<MailMeta>, ImapError> {
        let mut metas = Vec::with_capacity(uids.len());
        self.fetch_each(uids, "(UID RFC822.SIZE)", |f| {
            if let Some(uid) = f.uid {
                metas.push(MailMeta {
                    uid,
                    size: f.size.unwrap_or(0),
                });
            }
        })
        .await?;
        Ok(metas)
    }

    /// Downloads whole mails with `BODY.PEEK[]`, which never sets `\Seen`.
    pub async fn fetch(&mut self, uids: &[u32]) -> Result<Vec<RawMail>, ImapError> {
        let mut mails = Vec::with_capacity(uids.len());
        self.fetch_each(uids, "(UID INTERNALDATE BODY.PEEK[])", |f| {
            if let (Some(uid), Some(body)) = (f.uid, f.body()) {
                mails.push(RawMail {
                    uid,
                    raw: body.to_vec(),
                    internal_date: f.internal_date(),
                });
            }
        })
        .await?;
        Ok(mails)
    }

    /// `UID FETCH items` over `uids`, each answer handed to `each` as it arrives and
    /// then dropped: async-imap keeps every response in a buffer of its own (4 KiB at
    /// least), so collecting the raw answers would cost that per mail.
    async fn fetch_each(
        &mut self,
        uids: &[u32],
        items: &str,
        mut each: impl FnMut(&async_imap::types::Fetch),
    ) -> Result<(), ImapError> {
        let command = format!("UID FETCH {items}");
        for set in uid_sets(uids, MAX_SET_CHARS) {
            bounded(&command, FETCH_TIMEOUT, async {
                let mut fetches = self.session.uid_fetch(&set, items).await?;
                while let Some(f) = fetches.try_next().await? {
                    each(&f);
                }
                Ok(())
            })
            .await?;
            self.drain();
        }
        Ok(())
    }

    /// Applies one disposition to a set of UIDs in as few commands as the server allows.
    pub async fn dispose(
        &mut self,
        disposition: &Disposition,
        uids: &[u32],
    ) -> Result<(), ImapError> {
        for set in uid_sets(uids, MAX_SET_CHARS) {
            self.dispose_set(disposition, &set).await?;
        }
        Ok(())
    }

    async fn dispose_set(&mut self, disposition: &Disposition, set: &str) -> Result<(), ImapError> {
        match disposition {
            Disposition::Move(folder) if self.has_move => {
                self.run(&format!("UID MOVE {set} {}", quoted(folder)))
                    .await?;
            }
            Disposition::Move(folder) => {
                self.run(&format!("UID COPY {set} {}", quoted(folder)))
                    .await?;
                self.delete(set).await?;
            }
            Disposition::Flag(keyword) => {
                self.run(&format!("UID STORE {set} +FLAGS.SILENT ({keyword})"))
                    .await?;
            }
            Disposition::Seen => {
                self.run(&format!("UID STORE {set} +FLAGS.SILENT (\\Seen)"))
                    .await?;
            }
            Disposition::Delete => self.delete(set).await?,
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
            selected,
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
        if end == IdleEnd::NewData {
            tracing::debug!("IDLE: the server reported a change");
        }
        let session = bounded("DONE", COMMAND_TIMEOUT, handle.done()).await?;
        let mut s = MailSession {
            session,
            has_idle,
            has_move,
            has_uidplus,
            selected,
        };
        s.drain();
        Ok((s, end))
    }

    /// Says goodbye; errors do not matter any more.
    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.session.logout()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::uid_sets;

    #[test]
    fn long_uid_sets_are_split_between_ranges() {
        assert_eq!(uid_sets(&[9, 1, 2, 3, 7, 10, 2], 100), ["1:3,7,9:10"]);
        assert_eq!(uid_sets(&[1, 2, 3, 7, 9, 10], 6), ["1:3,7", "9:10"]);
        assert_eq!(uid_sets(&[], 6), Vec::<String>::new());
        let scattered: Vec<u32> = (0..5000).map(|i| 1_000_000 + 2 * i).collect();
        let sets = uid_sets(&scattered, 4000);
        assert!(sets.iter().all(|s| s.len() <= 4000));
        assert_eq!(
            sets.iter().map(|s| s.split(',').count()).sum::<usize>(),
            5000
        );
        let all: Vec<u32> = (1..=50_000).collect();
        assert_eq!(uid_sets(&all, 4000), ["1:50000"]);
    }
}
