//! The approve folder: a person moves a mail the bridge would not post (a stranger's
//! reply, a DMARC failure, a mail without a ticket) into it with any IMAP client, and the
//! bridge handles it again with that person's vouching. Real Dovecot, a second IMAP
//! client doing the move, the documented-shape fake API.

mod support;

use std::time::Instant;
use support::*;

const COLLEAGUE: &str = "piotr@customer.example";

/// Moves every mail of `from` into `to`, as a person's mail client would.
fn move_all(w: &World, from: &str, to: &str) {
    w.move_as_a_person(from, "MOVE 1:*", to);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_colleagues_reply_moved_into_approve_is_posted_once_with_its_own_date() {
    let w = World::start().await;
    w.api.add_ticket(1, CUSTOMER);
    w.append(&reply_from(COLLEAGUE, 1, 7, "reply from a colleague"));
    let port = free_port();
    let config = w.config_with_metrics(port);
    let mut child = w.spawn_run(&config);
    let unverified = eventually(WAIT, || w.folder("Unverified").len() == 1).await;
    assert!(unverified, "the stranger's reply is held:\n{}", w.log());
    assert!(w.api.posted(1).is_empty());

    move_all(&w, "Unverified", "Approve");
    let moved = Instant::now();
    let posted = eventually(WAIT, || w.api.posted(1).len() == 1).await;
    let latency = moved.elapsed();
    assert!(posted, "not posted after the move:\n{}", w.log());
    let done = eventually(WAIT, || {
        w.folder("Processed").len() == 1 && w.folder("Approve").is_empty()
    })
    .await;
    assert!(done, "not disposed by on_posted:\n{}", w.log());
    let stored = &w.api.posted(1)[0];
    assert_eq!(stored.body.trim(), "reply from a colleague");
    // reply n=7 is dated Thu, 26 Nov 2026 10:07 +0100: 10:07 in Warsaw.
    assert_eq!(stored.date.as_deref(), Some("2026-11-26 10:07"));
    println!(
        "approve: moved into Approve -> posted in {:.2} s (poll_interval 1s)",
        latency.as_secs_f64()
    );
    let m = metrics(port).await;
    let approved = [("mailbox", "support"), ("outcome", "approved")];
    assert_eq!(
        metric(&m, "thulium_bridge_mails_total", &approved),
        Some(1.0),
        "{m}"
    );

    // Moved in again (by mistake): the ledger knows it was posted.
    move_all(&w, "Processed", "Approve");
    let disposed = eventually(WAIT, || {
        w.folder("Approve").is_empty() && w.folder("Processed").len() == 1
    })
    .await;
    terminate_ok(&mut child, &w.log_path()).await;
    assert!(disposed, "{}", w.log());
    assert_eq!(w.api.posted(1).len(), 1, "not posted twice:\n{}", w.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dmarc_failure_a_person_vouched_for_is_posted_and_a_mail_without_ticket_goes_back() {
    let w = World::start().await;
    w.api.add_ticket(2, CUSTOMER);
    let spoofed = String::from_utf8(reply(2, 0, "reply 0 to 2"))
        .expect("utf-8")
        .replacen(
            "From:",
            "Authentication-Results: mx.acme.example; dmarc=fail (p=none) header.from=customer.example\r\nFrom:",
            1,
        );
    w.append(spoofed.as_bytes());
    w.append(
        b"From: anna@customer.example\r\nTo: support@acme.example\r\nSubject: No number here\r\n\
          Date: Thu, 26 Nov 2026 11:00:00 +0100\r\nMessage-ID: <no-ticket@customer.example>\r\n\r\nHello\r\n",
    );
    let mailbox = MailboxOpts {
        extra: "trusted_authserv_id = [\"mx.acme.example\"]\n".into(),
        ..MailboxOpts::default()
    };
    let config = w.config_with(&[mailbox], "", "");
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.folder("Unverified").len(), 1, "{}", text(&out));
    assert_eq!(w.folder("Unmatched").len(), 1, "{}", text(&out));
    assert!(w.api.posted(2).is_empty());

    move_all(&w, "Unverified", "Approve");
    move_all(&w, "Unmatched", "Approve");
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let log = text(&out);
    assert_eq!(w.api.posted(2).len(), 1, "{log}");
    assert_eq!(w.folder("Processed").len(), 1, "{log}");
    assert_eq!(
        w.folder("Unmatched").len(),
        1,
        "back with its reason: {log}"
    );
    assert!(w.folder("Approve").is_empty(), "{log}");
    assert!(
        log.lines()
            .any(|l| has_field(l, "outcome", "unmatched") && l.contains("no ticket number")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approve_folder_that_is_a_disposition_target_is_refused() {
    let w = World::start().await;
    let mailbox = MailboxOpts {
        extra: "on_unverified = \"move:Approve\"\n".into(),
        ..MailboxOpts::default()
    };
    let config = w.config_with(&[mailbox], "", "");
    let out = once(&config, &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("approve_folder"), "{}", text(&out));
    let off = MailboxOpts {
        extra: "on_unverified = \"move:Approve\"\napprove_folder = \"\"\n".into(),
        ..MailboxOpts::default()
    };
    let config = w.config_with(&[off], "", "");
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
}
