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
use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest `decide` of one mail worth waiting for; every hostile input measured takes
/// well under a second, so this only catches what nobody measured.
pub(crate) const DECIDE_BUDGET: Duration = Duration::from_secs(10);
/// Strikes after which a mail is not read again.
const QUARANTINE_AT: u32 = 2;

/// The mail being read right now, written to a file before `decide` and cleared after,
/// so that the next start knows which mail was in hand when the process died. Not
/// fsynced: it must survive the process, not the machine.
#[derive(Clone)]
pub(crate) struct Reading {
    file: Option<Arc<std::fs::File>>,
    /// This host (`StateConfig::host_name`): a mail that stopped another host is not read.
    host: String,
}

/// Where the marker of `mailbox` lives.
fn marker_path(state_dir: &Path, mailbox: &str) -> std::path::PathBuf {
    let name = hex::encode(&Sha256::digest(mailbox.as_bytes())[..8]);
    state_dir.join("reading").join(name)
}

/// At start, before any mailbox is led: a mail a dead process of this host left in a
/// marker gets its strike, naming this host, in the ledger every host reads. Another
/// host sharing the ledger then does not read it (and die on it) too.
pub(crate) async fn strike_left_markers(
    state_dir: &Path,
    ledger: &Ledger,
    mailboxes: &[String],
    host: &str,
) {
    for mailbox in mailboxes {
        let path = marker_path(state_dir, mailbox);
        let Some(place) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| parse(&text, mailbox))
        else {
            continue;
        };
        let reason = "the bridge stopped while reading it (a crash?)".to_string();
        match ledger
            .strike(place.clone(), reason, Some(host.to_string()))
            .await
        {
            Ok(n) => {
                tracing::warn!(mailbox = %mailbox, uid = place.uid, strikes = n, "a mail was being read when the bridge stopped");
                // Struck once: the next start must not strike it again.
                let _ = std::fs::write(&path, CLEARED);
            }
            Err(e) => tracing::error!("{e}"),
        }
    }
}

impl Reading {
    /// The marker of `mailbox` in `state_dir` (what a dead process left in it was struck
    /// at start, [`strike_left_markers`]).
    pub(crate) fn open(state_dir: &Path, mailbox: &str, host: &str) -> Reading {
        let path = marker_path(state_dir, mailbox);
        let dir = state_dir.join("reading");
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
            .ok()
            .map(Arc::new);
        Reading {
            file,
            host: host.to_string(),
        }
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
pub(crate) enum Read {
    /// The decision, and the raw mail back (a new ticket's attachments are read from it).
    Decided(Box<Decision>, Vec<u8>),
    /// Quarantined, or out of time: the reason; `quarantined` when it will not be read again.
    Poison { reason: String, quarantined: bool },
}

/// A fetched mail to read.
pub(crate) struct ToRead {
    pub place: Location,
    pub raw: Vec<u8>,
    pub internal_date: Option<DateTime<FixedOffset>>,
}

/// Mails not yet taken by the thread reading them, in order, with their index.
type Queue = Arc<Mutex<VecDeque<(usize, ToRead)>>>;

/// Decides about each mail (in order, the results in the same order) within
/// [`DECIDE_BUDGET`] each, unless it is quarantined already. One blocking thread reads
/// them one after the other (a thread per mail cost a third of the throughput); a mail
/// that overruns is struck and left to its thread, and a fresh thread takes the rest.
pub(crate) async fn read_all(
    bridge: &Arc<Bridge>,
    marker: &Reading,
    mails: Vec<ToRead>,
) -> Vec<Read> {
    let decide = {
        let bridge = Arc::clone(bridge);
        Arc::new(move |mail: &ToRead| {
            decide_guarded(&mail.raw, &bridge, &mail.place, mail.internal_date)
        })
    };
    read_with(bridge.ledger(), marker, mails, decide, DECIDE_BUDGET).await
}

/// How a mail is decided: [`decide_guarded`], or a stand-in in the tests.
type DecideFn = Arc<dyn Fn(&ToRead) -> Decision + Send + Sync>;

async fn read_with(
    ledger: &Ledger,
    marker: &Reading,
    mails: Vec<ToRead>,
    decide: DecideFn,
    budget: Duration,
) -> Vec<Read> {
    let mut reads: Vec<Option<Read>> = Vec::with_capacity(mails.len());
    let mut waiting = VecDeque::new();
    // One query for the batch: its mails share mailbox and UIDVALIDITY.
    let struck = match mails.first() {
        Some(m) => ledger
            .struck(&m.place.mailbox, m.place.uid_validity)
            .await
            .unwrap_or_default(),
        None => HashMap::new(),
    };
    for (i, mail) in mails.into_iter().enumerate() {
        match struck.get(&mail.place.uid) {
            Some(s) if s.count >= QUARANTINE_AT => {
                reads.push(Some(Read::Poison {
                    reason: format!(
                        "quarantined: {} ({} times); not read again",
                        s.reason, s.count
                    ),
                    quarantined: true,
                }));
            }
            Some(s) if s.killed_on.as_ref().is_some_and(|h| *h != marker.host) => {
                reads.push(Some(Read::Poison {
                    reason: format!(
                        "quarantined: {} on host {}; not read again here",
                        s.reason,
                        s.killed_on.as_deref().unwrap_or_default()
                    ),
                    quarantined: true,
                }));
            }
            _ => {
                reads.push(None);
                waiting.push_back((i, mail));
            }
        }
    }
    let mut expected: VecDeque<(usize, Location)> =
        waiting.iter().map(|(i, m)| (*i, m.place.clone())).collect();
    let queue: Queue = Arc::new(Mutex::new(waiting));
    while !expected.is_empty() {
        let abandoned = Arc::new(AtomicBool::new(false));
        let mut decided = reader(&decide, marker, &queue, &abandoned);
        let mut progressed = false;
        while let Some((i, _)) = expected.front() {
            let i = *i;
            let got = match tokio::time::timeout(budget, decided.recv()).await {
                Ok(got) => got,
                Err(_) => {
                    // Under the queue's lock: the thread takes no further mail.
                    abandon(&abandoned, &queue, i);
                    match decided.try_recv() {
                        // It finished just now, and is done.
                        Ok(got) => Some(got),
                        Err(_) => {
                            marker.clear();
                            if let Some((_, place)) = expected.pop_front() {
                                reads[i] = Some(overran(ledger, place, budget).await);
                            }
                            break;
                        }
                    }
                }
            };
            match got {
                Some((j, decision, raw)) => {
                    progressed = true;
                    expected.retain(|(k, _)| *k != j);
                    reads[j] = Some(Read::Decided(decision, raw));
                }
                // The thread stopped (abandoned) before it took mail `i`: a fresh one will.
                None if progressed && lock(&queue).iter().any(|(j, _)| *j == i) => break,
                // A fresh thread that read nothing: the runtime is shutting down. The
                // rest wait for the next start.
                None if !progressed => {
                    for (k, _) in expected.drain(..) {
                        reads[k] = Some(Read::Poison {
                            reason: "not read: the bridge is stopping".into(),
                            quarantined: false,
                        });
                    }
                }
                // Neither queued nor read: cannot happen; never loop on it.
                None => {
                    expected.pop_front();
                }
            }
        }
    }
    reads
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Read::Decided(Box::new(failed(None)), Vec::new())))
        .collect()
}

/// A mail that ran out of time gets a strike.
async fn overran(ledger: &Ledger, place: Location, budget: Duration) -> Read {
    let reason = format!(
        "reading it took longer than {}",
        humantime::format_duration(budget)
    );
    let strikes = ledger
        .strike(place, reason.clone(), None)
        .await
        .unwrap_or(0);
    Read::Poison {
        quarantined: strikes >= QUARANTINE_AT,
        reason,
    }
}

/// A blocking thread that takes mails off `queue` and decides them, marking each, until
/// the queue is empty or it is `abandoned`.
fn reader(
    decide: &DecideFn,
    marker: &Reading,
    queue: &Queue,
    abandoned: &Arc<AtomicBool>,
) -> tokio::sync::mpsc::UnboundedReceiver<(usize, Box<Decision>, Vec<u8>)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (decide, marker) = (Arc::clone(decide), marker.clone());
    let (queue, abandoned) = (Arc::clone(queue), Arc::clone(abandoned));
    tokio::task::spawn_blocking(move || {
        loop {
            let next = {
                let mut queue = lock(&queue);
                if abandoned.load(Ordering::SeqCst) {
                    return;
                }
                queue.pop_front()
            };
            let Some((i, mail)) = next else {
                break;
            };
            marker.mark(&mail.place);
            let decision = decide(&mail);
            if tx.send((i, Box::new(decision), mail.raw)).is_err() {
                return;
            }
        }
        if !abandoned.load(Ordering::SeqCst) {
            marker.clear();
        }
    });
    rx
}

/// Leaves the current thread to the mail it is on: it takes no other, and mail `i` is
/// taken out of the queue if the thread had not yet begun it.
fn abandon(abandoned: &AtomicBool, queue: &Queue, i: usize) {
    let mut queue = lock(queue);
    abandoned.store(true, Ordering::SeqCst);
    if queue.front().is_some_and(|(j, _)| *j == i) {
        queue.pop_front();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `decide`, with a panic confined to this one mail (it goes to `on_failed`).
fn decide_guarded(
    raw: &[u8],
    bridge: &Bridge,
    place: &Location,
    internal_date: Option<DateTime<FixedOffset>>,
) -> Decision {
    #[cfg(feature = "test-crash")]
    super::test_crash::on_marker(raw);
    let rules = bridge.rules_at(&place.mailbox, &place.folder);
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

    fn mail(uid: u32) -> ToRead {
        ToRead {
            place: Location {
                mailbox: "support".into(),
                folder: "INBOX".into(),
                uid_validity: 7,
                uid,
            },
            raw: uid.to_string().into_bytes(),
            internal_date: None,
        }
    }

    /// What a stand-in decide said about a mail: its UID, and the thread that read it.
    fn said(read: &Read) -> Option<String> {
        match read {
            Read::Decided(d, _) => match &d.action {
                decide::Action::Skip { reason, .. } => Some(reason.clone()),
                _ => None,
            },
            Read::Poison { .. } => None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_thread_reads_a_batch_in_order_and_a_mail_over_budget_is_struck_then_quarantined() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Ledger::open(dir.path()).expect("ledger");
        let marker = Reading::open(dir.path(), "support", "host");
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let decide: DecideFn = {
            let calls = Arc::clone(&calls);
            Arc::new(move |m: &ToRead| {
                let uid = m.place.uid;
                if uid == 3 {
                    calls.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(2500));
                }
                let thread = format!("{:?}", std::thread::current().id());
                let id = crate::mail::MailId {
                    message_id: None,
                    content: String::new(),
                    legacy: None,
                };
                Decision::unread(id, SkipKind::Ignored, format!("{uid} {thread}"), None)
            })
        };
        let budget = Duration::from_secs(1);
        let batch = || (1..=5).map(mail).collect::<Vec<_>>();

        let reads = read_with(&ledger, &marker, batch(), Arc::clone(&decide), budget).await;
        let spoken: Vec<Option<String>> = reads.iter().map(said).collect();
        let uid_and_thread = |n: usize| -> (String, String) {
            let text = spoken[n].clone().unwrap_or_default();
            let (uid, thread) = text.split_once(' ').unwrap_or_default();
            (uid.to_string(), thread.to_string())
        };
        let uids: Vec<String> = [0, 1, 3, 4].iter().map(|&n| uid_and_thread(n).0).collect();
        assert_eq!(uids, ["1", "2", "4", "5"], "{spoken:?}");
        assert_eq!(uid_and_thread(0).1, uid_and_thread(1).1, "one thread");
        assert_eq!(uid_and_thread(3).1, uid_and_thread(4).1, "one fresh thread");
        assert_ne!(
            uid_and_thread(1).1,
            uid_and_thread(3).1,
            "the slow one kept its own"
        );
        match &reads[2] {
            Read::Poison {
                reason,
                quarantined: false,
            } => assert!(reason.contains("took longer than 1s"), "{reason}"),
            _ => panic!("mail 3 overran: {spoken:?}"),
        }
        assert_eq!(
            ledger
                .struck("support", 7)
                .await
                .expect("read")
                .get(&3)
                .map(|s| s.count),
            Some(1)
        );

        // A second overrun quarantines it; after that it is not read again.
        let reads = read_with(&ledger, &marker, batch(), Arc::clone(&decide), budget).await;
        assert!(matches!(
            &reads[2],
            Read::Poison {
                quarantined: true,
                ..
            }
        ));
        let before = calls.load(Ordering::SeqCst);
        let reads = read_with(&ledger, &marker, batch(), decide, budget).await;
        match &reads[2] {
            Read::Poison {
                reason,
                quarantined: true,
            } => assert!(reason.contains("not read again"), "{reason}"),
            _ => panic!("quarantined"),
        }
        assert_eq!(calls.load(Ordering::SeqCst), before, "not read again");
        assert_eq!(reads.iter().filter_map(said).count(), 4);
    }
}
