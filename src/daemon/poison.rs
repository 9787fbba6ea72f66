//! A mail must never stall or crash the bridge over and over. `decide` runs on a blocking
//! thread with a time budget; panics are confined to the mail. A mail that runs out of
//! time, or that was being read when the process died (a stack overflow, an out-of-memory
//! kill), gets a strike in the ledger, keyed by mailbox, UIDVALIDITY and UID; at two
//! strikes it is quarantined to `on_failed` instead of being read again.

use super::bridge::Bridge;
use crate::ledger::{Ledger, Location};
use crate::mail::decide::{self, Decision, SkipKind};
use chrono::{DateTime, FixedOffset};
use sha2::{Digest, Sha256};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Longest `decide` of one mail worth waiting for; every hostile input measured takes
/// well under a second, so this only catches what nobody measured.
pub const DECIDE_BUDGET: Duration = Duration::from_secs(10);
/// Strikes after which a mail is not read again.
const QUARANTINE_AT: u32 = 2;

/// The mail being read right now, written to a file before `decide` and cleared after,
/// so that the next start knows which mail was in hand when the process died. Not
/// fsynced: it must survive the process, not the machine.
pub struct Reading {
    file: Option<std::fs::File>,
}

impl Reading {
    /// The marker of `mailbox` in `state_dir`; a mail left in it by a dead process gets
    /// its strike now.
    pub async fn open(state_dir: &Path, ledger: &Ledger, mailbox: &str) -> Reading {
        let dir = state_dir.join("reading");
        let name = hex::encode(&Sha256::digest(mailbox.as_bytes())[..8]);
        let path = dir.join(name);
        if let Some(place) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| parse(&text, mailbox))
        {
            let reason = "the bridge stopped while reading it (a crash?)".to_string();
            match ledger.strike(place.clone(), reason).await {
                Ok(n) => tracing::warn!(
                    uid = place.uid,
                    strikes = n,
                    "a mail was being read when the bridge stopped"
                ),
                Err(e) => tracing::error!("{e}"),
            }
        }
        let file = std::fs::create_dir_all(&dir)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .open(&path)
            })
            .map_err(
                |e| tracing::warn!(path = %path.display(), "cannot keep the reading marker: {e}"),
            )
            .ok();
        Reading { file }
    }

    /// One write per mark and per clear (both the same width, so nothing needs
    /// truncating): this runs for every mail.
    fn mark(&self, place: &Location) {
        self.write(&mark_line(place));
    }

    fn clear(&self) {
        self.write(CLEARED);
    }

    fn write(&self, line: &str) {
        if let Some(f) = &self.file {
            let _ = f.write_all_at(line.as_bytes(), 0);
        }
    }
}

/// UIDVALIDITY and UID, each as wide as the largest u32.
fn mark_line(place: &Location) -> String {
    format!("{:>10} {:>10}\n", place.uid_validity, place.uid)
}

const CLEARED: &str = "                     \n";

fn parse(text: &str, mailbox: &str) -> Option<Location> {
    let mut parts = text.split_whitespace();
    let uid_validity = parts.next()?.parse().ok()?;
    let uid = parts.next()?.parse().ok()?;
    Some(Location {
        mailbox: mailbox.to_string(),
        folder: String::new(),
        uid_validity,
        uid,
    })
}

/// What reading one mail came to.
pub enum Read {
    /// The decision, and the raw mail back (a new ticket's attachments are read from it).
    Decided(Box<Decision>, Vec<u8>),
    /// Quarantined, or out of time: the reason; `quarantined` when it will not be read again.
    Poison { reason: String, quarantined: bool },
}

/// Decides about one mail within [`DECIDE_BUDGET`], on a blocking thread, unless it is
/// quarantined already.
pub async fn read(
    bridge: &Arc<Bridge>,
    marker: &Reading,
    place: Location,
    raw: Vec<u8>,
    internal_date: Option<DateTime<FixedOffset>>,
) -> Read {
    let ledger = bridge.ledger().clone();
    if let Ok(Some((strikes, reason))) = ledger.strikes(&place)
        && strikes >= QUARANTINE_AT
    {
        return Read::Poison {
            reason: format!("quarantined: {reason} ({strikes} times); not read again"),
            quarantined: true,
        };
    }
    marker.mark(&place);
    let work = {
        let bridge = Arc::clone(bridge);
        let mailbox = place.mailbox.clone();
        tokio::task::spawn_blocking(move || {
            let decision = decide_guarded(&raw, &bridge, &mailbox, internal_date);
            (decision, raw)
        })
    };
    let outcome = tokio::time::timeout(DECIDE_BUDGET, work).await;
    marker.clear();
    match outcome {
        Ok(Ok((decision, raw))) => Read::Decided(Box::new(decision), raw),
        Ok(Err(_)) => Read::Decided(Box::new(failed(internal_date)), Vec::new()),
        Err(_) => {
            let reason = format!(
                "reading it took longer than {}",
                humantime::format_duration(DECIDE_BUDGET)
            );
            let strikes = ledger.strike(place, reason.clone()).await.unwrap_or(0);
            Read::Poison {
                quarantined: strikes >= QUARANTINE_AT,
                reason,
            }
        }
    }
}

/// `decide`, with a panic confined to this one mail (it goes to `on_failed`).
fn decide_guarded(
    raw: &[u8],
    bridge: &Bridge,
    mailbox: &str,
    internal_date: Option<DateTime<FixedOffset>>,
) -> Decision {
    let rules = bridge.rules_for(mailbox);
    let refs: &dyn decide::References = if rules.use_references {
        bridge.ledger()
    } else {
        &decide::NoReferences
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decide::decide(raw, rules, refs, internal_date)
    }))
    .unwrap_or_else(|_| failed(internal_date))
}

fn failed(internal_date: Option<DateTime<FixedOffset>>) -> Decision {
    let id = crate::mail::MailId {
        message_id: None,
        content: String::new(),
        legacy: None,
    };
    let reason = "internal error while reading this mail (a bug: please report it)".into();
    Decision::unread(id, SkipKind::Failed, reason, internal_date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_names_the_mail_in_hand() {
        let place = parse("77 12\n", "support").expect("parsed");
        assert_eq!((place.uid_validity, place.uid), (77, 12));
        assert_eq!(parse("", "support"), None);
        assert_eq!(parse("x y", "support"), None);
        // Written over each other at offset 0: the same width, so nothing is left over.
        let widest = Location {
            mailbox: "support".into(),
            folder: String::new(),
            uid_validity: u32::MAX,
            uid: u32::MAX,
        };
        assert_eq!(mark_line(&widest).len(), CLEARED.len());
        let small = Location {
            uid_validity: 7,
            uid: 3,
            ..widest
        };
        let again = parse(&mark_line(&small), "support").expect("parsed");
        assert_eq!((again.uid_validity, again.uid), (7, 3));
        assert_eq!(parse(CLEARED, "support"), None);
    }
}
