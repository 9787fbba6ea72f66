//! A logged-in IMAP session and the few commands the bridge needs, each bounded in time.
//!
//! Any error consumes nothing but marks the session broken: callers drop it and reconnect.

use super::certificate::Presented;
use super::error::ImapError;
use super::folder_names::Namespace;
use super::stream::ImapStream;
use super::tagged_reply::TaggedReplies;
use super::uidset::uid_set;
use super::{namespace, utf7};
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

pub(crate) struct MailSession {
    session: async_imap::Session<ImapStream>,
    /// The server's tagged answers, for quoting a refusal.
    replies: TaggedReplies,
    has_idle: bool,
    has_move: bool,
    has_uidplus: bool,
    /// Where the user's folders live and how levels are separated.
    namespace: Namespace,
    /// The selected folder, once selected.
    selected: Option<FolderState>,
    /// The server's certificate, and whether a pin trusted it (TLS only).
    peer: Option<(Presented, bool)>,
    /// The server announced new mail (EXISTS/RECENT) in the answer to a command.
    new_mail: bool,
}

/// A mail's UID and size, known before downloading it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MailMeta {
    pub uid: u32,
    /// `None` when the server gave none: then it is treated as too large.
    pub size: Option<u32>,
}

/// A downloaded mail.
#[derive(Debug, Clone)]
pub(crate) struct RawMail {
    pub uid: u32,
    pub raw: Vec<u8>,
    pub internal_date: Option<DateTime<FixedOffset>>,
}

/// What the selected folder looks like.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FolderState {
    pub uid_validity: u32,
    pub exists: u32,
    /// PERMANENTFLAGS allows new keywords (`\*`): a `flag:` disposition sticks.
    /// Exchange Online keeps none.
    pub keywords_kept: bool,
}

/// How IDLE ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum IdleEnd {
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
    replies: &TaggedReplies,
    fut: impl Future<Output = Result<T, async_imap::error::Error>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ImapError::command(command, e, replies)),
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
        peer: Option<(Presented, bool)>,
    ) -> Result<Self, ImapError> {
        let replies = session.get_ref().replies().clone();
        let caps = bounded(
            "CAPABILITY",
            COMMAND_TIMEOUT,
            &replies,
            session.capabilities(),
        )
        .await?;
        let namespace = if caps.has_str("NAMESPACE") {
            bounded("NAMESPACE", COMMAND_TIMEOUT, &replies, async {
                namespace::query(session.get_mut())
                    .await
                    .map_err(Into::into)
            })
            .await?
        } else {
            None
        };
        let namespace = match namespace {
            Some(ns) => ns,
            // Without NAMESPACE: folders at the top, levels as `LIST "" ""` says.
            None => {
                let delimiter = bounded("LIST", COMMAND_TIMEOUT, &replies, async {
                    let names: Vec<_> = session
                        .list(Some(""), Some(""))
                        .await?
                        .try_collect()
                        .await?;
                    Ok(names
                        .first()
                        .and_then(|n| n.delimiter())
                        .and_then(|d| d.chars().next()))
                })
                .await?;
                Namespace {
                    prefix: String::new(),
                    delimiter,
                }
            }
        };
        let mut s = MailSession {
            has_idle: caps.has_str("IDLE"),
            has_move: caps.has_str("MOVE"),
            has_uidplus: caps.has_str("UIDPLUS"),
            namespace,
            selected: None,
            peer,
            new_mail: false,
            session,
            replies,
        };
        s.drain();
        Ok(s)
    }

    pub(crate) fn has_idle(&self) -> bool {
        self.has_idle
    }

    /// The server's name for a folder named `name` in the config.
    pub(crate) fn server_name(&self, name: &str) -> Result<String, ImapError> {
        self.namespace
            .server_name(name)
            .map_err(|problem| ImapError::Folder {
                name: name.to_string(),
                problem,
            })
    }

    /// Why these dispositions cannot be carried out on this server, if they cannot.
    pub(crate) fn unsupported(&self, dispositions: &[&Disposition]) -> Option<String> {
        let moves = dispositions
            .iter()
            .find(|d| matches!(d, Disposition::Move(_) | Disposition::Delete));
        if let Some(d) = moves
            && !self.has_move
            && !self.has_uidplus
        {
            return Some(format!(
                "{d} needs MOVE or UIDPLUS, and the server has neither: without them removing a mail needs a plain EXPUNGE, which also removes every other mail marked \\Deleted (other clients' too); use flag:<keyword> or seen for this mailbox"
            ));
        }
        let flags = dispositions
            .iter()
            .find(|d| matches!(d, Disposition::Flag(_)));
        if let Some(d) = flags
            && self.selected.is_some_and(|s| !s.keywords_kept)
        {
            return Some(format!(
                "{d} needs the server to keep custom keywords, and it does not (PERMANENTFLAGS has no \\*; Exchange Online is like that); use move:<folder> or seen for this mailbox"
            ));
        }
        None
    }

    /// Unsolicited responses go to a bounded channel that drops when full; keep it empty,
    /// remembering whether new mail was announced (a server tells it with the next
    /// command's answer, and IDLE does not repeat it).
    fn drain(&mut self) {
        while let Ok(r) = self.session.unsolicited_responses.try_recv() {
            if matches!(
                r,
                async_imap::types::UnsolicitedResponse::Exists(_)
                    | async_imap::types::UnsolicitedResponse::Recent(_)
            ) {
                self.new_mail = true;
            }
        }
    }

    /// Whether new mail was announced since the last call.
    pub(crate) fn take_new_mail(&mut self) -> bool {
        std::mem::take(&mut self.new_mail)
    }

    /// The selected folder as its SELECT found it.
    pub(crate) fn selected(&self) -> Option<FolderState> {
        self.selected
    }

    /// Whether the server's certificate was trusted as a pin (not through a CA).
    pub(crate) fn pinned(&self) -> bool {
        matches!(self.peer, Some((_, true)))
    }

    /// The warning for a pinned certificate past its validity (it still works).
    pub(crate) fn expired_pin_warning(&self) -> Option<String> {
        match &self.peer {
            Some((presented, true)) => presented.expired_pin_warning(),
            _ => None,
        }
    }

    /// UIDVALIDITY of the selected folder: a UID means the same mail only under it.
    pub(crate) fn uid_validity(&self) -> u32 {
        self.selected.map_or(0, |s| s.uid_validity)
    }

    /// Selects the folder named `folder` in the config.
    pub(crate) async fn select(&mut self, folder: &str) -> Result<FolderState, ImapError> {
        let name = self.server_name(folder)?;
        let mailbox = bounded(
            "SELECT",
            COMMAND_TIMEOUT,
            &self.replies,
            self.session.select(&name),
        )
        .await?;
        self.drain();
        // No PERMANENTFLAGS at all means every flag is permanent (RFC 3501).
        let keywords_kept = mailbox.permanent_flags.is_empty()
            || mailbox
                .permanent_flags
                .iter()
                .any(|f| matches!(f, async_imap::types::Flag::MayCreate));
        let state = FolderState {
            uid_validity: mailbox.uid_validity.unwrap_or(0),
            exists: mailbox.exists,
            keywords_kept,
        };
        self.selected = Some(state);
        Ok(state)
    }

    /// Every folder's server name (`LIST "" "*"`).
    async fn server_folders(&mut self) -> Result<HashSet<String>, ImapError> {
        let names = bounded("LIST", COMMAND_TIMEOUT, &self.replies, async {
            let names: Vec<_> = self
                .session
                .list(Some(""), Some("*"))
                .await?
                .try_collect()
                .await?;
            Ok(names.iter().map(|n| n.name().to_string()).collect())
        })
        .await?;
        self.drain();
        Ok(names)
    }

    /// Every folder, named for people (modified UTF-7 decoded).
    pub(crate) async fn folders(&mut self) -> Result<Vec<String>, ImapError> {
        let mut names: Vec<String> = self
            .server_folders()
            .await?
            .into_iter()
            .map(|n| utf7::decode(&n).unwrap_or(n))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Creates the folders (named as in the config) that do not exist yet; returns the
    /// server names it created. One that exists after all — `[ALREADYEXISTS]`, another
    /// client was quicker — is no trouble; parents are created first where the server
    /// wants them so.
    pub(crate) async fn ensure_folders(
        &mut self,
        folders: &[&str],
    ) -> Result<Vec<String>, ImapError> {
        let mut existing = self.server_folders().await?;
        let exists = |existing: &HashSet<String>, name: &str| {
            existing.contains(name)
                || (name == "INBOX" && existing.iter().any(|n| n.eq_ignore_ascii_case("INBOX")))
        };
        let mut created = Vec::new();
        for folder in folders {
            let name = self.server_name(folder)?;
            if exists(&existing, &name) {
                continue;
            }
            if let Err(e) = self.create(&name).await {
                existing = self.server_folders().await?;
                if exists(&existing, &name) {
                    continue;
                }
                for parent in self.namespace.parents(&name) {
                    if !exists(&existing, &parent) {
                        let _ = self.create(&parent).await;
                    }
                }
                if let Err(again) = self.create(&name).await {
                    tracing::debug!(folder, first = %e, "CREATE failed twice");
                    return Err(again);
                }
            }
            existing.insert(name.clone());
            created.push(utf7::decode(&name).unwrap_or(name));
        }
        Ok(created)
    }

    /// `CREATE name` (a server name).
    async fn create(&mut self, name: &str) -> Result<(), ImapError> {
        let created = bounded(
            "CREATE",
            COMMAND_TIMEOUT,
            &self.replies,
            self.session.create(name),
        )
        .await;
        self.drain();
        created
    }

    /// UIDs of mails that carry none of the bridge's own marks.
    pub(crate) async fn candidates(
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
    pub(crate) async fn find_message_id(
        &mut self,
        message_id: &str,
    ) -> Result<Vec<u32>, ImapError> {
        self.search(&format!("HEADER Message-ID {}", quoted(message_id)))
            .await
    }

    /// `UID SEARCH query`, in ascending order.
    async fn search(&mut self, query: &str) -> Result<Vec<u32>, ImapError> {
        let uids = bounded(
            "UID SEARCH",
            COMMAND_TIMEOUT,
            &self.replies,
            self.session.uid_search(query),
        )
        .await?;
        self.drain();
        let mut uids: Vec<u32> = uids.into_iter().collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// Sizes, so oversize mails are never downloaded.
    pub(crate) async fn meta(&mut self, uids: &[u32]) -> Result<Vec<MailMeta>, ImapError> {
        let mut metas = Vec::with_capacity(uids.len());
        self.fetch_each(uids, "(UID RFC822.SIZE)", |f| {
            if let Some(uid) = f.uid {
                metas.push(MailMeta { uid, size: f.size });
            }
        })
        .await?;
        Ok(metas)
    }

    /// Downloads mails with `BODY.PEEK[]<0.limit>`, which never sets `\Seen` and never
    /// reads more than `limit` bytes of one mail, whatever size the server announced.
    pub(crate) async fn fetch(
        &mut self,
        uids: &[u32],
        limit: u64,
    ) -> Result<Vec<RawMail>, ImapError> {
        let mut mails = Vec::with_capacity(uids.len());
        let items = format!("(UID INTERNALDATE BODY.PEEK[]<0.{limit}>)");
        self.fetch_each(uids, &items, |f| {
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
            bounded(&command, FETCH_TIMEOUT, &self.replies, async {
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
    pub(crate) async fn dispose(
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
                let folder = self.server_name(folder)?;
                self.run(&format!("UID MOVE {set} {}", quoted(&folder)))
                    .await?;
            }
            Disposition::Move(folder) => {
                let folder = self.server_name(folder)?;
                self.run(&format!("UID COPY {set} {}", quoted(&folder)))
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
            // Not a place: a mail that became a ticket is disposed by on_posted, and the
            // config's dispositions are resolved before they get here. Were one to
            // arrive, the mail stays where it is (handled again), and it is said.
            Disposition::NewTicket => {
                tracing::error!(%set, "a bug: new_ticket given as where to put mail; left in place");
            }
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
            &self.replies,
            self.session.run_command_and_check_ok(command),
        )
        .await?;
        self.drain();
        Ok(())
    }

    /// Waits in IDLE for up to `period`, or until `interrupt` completes. Consumes the
    /// session on error so a broken one is never reused.
    pub(crate) async fn idle(
        self,
        period: Duration,
        interrupt: impl Future<Output = ()>,
    ) -> Result<(Self, IdleEnd), ImapError> {
        let MailSession {
            session,
            has_idle,
            has_move,
            has_uidplus,
            namespace,
            selected,
            peer,
            new_mail,
            replies,
        } = self;
        let mut handle = session.idle();
        bounded("IDLE", COMMAND_TIMEOUT, &replies, handle.init()).await?;
        let end = {
            let (wait, _stop) = handle.wait_with_timeout(period);
            tokio::select! {
                r = tokio::time::timeout(period, wait) => match r {
                    Ok(Ok(async_imap::extensions::idle::IdleResponse::NewData(_))) => IdleEnd::NewData,
                    Ok(Ok(_)) | Err(_) => IdleEnd::Timeout,
                    Ok(Err(e)) => return Err(ImapError::command("IDLE", e, &replies)),
                },
                _ = interrupt => IdleEnd::Interrupted,
            }
        };
        if end == IdleEnd::NewData {
            tracing::debug!("IDLE: the server reported a change");
        }
        let session = bounded("DONE", COMMAND_TIMEOUT, &replies, handle.done()).await?;
        let mut s = MailSession {
            session,
            has_idle,
            has_move,
            has_uidplus,
            namespace,
            selected,
            peer,
            new_mail,
            replies,
        };
        s.drain();
        Ok((s, end))
    }

    /// Says goodbye; errors do not matter any more.
    pub(crate) async fn logout(mut self) {
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
