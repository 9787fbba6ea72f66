//! `ledger retry`: failed replies get another chance. The entries are marked retryable
//! (the daemon may be running: the write waits its turn); the mails themselves must come
//! back into the watched folder, which `--move-back` does over IMAP when `on_failed` is
//! `move:`. A mail a person moves back by hand is a fresh attempt as well (new UID).

use crate::config::{Config, Disposition, MailboxConfig};
use crate::ledger::{Entry, Ledger};
use std::collections::BTreeMap;

/// Which failed entries to retry.
pub(crate) enum RetryTarget<'a> {
    MessageId(&'a str),
    AllFailed,
}

/// Marks the entries and (with `move_back`) moves their mails back; Ok(false) when
/// nothing matched or a mail could not be moved.
pub(crate) fn retry(
    config: &Config,
    ledger: &Ledger,
    target: RetryTarget<'_>,
    move_back: bool,
) -> anyhow::Result<bool> {
    let id = match target {
        RetryTarget::MessageId(id) => Some(id),
        RetryTarget::AllFailed => None,
    };
    let marked = futures::executor::block_on(ledger.mark_retry(id.map(str::to_string)))?;
    if marked.is_empty() {
        match id {
            Some(id) => println!("{id}: no failed mail with this Message-ID in the ledger"),
            None => println!("no failed mails in the ledger"),
        }
        return Ok(id.is_none());
    }
    for e in &marked {
        println!(
            "marked for retry: {} (ticket {}; failed: {})",
            e.id,
            e.ticket,
            e.reason.as_deref().unwrap_or("no reason recorded")
        );
    }
    if !move_back {
        println!(
            "each is tried again when its mail is back in the watched folder: move it there, or run `ledger retry ... --move-back`"
        );
        return Ok(true);
    }
    let mut by_mailbox: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in &marked {
        by_mailbox
            .entry(e.location.mailbox.as_str())
            .or_default()
            .push(e);
    }
    let runtime = crate::daemon::runtime()?;
    let mut all_moved = true;
    for (name, entries) in by_mailbox {
        let Some(mb) = config.mailboxes.iter().find(|m| m.name == name) else {
            println!(
                "mailbox {name:?} is not in the config: move its {} mail(s) back by hand",
                entries.len()
            );
            all_moved = false;
            continue;
        };
        match runtime.block_on(move_back_mails(mb, &entries)) {
            Ok(moved) => {
                println!(
                    "mailbox {name}: moved {moved} of {} mail(s) back to {}",
                    entries.len(),
                    mb.folder
                );
                all_moved &= moved == entries.len();
            }
            Err(e) => {
                println!("mailbox {name}: cannot move the mails back: {e}");
                all_moved = false;
            }
        }
    }
    Ok(all_moved)
}

/// Finds each mail by Message-ID in the mailbox's `on_failed` folder and moves it back.
async fn move_back_mails(mb: &MailboxConfig, entries: &[&Entry]) -> anyhow::Result<usize> {
    let Disposition::Move(failed_folder) = &mb.on_failed else {
        anyhow::bail!(
            "on_failed is {}, not move:<folder>; remove the mark by hand so the mail is seen again",
            mb.on_failed
        );
    };
    let mut session = crate::daemon::worker::connect(mb, crate::imap::DAEMON_GREETING).await?;
    session.select(failed_folder).await?;
    let mut uids = Vec::new();
    for e in entries {
        match &e.id.message_id {
            Some(id) => uids.extend(session.find_message_id(id).await?),
            None => println!(
                "{}: has no Message-ID to search for; move it back by hand",
                e.id
            ),
        }
    }
    uids.sort_unstable();
    uids.dedup();
    if !uids.is_empty() {
        session
            .dispose(&Disposition::Move(mb.folder.clone()), &uids)
            .await?;
    }
    session.logout().await;
    Ok(uids.len())
}
