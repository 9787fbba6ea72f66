use super::*;
use std::sync::atomic::{AtomicBool, Ordering};

fn attempt(key: &str, ticket: u64) -> Attempt {
    Attempt {
        key: key.into(),
        ticket,
        body_hash: "0f".repeat(32),
        date: "2025-03-01 10:15".into(),
        mailbox: "support".into(),
        uid: 17,
    }
}

fn posted(key: &str, message_id: Option<&str>, ticket: u64) -> PostedMail {
    PostedMail {
        key: key.into(),
        message_id: message_id.map(String::from),
        ticket,
    }
}

#[test]
fn a_posted_mail_is_still_posted_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state/nested");
    let ledger = Ledger::open(&state).unwrap();
    assert_eq!(ledger.path(), state.join(FILE_NAME));
    assert_eq!(ledger.get("<a@x>").unwrap(), None);

    let e = ledger.begin_attempt(&attempt("<a@x>", 42)).unwrap();
    assert_eq!(
        (e.state, e.attempts, e.ticket, e.uid),
        (EntryState::Pending, 1, 42, 17)
    );
    assert_eq!(ledger.get("<a@x>").unwrap(), Some(e.clone()));
    ledger
        .mark_posted(&[posted("<a@x>", Some("a@x"), 42)])
        .unwrap();
    drop(ledger);

    let ledger = Ledger::open(&state).unwrap();
    let e2 = ledger.get("<a@x>").unwrap().unwrap();
    assert_eq!(e2.state, EntryState::Posted);
    assert_eq!(
        (e2.body_hash, e2.date, e2.mailbox, e2.first_seen),
        (e.body_hash, e.date, e.mailbox, e.first_seen)
    );
    assert!(ledger.pending().unwrap().is_empty());
    assert_eq!(ledger.ticket_for_message_id("a@x").unwrap(), Some(42));
    assert_eq!(ledger.ticket_for_message_id("<a@x>").unwrap(), Some(42));
    assert_eq!(ledger.ticket_for("<a@x>"), Some(42));
    assert_eq!(ledger.ticket_for("<other@x>"), None);
    assert_eq!(
        ledger.stats().unwrap(),
        Stats {
            pending: 0,
            posted: 1,
            failed: 0
        }
    );
}

#[test]
fn a_pending_mail_survives_reopening_and_counts_its_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let entries = ledger
        .begin_attempts(&[attempt("<a@x>", 1), attempt("sha256:ab", 2)])
        .unwrap();
    assert_eq!(entries.len(), 2);
    drop(ledger);

    let ledger = Ledger::open(dir.path()).unwrap();
    let mut pending = ledger.pending().unwrap();
    pending.sort_by(|a, b| a.0.cmp(&b.0));
    let keys: Vec<&str> = pending.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["<a@x>", "sha256:ab"]);
    assert!(
        pending
            .iter()
            .all(|(_, e)| e.state == EntryState::Pending && e.attempts == 1)
    );

    let again = ledger
        .begin_attempt(&Attempt {
            uid: 99,
            mailbox: "sales".into(),
            ..attempt("<a@x>", 1)
        })
        .unwrap();
    assert_eq!(
        (again.attempts, again.uid, again.mailbox.as_str()),
        (2, 99, "sales")
    );
    assert_eq!(again.first_seen, pending[0].1.first_seen);
    assert_eq!(
        ledger.stats().unwrap(),
        Stats {
            pending: 2,
            posted: 0,
            failed: 0
        }
    );
}

#[test]
fn posted_is_final() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    ledger.begin_attempt(&attempt("<a@x>", 1)).unwrap();
    ledger.mark_posted(&[posted("<a@x>", None, 1)]).unwrap();

    let e = ledger.begin_attempt(&attempt("<a@x>", 1)).unwrap();
    assert_eq!(
        (e.state, e.attempts),
        (EntryState::Posted, 1),
        "a posted mail is not attempted again"
    );
    ledger.mark_failed("<a@x>", "late rejection").unwrap();
    let e = ledger.get("<a@x>").unwrap().unwrap();
    assert_eq!((e.state, e.reason), (EntryState::Posted, None));
    // The key is the Message-ID: it is remembered even when message_id was not given.
    assert_eq!(ledger.ticket_for_message_id("a@x").unwrap(), Some(1));
}

#[test]
fn a_failure_is_recorded_with_its_reason_and_can_be_retried() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    ledger.begin_attempt(&attempt("sha256:00", 5)).unwrap();
    ledger
        .mark_failed("sha256:00", "HTTP 404: Ticket not found")
        .unwrap();
    let e = ledger.get("sha256:00").unwrap().unwrap();
    assert_eq!(
        (e.state, e.reason.as_deref()),
        (EntryState::Failed, Some("HTTP 404: Ticket not found"))
    );
    assert!(ledger.pending().unwrap().is_empty());
    assert_eq!(
        ledger.stats().unwrap(),
        Stats {
            pending: 0,
            posted: 0,
            failed: 1
        }
    );

    ledger.mark_failed("never-seen", "x").unwrap();
    assert_eq!(ledger.get("never-seen").unwrap(), None);

    // Moved back into the folder by a person: attempted again.
    let e = ledger.begin_attempt(&attempt("sha256:00", 5)).unwrap();
    assert_eq!(
        (e.state, e.attempts, e.reason),
        (EntryState::Pending, 2, None)
    );
}

#[test]
fn a_batch_of_posts_is_one_commit_and_records_message_ids() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    ledger
        .begin_attempts(&[
            attempt("<a@x>", 1),
            attempt("<b@x>", 2),
            attempt("sha256:cc", 3),
        ])
        .unwrap();
    ledger
        .mark_posted(&[
            posted("<a@x>", Some("a@x"), 1),
            posted("<b@x>", Some("<b@x>"), 2),
            posted("sha256:cc", None, 3),
            // Posted but never recorded pending (a lost write): recorded anyway.
            posted("<d@x>", Some("d@x"), 4),
        ])
        .unwrap();
    assert_eq!(
        ledger.stats().unwrap(),
        Stats {
            pending: 0,
            posted: 4,
            failed: 0
        }
    );
    for (id, ticket) in [("a@x", 1), ("b@x", 2), ("d@x", 4)] {
        assert_eq!(
            ledger.ticket_for_message_id(id).unwrap(),
            Some(ticket),
            "{id}"
        );
    }
    assert_eq!(ledger.ticket_for_message_id("sha256:cc").unwrap(), None);
    ledger.mark_posted(&[]).unwrap();
}

#[test]
fn reads_run_alongside_writes_from_many_threads() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..8)
        .map(|r| {
            let ledger = ledger.clone();
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut seen_posted = std::collections::HashSet::new();
                let mut reads = 0u64;
                while !done.load(Ordering::Acquire) {
                    for i in (r..100).step_by(8) {
                        let key = format!("<m{i}@x>");
                        match ledger.get(&key).unwrap() {
                            Some(e) if e.state == EntryState::Posted => {
                                seen_posted.insert(i);
                            }
                            Some(_) => {
                                assert!(!seen_posted.contains(&i), "{key} went back from posted")
                            }
                            None => {}
                        }
                        ledger.ticket_for(&key);
                        reads += 1;
                    }
                }
                reads
            })
        })
        .collect();
    for batch in 0..10 {
        let keys: Vec<String> = (batch * 10..batch * 10 + 10)
            .map(|i| format!("<m{i}@x>"))
            .collect();
        let attempts: Vec<Attempt> = keys.iter().map(|k| attempt(k, batch as u64)).collect();
        ledger.begin_attempts(&attempts).unwrap();
        let posts: Vec<PostedMail> = keys.iter().map(|k| posted(k, None, batch as u64)).collect();
        ledger.mark_posted(&posts).unwrap();
    }
    done.store(true, Ordering::Release);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0);
    assert_eq!(
        ledger.stats().unwrap(),
        Stats {
            pending: 0,
            posted: 100,
            failed: 0
        }
    );
}

#[test]
fn a_second_open_of_the_same_ledger_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let first = Ledger::open(dir.path()).unwrap();
    let err = Ledger::open(dir.path()).unwrap_err();
    assert!(matches!(err, LedgerError::Locked { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&dir.path().join(FILE_NAME).display().to_string()),
        "{msg}"
    );
    assert!(
        msg.contains("another thulium-mail-bridge is running"),
        "{msg}"
    );
    drop(first);
    Ledger::open(dir.path()).unwrap();
}

#[test]
fn a_state_dir_that_cannot_be_created_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = Ledger::open(file.join("state")).unwrap_err();
    assert!(matches!(err, LedgerError::CreateDir { .. }), "{err:?}");
    assert!(err.to_string().contains("not-a-dir/state"), "{err}");
}

#[test]
fn a_file_that_is_not_a_ledger_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FILE_NAME), vec![0x55; 8192]).unwrap();
    let err = Ledger::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains(FILE_NAME), "{err}");
}

#[test]
fn the_ledger_and_its_errors_cross_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Ledger>();
    shareable::<LedgerError>();
}
