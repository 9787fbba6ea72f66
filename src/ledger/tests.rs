//! The ledger on a real SQLite file: what `begin` and `finish` record, reused
//! Message-IDs, failures at a place, retries, readers beside the writer, migration.

use super::*;
use std::os::unix::fs::PermissionsExt;

fn id(message_id: Option<&str>, body: &str) -> MailId {
    let raw = format!("Subject: x\r\n\r\n{body}\r\n");
    MailId::of(raw.as_bytes(), message_id, "a@x", "Mon, 1 Jan 2026", "x")
}

fn place(uid: u32) -> Location {
    Location {
        mailbox: "support".into(),
        folder: "INBOX".into(),
        uid_validity: 77,
        uid,
    }
}

fn attempt(mail: &MailId, ticket: u64, uid: u32) -> Attempt {
    Attempt {
        id: mail.clone(),
        ticket,
        body_hash: "b".repeat(64),
        text_hash: format!("text-{ticket}"),
        date: "2026-01-05 10:00".into(),
        location: place(uid),
        new_ticket_from: None,
    }
}

/// A new ledger in its own directory (kept alive with it).
fn fresh() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    (dir, ledger)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn begin(ledger: &Ledger, a: Attempt) -> Begun {
    runtime().block_on(ledger.begin(vec![a])).unwrap().remove(0)
}

fn finish(ledger: &Ledger, f: Finish) {
    runtime().block_on(ledger.finish(vec![f])).unwrap()
}

#[test]
fn a_mail_goes_pending_then_posted_and_is_then_only_a_duplicate() {
    let (_dir, ledger) = fresh();
    let m = id(Some("a@x"), "hello");
    let b = begin(&ledger, attempt(&m, 5, 1));
    assert_eq!(b.entry.state, EntryState::Pending);
    assert!(!b.outcome_unknown, "nothing was sent before");
    assert!(
        futures::executor::block_on(ledger.find(&m))
            .unwrap()
            .unwrap()
            .outcome_unknown,
        "from now on a POST may be out"
    );
    finish(
        &ledger,
        Finish::Posted {
            id: m.clone(),
            ticket: 5,
        },
    );
    let again = begin(&ledger, attempt(&m, 5, 9));
    assert_eq!(again.entry.state, EntryState::Posted);
    assert_eq!(
        futures::executor::block_on(ledger.tickets_for_message_id("a@x")).unwrap(),
        [5]
    );
    assert_eq!(
        futures::executor::block_on(ledger.stats()).unwrap().posted,
        1
    );
}

#[test]
fn a_pending_mail_seen_again_has_an_unknown_outcome_unless_told_otherwise() {
    let (_dir, ledger) = fresh();
    let m = id(Some("a@x"), "hello");
    begin(&ledger, attempt(&m, 5, 1));
    let crashed = begin(&ledger, attempt(&m, 5, 1));
    assert!(crashed.outcome_unknown, "a crash after begin: read back");
    assert!(crashed.previous_attempt_ms.is_some());
    let since = crashed.entry.unknown_since;
    finish(
        &ledger,
        Finish::Deferred {
            id: m.clone(),
            counted: true,
            outcome_unknown: false,
        },
    );
    let next = begin(&ledger, attempt(&m, 5, 1));
    assert!(!next.outcome_unknown, "a 429 stored nothing");
    assert_eq!(next.entry.attempts, 1, "the counted failure");
    assert!(next.entry.unknown_since >= since);
}

#[test]
fn a_reused_message_id_with_another_body_is_another_mail() {
    let (_dir, ledger) = fresh();
    let first = id(Some("scan@erp"), "invoice 1");
    let second = id(Some("scan@erp"), "invoice 2");
    begin(&ledger, attempt(&first, 5, 1));
    finish(
        &ledger,
        Finish::Posted {
            id: first.clone(),
            ticket: 5,
        },
    );
    let b = begin(&ledger, attempt(&second, 6, 2));
    assert_eq!(b.entry.state, EntryState::Pending, "not a duplicate");
    finish(
        &ledger,
        Finish::Posted {
            id: second,
            ticket: 6,
        },
    );
    assert_eq!(
        futures::executor::block_on(ledger.entries("<scan@erp>"))
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        futures::executor::block_on(ledger.tickets_for_message_id("scan@erp")).unwrap(),
        [5, 6]
    );
    use crate::mail::decide::References;
    assert_eq!(
        ledger.ticket_for("<scan@erp>"),
        None,
        "two tickets: ambiguous"
    );
}

#[test]
fn a_failure_stays_where_it_happened_and_a_move_back_or_retry_is_fresh() {
    let (_dir, ledger) = fresh();
    let m = id(Some("a@x"), "hello");
    begin(&ledger, attempt(&m, 5, 1));
    finish(
        &ledger,
        Finish::Failed {
            id: m.clone(),
            reason: "HTTP 404: Ticket not found".into(),
            outcome_unknown: false,
            location: place(1),
        },
    );
    let crash = begin(&ledger, attempt(&m, 5, 1));
    assert_eq!(
        crash.entry.state,
        EntryState::Failed,
        "same UID: the disposal was lost"
    );
    assert_eq!(
        crash.entry.reason.as_deref(),
        Some("HTTP 404: Ticket not found")
    );
    let moved_back = begin(&ledger, attempt(&m, 5, 2));
    assert_eq!(
        moved_back.entry.state,
        EntryState::Pending,
        "new UID: a person moved it back"
    );
    assert_eq!(moved_back.entry.attempts, 0);

    finish(
        &ledger,
        Finish::Failed {
            id: m.clone(),
            reason: "gave up".into(),
            outcome_unknown: true,
            location: place(2),
        },
    );
    let marked = futures::executor::block_on(ledger.mark_retry(Some("a@x".to_string()))).unwrap();
    assert_eq!(marked.len(), 1);
    assert_eq!(
        futures::executor::block_on(ledger.stats()).unwrap().retry,
        1
    );
    let retried = begin(&ledger, attempt(&m, 5, 2));
    assert_eq!(
        retried.entry.state,
        EntryState::Pending,
        "retry asked for: same UID too"
    );
    assert!(
        retried.outcome_unknown,
        "the give-up's unknown outcome is read back first"
    );
}

#[test]
fn an_unverified_mail_without_history_leaves_no_entry() {
    let (_dir, ledger) = fresh();
    let m = id(Some("a@x"), "hello");
    begin(&ledger, attempt(&m, 5, 1));
    finish(
        &ledger,
        Finish::Released {
            id: m.clone(),
            outcome_unknown: false,
        },
    );
    assert_eq!(futures::executor::block_on(ledger.find(&m)).unwrap(), None);
}

#[test]
fn posted_replies_with_the_same_text_are_counted_per_ticket() {
    let (_dir, ledger) = fresh();
    let a = id(Some("a@x"), "thanks 1");
    let b = id(Some("b@x"), "thanks 2");
    for m in [&a, &b] {
        begin(&ledger, attempt(m, 5, 1));
    }
    finish(
        &ledger,
        Finish::Posted {
            id: a.clone(),
            ticket: 5,
        },
    );
    assert_eq!(
        futures::executor::block_on(ledger.posted_with_same_text(5, "text-5", &b))
            .unwrap()
            .len(),
        1
    );
    assert!(
        futures::executor::block_on(ledger.posted_with_same_text(5, "text-5", &a))
            .unwrap()
            .is_empty(),
        "not itself"
    );
    assert!(
        futures::executor::block_on(ledger.posted_with_same_text(6, "text-5", &b))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn readers_see_commits_while_the_writer_runs_and_many_begins_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let other_process = Ledger::open(dir.path()).expect("a second opener is not locked out");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let ledger = ledger.clone();
            tasks.push(tokio::spawn(async move {
                let m = id(Some(&format!("m{i}@x")), "x");
                ledger.begin(vec![attempt(&m, 1, i)]).await.unwrap();
                ledger
                    .finish(vec![Finish::Posted { id: m, ticket: 1 }])
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(
        futures::executor::block_on(other_process.stats())
            .unwrap()
            .posted,
        200
    );
    let raw = rusqlite::Connection::open(ledger.path()).unwrap();
    let n: i64 = raw
        .query_row(
            "SELECT COUNT(*) FROM mails WHERE state = 'posted'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 200, "the stock SQLite reads it");
}

#[test]
fn the_directory_and_file_are_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ledger = Ledger::open(&state).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(ledger.path()), 0o600);
}

#[test]
fn one_daemon_per_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let held = lock_instance(dir.path()).unwrap();
    let err = lock_instance(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("another thulium-mail-bridge is running"),
        "{err}"
    );
    drop(held);
    lock_instance(dir.path()).expect("free again");
}

#[test]
fn an_unwritable_place_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let err = Ledger::open(file.join("state")).unwrap_err().to_string();
    assert!(err.contains("cannot create the ledger directory"), "{err}");
}

#[test]
fn a_ledger_from_0_1_is_migrated_kept_as_a_backup_and_nothing_is_posted_again() {
    use redb::{Database, TableDefinition};
    const ENTRIES: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("entries");
    const MESSAGE_IDS: TableDefinition<'static, &str, u64> = TableDefinition::new("message_ids");
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::create(dir.path().join("ledger.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut entries = txn.open_table(ENTRIES).unwrap();
            let old = |state: &str, ticket: u64| {
                format!(
                    r#"{{"state":"{state}","ticket":{ticket},"body_hash":"h","date":"2025-01-01 10:00","attempts":1,"first_seen":1700000000,"updated":1700000000,"mailbox":"support","uid":3}}"#
                )
            };
            entries
                .insert("<posted@x>", old("posted", 5).as_bytes())
                .unwrap();
            entries
                .insert("<pending@x>", old("pending", 6).as_bytes())
                .unwrap();
            let raw_key = format!(
                "sha256:{}",
                hex::encode(sha2::Sha256::digest(b"Subject: x\r\n\r\nno id\r\n"))
            );
            entries
                .insert(raw_key.as_str(), old("posted", 7).as_bytes())
                .unwrap();
            let mut ids = txn.open_table(MESSAGE_IDS).unwrap();
            ids.insert("<posted@x>", 5).unwrap();
        }
        txn.commit().unwrap();
    }
    use sha2::Digest;
    let ledger = Ledger::open(dir.path()).unwrap();
    assert!(dir.path().join("ledger.redb.bak").exists());
    assert!(!dir.path().join("ledger.redb").exists());

    let posted = begin(&ledger, attempt(&id(Some("posted@x"), "any body"), 5, 3));
    assert_eq!(
        posted.entry.state,
        EntryState::Posted,
        "adopted: not posted again"
    );
    let pending = begin(&ledger, attempt(&id(Some("pending@x"), "any body"), 6, 4));
    assert!(pending.outcome_unknown, "0.1's pending is read back");
    let raw = b"Subject: x\r\n\r\nno id\r\n";
    let no_id = MailId::of(raw, None, "a@x", "", "x");
    assert_eq!(
        begin(&ledger, attempt(&no_id, 7, 5)).entry.state,
        EntryState::Posted
    );
    assert_eq!(
        futures::executor::block_on(ledger.stats()).unwrap().posted,
        2
    );
    drop(ledger);
    // A second start finds nothing more to migrate.
    let again = Ledger::open(dir.path()).unwrap();
    assert_eq!(
        futures::executor::block_on(again.stats()).unwrap().posted,
        2
    );
}

#[test]
fn a_senders_new_tickets_are_counted_without_the_mail_asking() {
    let (_dir, ledger) = fresh();
    let opening = |m: &MailId, uid| Attempt {
        ticket: 0,
        new_ticket_from: Some("anna@x".into()),
        ..attempt(m, 0, uid)
    };
    let (first, second, third) = (
        id(Some("n1@x"), "one"),
        id(Some("n2@x"), "two"),
        id(Some("n3@x"), "three"),
    );
    begin(&ledger, opening(&first, 1));
    // Retried or re-seen, a mail does not count against itself.
    assert_eq!(
        futures::executor::block_on(ledger.new_tickets_in_last_hour("anna@x", &first)).unwrap(),
        0
    );
    assert_eq!(
        futures::executor::block_on(ledger.new_tickets_in_last_hour("anna@x", &third)).unwrap(),
        1
    );
    begin(&ledger, opening(&second, 2));
    finish(
        &ledger,
        Finish::Posted {
            id: second.clone(),
            ticket: 1232,
        },
    );
    assert_eq!(
        futures::executor::block_on(ledger.new_tickets_in_last_hour("anna@x", &third)).unwrap(),
        2
    );
    assert_eq!(
        futures::executor::block_on(ledger.new_tickets_in_last_hour("anna@x", &second)).unwrap(),
        1
    );
    assert_eq!(
        futures::executor::block_on(ledger.new_tickets_in_last_hour("bob@x", &third)).unwrap(),
        0
    );
}
