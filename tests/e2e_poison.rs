//! One bad mail never stalls the queue, on the real path: a mail that kills the process
//! while it is read, and one read for longer than the real 10 s budget, with a real
//! Dovecot and the fake API. Both are made bad by the test build's `test-crash` hooks
//! (`X-Test-Crash:` in the header, src/daemon/test_crash.rs): the process really dies
//! and the budget really runs out.

mod support;

use std::os::unix::process::ExitStatusExt;
use support::*;

/// How a Rust process that overflowed its stack dies (Linux's number).
const SIGABRT: i32 = 6;

/// A reply to `ticket` that, read by a test build, does `what` (`abort` or `slow`).
fn bad_reply(ticket: u64, what: &str) -> Vec<u8> {
    let raw = String::from_utf8(reply(ticket, 1, "The mail nobody can read."))
        .expect("utf-8")
        .replacen(
            "MIME-Version:",
            &format!("X-Test-Crash: {what}\r\nMIME-Version:"),
            1,
        );
    raw.into_bytes()
}

/// The UID named by `support`'s reading marker, if it names one.
fn marked_uid(w: &World) -> Option<u32> {
    let dir = w.dir.path().join("state").join("reading");
    let text = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .find_map(|e| std::fs::read_to_string(e.path()).ok())?;
    text.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mail_that_kills_the_process_while_read_is_struck_at_each_start_then_quarantined() {
    let w = World::start().await;
    w.api.add_ticket(1001, CUSTOMER);
    w.api.add_ticket(1002, CUSTOMER);
    w.append(&bad_reply(1001, "abort"));
    w.append(&reply(1002, 1, "A good mail after it."));
    let config = w.config();

    // The first death: the mail in hand is named by the marker the process left.
    let first = once(&config, &[]).await;
    assert_eq!(first.status.signal(), Some(SIGABRT), "{}", text(&first));
    let bad_uid = w
        .folder("INBOX")
        .iter()
        .find(|m| m.raw == bad_reply(1001, "abort"))
        .and_then(|m| m.uid);
    assert!(bad_uid.is_some(), "Dovecot has seen the mail");
    assert_eq!(marked_uid(&w), bad_uid, "{}", text(&first));
    assert_eq!(w.api.posted(1001).len(), 0);

    // The next start strikes it, reads it again, and dies again.
    let second = once(&config, &[]).await;
    assert!(
        text(&second).contains("a mail was being read when the bridge stopped"),
        "{}",
        text(&second)
    );
    assert_eq!(second.status.signal(), Some(SIGABRT), "{}", text(&second));

    // Two strikes: quarantined unread, and the mail after it goes on.
    let third = once(&config, &[]).await;
    assert!(third.status.success(), "{}", text(&third));
    assert!(text(&third).contains("quarantined"), "{}", text(&third));
    assert_eq!(w.folder("Failed").len(), 1, "{}", text(&third));
    assert_eq!(w.folder("Failed")[0].raw, bad_reply(1001, "abort"));
    assert_eq!(w.api.posted(1001).len(), 0);
    assert_eq!(w.api.posted(1002).len(), 1, "{}", text(&third));
    assert!(w.folder("INBOX").is_empty(), "{}", text(&third));

    // A clean stop leaves no marker: a later start strikes nothing.
    w.append(&reply(1002, 2, "A later mail."));
    let fourth = once(&config, &[]).await;
    assert!(fourth.status.success(), "{}", text(&fourth));
    assert!(!text(&fourth).contains("being read when the bridge stopped"));
    assert_eq!(w.api.posted(1002).len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mail_read_longer_than_the_10_s_budget_is_struck_and_the_next_mails_go_on() {
    let w = World::start().await;
    for t in 2001..=2003 {
        w.api.add_ticket(t, CUSTOMER);
    }
    w.append(&bad_reply(2001, "slow"));
    w.append(&reply(2002, 1, "Next in the batch."));
    w.append(&reply(2003, 1, "And the one after."));
    let out = once(&w.config(), &[]).await;
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert_eq!(w.api.posted(2002).len(), 1, "{said}");
    assert_eq!(w.api.posted(2003).len(), 1, "{said}");
    assert_eq!(w.api.posted(2001).len(), 0, "{said}");
    assert_eq!(
        w.subjects("INBOX"),
        ["Re: [TH#2001] Order question"],
        "struck, it waits for the next pass: {said}"
    );
    assert!(
        said.lines()
            .any(|l| l.contains("reading it took longer than 10s")
                && has_field(l, "outcome", "retried")),
        "the default budget, named: {said}"
    );
}
