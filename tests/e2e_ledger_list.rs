//! `ledger list` after a mixed run on a real Dovecot and the documented-shape fake API:
//! every decision is recorded once a mail (its latest, across passes), the filters
//! pick what they say, and decisions older than `state.keep_decisions` are swept by
//! the daemon at start. The real binary throughout.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use support::*;
use testbed::Fault;

const STRANGER: &str = "mallory@elsewhere.example";
const COLLEAGUE: &str = "piotr@customer.example";
const UNMATCHED: &[u8] = b"From: Jan <jan@customer.example>\r\nTo: support@acme.example\r\n\
    Subject: Question without a tag\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\n\
    Message-ID: <no-tag@customer.example>\r\n\r\nHi, where is my order?\r\n";
const AUTO_REPLY: &[u8] = b"From: ewa@customer.example\r\nTo: support@acme.example\r\n\
    Subject: Out of office [TH#1]\r\nAuto-Submitted: auto-replied\r\n\
    Date: Thu, 26 Nov 2026 10:00:00 +0100\r\nMessage-ID: <away@customer.example>\r\n\r\naway\r\n";

/// Moves the mail with `subject` from `from` to `to`, as a person's mail client would.
fn move_one(w: &World, from: &str, subject: &str, to: &str) {
    let uid = w
        .folder(from)
        .iter()
        .find(|m| m.subject().as_deref() == Some(subject))
        .and_then(|m| m.uid)
        .unwrap_or_else(|| panic!("no {subject:?} with a UID in {from}"));
    w.move_as_a_person(from, &format!("UID MOVE {uid}"), to);
}

/// `ledger list <args>`: its stdout, which must be a success.
async fn list(config: &Path, args: &[&str]) -> String {
    let mut all = vec!["list"];
    all.extend_from_slice(args);
    let (ok, out) = ledger(config, &all).await;
    assert!(ok, "ledger list {args:?} failed:\n{out}");
    out
}

/// `ledger list --json <args>`: one object a line.
async fn list_json(config: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    list(config, &all)
        .await
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The table's lines (no header) whose subject column holds `subject`.
fn lines_with<'a>(table: &'a str, subject: &str) -> Vec<&'a str> {
    table
        .lines()
        .skip(1)
        .filter(|l| l.contains(subject))
        .collect()
}

fn subjects(rows: &[Value]) -> Vec<String> {
    let mut s: Vec<String> = rows
        .iter()
        .map(|r| r["subject"].as_str().unwrap_or("").to_string())
        .collect();
    s.sort();
    s
}

/// Moves a mail's decision `days` into the past, as time would.
fn age_decision(config: &Path, message_id: &str, days: u64) {
    let file = config.with_file_name("state").join("ledger.sqlite3");
    let conn = rusqlite::Connection::open(file).expect("the ledger opens");
    let changed = conn
        .execute(
            "UPDATE decisions SET decided = decided - ?1 WHERE message_id = ?2",
            rusqlite::params![(days * 24 * 3600) as i64, message_id],
        )
        .expect("update");
    assert_eq!(changed, 1, "{message_id} has one decision");
}

/// Two passes over mixed mail: a reply posted, one unmatched, an auto-reply, a
/// stranger's, one refused, a colleague's held as unverified and then approved, and one
/// deferred (429) and posted on the second pass. Returns the config.
async fn mixed_run(w: &World) -> PathBuf {
    for ticket in [1, 3, 4, 5] {
        w.api.add_ticket(ticket, CUSTOMER);
    }
    w.append(&reply(1, 1, "Thanks, it works now."));
    w.append(UNMATCHED);
    w.append(AUTO_REPLY);
    w.append(&reply_from(STRANGER, 1, 2, "I am not the customer"));
    w.append(&reply(4, 1, "refused by the helpdesk"));
    w.append(&reply_from(COLLEAGUE, 3, 1, "a colleague answers"));
    w.append(&reply(5, 1, "posted on the second try"));
    w.api.fail_next_for(
        4,
        1,
        Fault::Reject {
            status: 422,
            message: "Customer response is too long".into(),
        },
    );
    w.api.fail_next_for(
        5,
        1,
        Fault::TooManyRequests {
            retry_after_secs: 60,
        },
    );
    let config = w.config();

    // First pass: ticket 5's reply waits (429); the colleague's is held as unverified.
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.posted(1).len(), 1, "{}", text(&out));
    assert!(w.api.posted(5).is_empty(), "{}", text(&out));
    assert_eq!(w.folder("INBOX").len(), 1, "the deferred one stays");
    assert_eq!(w.folder("Unverified").len(), 2, "{}", text(&out));
    // Nothing deferred is listed: a mail left pending is not decided yet.
    let posted = list_json(&config, &["--state", "posted"]).await;
    assert_eq!(subjects(&posted), ["Re: [TH#1] Order question"]);

    // A person approves the colleague's reply; the next pass posts both.
    move_one(w, "Unverified", "Re: [TH#3] Order question", "Approve");
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.posted(3).len(), 1, "{}", text(&out));
    assert_eq!(w.api.posted(5).len(), 1, "{}", text(&out));
    assert!(w.folder("INBOX").is_empty() && w.folder("Approve").is_empty());

    config
}

/// The default list: what reached no ticket, one line a mail, with why.
async fn the_default_list_shows_what_reached_no_ticket(config: &Path) {
    let table = list(config, &[]).await;
    println!("$ thulium-mail-bridge ledger list\n{table}");
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "WHEN", "MAILBOX", "FOLDER", "STATE", "TICKET", "SENDER", "SUBJECT", "REASON"
        ]
    );
    assert_eq!(
        table.lines().count(),
        5,
        "a header and four mails:\n{table}"
    );
    let expected = [
        ("Question without a tag", "unmatched", "no ticket number"),
        ("Out of office [TH#1]", "ignored", "auto-reply"),
        (
            "Re: [TH#1] Order question",
            "unverified",
            "is not the ticket's customer",
        ),
        (
            "Re: [TH#4] Order question",
            "failed",
            "(HTTP 422): Customer response is too long",
        ),
    ];
    for (subject, state, why) in expected {
        let lines = lines_with(&table, subject);
        assert_eq!(lines.len(), 1, "{subject} once:\n{table}");
        let line = lines[0];
        assert!(
            line.contains(&format!(" {state} ")) && line.contains(why),
            "{subject}: {state}, {why}:\n{table}"
        );
        assert!(
            line.contains(" support ") && line.contains(" INBOX "),
            "{line}"
        );
    }
    assert!(
        lines_with(&table, "Re: [TH#3]").is_empty(),
        "approved: placed"
    );
    assert!(
        lines_with(&table, "Re: [TH#5]").is_empty(),
        "posted: placed"
    );
}

/// JSON Lines carry every field.
async fn json_lines_carry_every_field(config: &Path) {
    let rows = list_json(config, &[]).await;
    assert_eq!(rows.len(), 4, "{rows:?}");
    let stranger = rows
        .iter()
        .find(|r| r["state"] == "unverified")
        .expect("the stranger's reply");
    assert_eq!(stranger["sender"], STRANGER);
    assert_eq!(stranger["ticket"], 1);
    assert_eq!(stranger["message_id"], "<reply-1-2@customer.example>");
    assert_eq!(stranger["mailbox"], "support");
    assert_eq!(stranger["folder"], "INBOX");
    assert!(stranger["uid"].as_u64().is_some_and(|u| u > 0));
    assert!(stranger["uid_validity"].as_u64().is_some_and(|u| u > 0));
    assert!(
        stranger["when"].as_str().is_some_and(|w| w.ends_with('Z')),
        "{stranger}"
    );
    let unmatched = rows.iter().find(|r| r["state"] == "unmatched").unwrap();
    assert_eq!(unmatched["ticket"], Value::Null);
    assert_eq!(unmatched["sender"], "jan@customer.example");
}

/// --state: the approved reply is listed once, as approved, not also as unverified.
async fn state_picks_the_latest_decision(config: &Path) {
    let approved = list_json(config, &["--state", "approved"]).await;
    assert_eq!(approved.len(), 1, "{approved:?}");
    assert_eq!(approved[0]["subject"], "Re: [TH#3] Order question");
    assert_eq!(approved[0]["folder"], "Approve");
    assert_eq!(approved[0]["sender"], COLLEAGUE);
    assert_eq!(approved[0]["ticket"], 3);
    let unverified = list_json(config, &["--state", "unverified"]).await;
    assert_eq!(subjects(&unverified), ["Re: [TH#1] Order question"]);
    let posted = list_json(config, &["--state", "posted"]).await;
    assert_eq!(
        subjects(&posted),
        ["Re: [TH#1] Order question", "Re: [TH#5] Order question"],
        "the deferred one once, as posted"
    );
    let two = list_json(config, &["--state", "failed", "--state", "ignored"]).await;
    assert_eq!(
        subjects(&two),
        ["Out of office [TH#1]", "Re: [TH#4] Order question"]
    );
}

/// --mailbox: only its mails, and for a mailbox without any a line that says so.
async fn mailbox_picks_its_mails(config: &Path) {
    assert_eq!(list_json(config, &["--mailbox", "support"]).await.len(), 4);
    assert!(list_json(config, &["--mailbox", "sales"]).await.is_empty());
    let none = list(config, &["--mailbox", "sales"]).await;
    assert!(
        none.starts_with(
            "no mail failed, unverified, unmatched or ignored in the last 7days in mailbox sales"
        ),
        "{none}"
    );
}

/// --since: a decision ten days old is outside the default week.
async fn since_picks_recent_decisions(config: &Path) {
    age_decision(config, "<no-tag@customer.example>", 10);
    let week = list_json(config, &[]).await;
    assert_eq!(week.len(), 3, "{week:?}");
    assert!(!subjects(&week).contains(&"Question without a tag".to_string()));
    assert_eq!(list_json(config, &["--since", "30d"]).await.len(), 4);
    assert_eq!(list_json(config, &["--since", "1h"]).await.len(), 3);
}

/// Retention: the daemon sweeps at start what is older than keep_decisions (90d).
async fn the_daemon_sweeps_old_decisions_at_start(w: &World, config: &Path) {
    age_decision(config, "<away@customer.example>", 100);
    assert_eq!(
        list_json(config, &["--since", "365d", "--state", "ignored"])
            .await
            .len(),
        1
    );
    let mut daemon = w.spawn_run(config);
    let swept = probe_until(
        WAIT,
        || list_json(config, &["--since", "365d", "--state", "ignored"]),
        |rows| rows.is_empty(),
    )
    .await;
    terminate_ok(&mut daemon, &w.log_path()).await;
    assert!(swept.is_ok(), "not swept at start:\n{}", w.log());
    assert!(
        w.log()
            .contains("forgot decisions older than state.keep_decisions"),
        "{}",
        w.log()
    );
    let left = list_json(config, &["--since", "365d"]).await;
    assert_eq!(
        subjects(&left),
        [
            "Question without a tag",
            "Re: [TH#1] Order question",
            "Re: [TH#4] Order question"
        ],
        "ten days old is kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_mixed_run_each_mail_is_listed_once_with_why_and_old_decisions_are_swept() {
    let w = World::start().await;
    let config = mixed_run(&w).await;
    the_default_list_shows_what_reached_no_ticket(&config).await;
    json_lines_carry_every_field(&config).await;
    state_picks_the_latest_decision(&config).await;
    mailbox_picks_its_mails(&config).await;
    since_picks_recent_decisions(&config).await;
    the_daemon_sweeps_old_decisions_at_start(&w, &config).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_records_no_decision() {
    let w = World::start().await;
    w.append(UNMATCHED);
    let config = w.config();
    let out = once(&config, &["--dry-run"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("outcome=\"unmatched\"") || text(&out).contains("outcome=unmatched"),
        "{}",
        text(&out)
    );
    assert!(list_json(&config, &[]).await.is_empty());
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        subjects(&list_json(&config, &[]).await),
        ["Question without a tag"]
    );
}
