//! The `decisions` table on a real SQLite file: one row a mail with its latest decision,
//! the filters of `ledger list`, the retention sweep, and the upgrade from schema 3.

use super::*;
use std::time::Duration;

const DAY: u64 = 24 * 3600;

fn mail(message_id: &str) -> MailId {
    let raw = format!("Subject: x\r\n\r\n{message_id}\r\n");
    MailId::of(raw.as_bytes(), Some(message_id), "a@x", "", "x")
}

fn decided(id: Option<&MailId>, outcome: &str, folder: &str, uid: u32) -> DecisionRecord {
    DecisionRecord {
        decided: unix_now(),
        place: Location {
            mailbox: "support".into(),
            folder: folder.into(),
            uid_validity: 9,
            uid,
        },
        mail: id.cloned(),
        sender: id.map(|_| "piotr@customer.example".into()),
        subject: "Re: [TH#1] Order".into(),
        ticket: Some(1),
        outcome: outcome.into(),
        reason: format!("{outcome} because"),
        replaces: outcome != "duplicate",
    }
}

fn everything() -> DecisionQuery {
    DecisionQuery {
        outcomes: Vec::new(),
        since: 0,
        mailbox: None,
    }
}

fn fresh() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    (dir, ledger)
}

fn record(ledger: &Ledger, rows: Vec<DecisionRecord>) {
    runtime().block_on(ledger.record_decisions(rows)).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[test]
fn a_mails_latest_decision_replaces_the_earlier_one_but_a_duplicate_does_not() {
    let (_dir, ledger) = fresh();
    let m = mail("colleague@x");
    record(&ledger, vec![decided(Some(&m), "unverified", "INBOX", 1)]);
    record(&ledger, vec![decided(Some(&m), "approved", "Approve", 4)]);
    let rows = futures::executor::block_on(ledger.decisions(&everything())).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].outcome, "approved");
    assert_eq!(rows[0].place.folder, "Approve");
    assert_eq!(rows[0].mail.as_ref(), Some(&m));

    // Seen again (moved in once more, a copy elsewhere): what happened to it stays.
    record(&ledger, vec![decided(Some(&m), "duplicate", "Approve", 5)]);
    let rows = futures::executor::block_on(ledger.decisions(&everything())).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcome, "approved");
    assert_eq!(rows[0].place.uid, 4);

    let other = mail("other@x");
    record(
        &ledger,
        vec![decided(Some(&other), "duplicate", "INBOX", 6)],
    );
    assert_eq!(
        futures::executor::block_on(ledger.decisions(&everything()))
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_mail_not_read_is_known_by_where_it_was() {
    let (_dir, ledger) = fresh();
    let mut too_big = decided(None, "failed", "INBOX", 7);
    too_big.subject = String::new();
    too_big.ticket = None;
    let mut again = too_big.clone();
    again.place.uid = 8;
    record(&ledger, vec![too_big.clone(), too_big, again]);
    let rows = futures::executor::block_on(ledger.decisions(&everything())).unwrap();
    assert_eq!(rows.len(), 2, "one row a place: {rows:?}");
    assert!(rows.iter().all(|r| r.mail.is_none() && r.sender.is_none()));
    assert_eq!(rows[0].ticket, None);
}

#[test]
fn a_long_subject_is_kept_shortened() {
    let (_dir, ledger) = fresh();
    let mut row = decided(Some(&mail("long@x")), "unmatched", "INBOX", 1);
    row.subject = "ż".repeat(1000);
    record(&ledger, vec![row]);
    let subject = &futures::executor::block_on(ledger.decisions(&everything())).unwrap()[0].subject;
    assert_eq!(subject.chars().count(), decisions::SUBJECT_CHARS + 1);
    assert!(subject.ends_with('…'));
}

#[test]
fn state_mailbox_and_since_filter_the_list() {
    let (_dir, ledger) = fresh();
    let now = unix_now();
    let mut rows = Vec::new();
    for (i, (outcome, mailbox, age)) in [
        ("unverified", "support", 0),
        ("failed", "support", 2 * DAY),
        ("posted", "support", 0),
        ("unmatched", "sales", 10 * DAY),
    ]
    .into_iter()
    .enumerate()
    {
        let mut row = decided(Some(&mail(&format!("m{i}@x"))), outcome, "INBOX", i as u32);
        row.place.mailbox = mailbox.into();
        row.decided = now - age;
        rows.push(row);
    }
    record(&ledger, rows);
    let outcomes = |q: DecisionQuery| -> Vec<String> {
        let rows = futures::executor::block_on(ledger.decisions(&q)).unwrap();
        rows.into_iter().map(|r| r.outcome).collect()
    };
    let not_placed: Vec<String> = ["failed", "unverified", "unmatched", "ignored"]
        .map(String::from)
        .to_vec();
    let q = |outcomes: &[String], since_days: u64, mailbox: Option<&str>| DecisionQuery {
        outcomes: outcomes.to_vec(),
        since: now - since_days * DAY,
        mailbox: mailbox.map(String::from),
    };
    assert_eq!(
        outcomes(q(&not_placed, 7, None)),
        ["failed", "unverified"],
        "oldest first, posted not asked for, sales' too old"
    );
    assert_eq!(
        outcomes(q(&not_placed, 30, None)),
        ["unmatched", "failed", "unverified"]
    );
    assert_eq!(outcomes(q(&not_placed, 30, Some("sales"))), ["unmatched"]);
    assert_eq!(outcomes(q(&["posted".into()], 1, None)), ["posted"]);
    assert_eq!(outcomes(q(&not_placed, 1, None)), ["unverified"]);
    assert!(outcomes(q(&not_placed, 30, Some("nobody"))).is_empty());
}

#[test]
fn decisions_older_than_the_retention_are_swept() {
    let (_dir, ledger) = fresh();
    let now = unix_now();
    let rows = [("old@x", 100 * DAY), ("kept@x", 89 * DAY), ("new@x", 0)]
        .map(|(id, age)| DecisionRecord {
            decided: now - age,
            ..decided(Some(&mail(id)), "unverified", "INBOX", 1)
        })
        .to_vec();
    record(&ledger, rows);
    let keep = Duration::from_secs(90 * DAY);
    let swept = runtime().block_on(ledger.sweep_decisions(keep)).unwrap();
    assert_eq!(swept, 1);
    let left: Vec<Option<String>> = futures::executor::block_on(ledger.decisions(&everything()))
        .unwrap()
        .into_iter()
        .map(|r| r.mail.and_then(|m| m.message_id))
        .collect();
    assert_eq!(
        left,
        [Some("<kept@x>".to_string()), Some("<new@x>".to_string())]
    );
    assert_eq!(runtime().block_on(ledger.sweep_decisions(keep)).unwrap(), 0);
}

/// Schema 4 only adds `decisions`: a file at 3 is a 4 without it.
fn downgrade_to_v3(path: &std::path::Path) {
    let raw = rusqlite::Connection::open(path).unwrap();
    raw.execute_batch(
        "DROP TABLE decisions; ALTER TABLE poison DROP COLUMN killed_on; PRAGMA user_version = 3;",
    )
    .unwrap();
}

#[test]
fn a_v3_ledger_is_upgraded_and_keeps_what_it_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let posted = mail("posted@x");
    {
        let ledger = Ledger::open(dir.path()).unwrap();
        let attempt = Attempt {
            id: posted.clone(),
            ticket: 5,
            body_hash: "b".repeat(64),
            text_hash: "t".into(),
            date: "2026-01-05 10:00".into(),
            location: Location::default(),
            new_ticket_from: None,
        };
        let rt = runtime();
        rt.block_on(ledger.begin(vec![attempt])).unwrap();
        rt.block_on(ledger.finish(vec![Finish::Posted {
            id: posted.clone(),
            ticket: 5,
        }]))
        .unwrap();
        downgrade_to_v3(ledger.path());
    }
    let v3 = rusqlite::Connection::open(dir.path().join(FILE_NAME)).unwrap();
    let tables = |c: &rusqlite::Connection| -> i64 {
        c.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'decisions'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(tables(&v3), 0, "a version 3 file has no decisions");

    let ledger = Ledger::open(dir.path()).unwrap();
    let version: i64 = v3
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, super::schema::VERSION);
    assert_eq!(tables(&v3), 1);
    assert_eq!(
        futures::executor::block_on(ledger.find(&posted))
            .unwrap()
            .unwrap()
            .state,
        EntryState::Posted
    );
    assert_eq!(
        futures::executor::block_on(ledger.tickets_for_message_id("posted@x")).unwrap(),
        [5]
    );
    record(
        &ledger,
        vec![decided(Some(&mail("new@x")), "failed", "INBOX", 1)],
    );
    assert_eq!(
        futures::executor::block_on(ledger.decisions(&everything()))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_ledger_written_by_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = Ledger::open(dir.path()).unwrap().path().to_path_buf();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 7;")
        .unwrap();
    let err = Ledger::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("written by a newer thulium-mail-bridge (schema 7, this one knows 6)"),
        "{err}"
    );
}
