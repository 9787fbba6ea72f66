//! Exactly once, even when the API's answer is lost: read-back, crashes, give-up.

mod support;

use rand::Rng;
use std::time::Duration;
use support::*;
use testbed::Fault;

/// `(missing, duplicates)` of `per_ticket` replies to each of `tickets`, counted in the API's store.
fn audit(w: &World, tickets: u64, per_ticket: u32) -> (usize, usize) {
    let (mut missing, mut duplicates) = (0, 0);
    for t in 1..=tickets {
        let bodies: Vec<String> = w
            .api
            .posted(t)
            .iter()
            .map(|r| r.body.trim().to_string())
            .collect();
        for n in 0..per_ticket {
            match bodies
                .iter()
                .filter(|b| **b == format!("reply {n} to {t}"))
                .count()
            {
                0 => missing += 1,
                1 => {}
                k => duplicates += k - 1,
            }
        }
    }
    (missing, duplicates)
}

fn seed(w: &World, tickets: u64, per_ticket: u32) {
    for t in 1..=tickets {
        w.api.add_ticket(t, CUSTOMER);
    }
    let mails: Vec<Vec<u8>> = (0..per_ticket)
        .flat_map(|n| (1..=tickets).map(move |t| reply(t, n, &format!("reply {n} to {t}"))))
        .collect();
    w.dovecot.append_many(USER, "INBOX", mails, &[]).unwrap();
}

/// `once` until the inbox is empty (transient failures leave mails for the next pass).
async fn drain(w: &World, config: &std::path::Path, max_passes: usize) {
    for _ in 0..max_passes {
        let out = once(config, &[]).await;
        assert!(out.status.success(), "{}", text(&out));
        if w.folder("INBOX").is_empty() {
            return;
        }
    }
    panic!(
        "{} mails still in INBOX after {max_passes} passes",
        w.folder("INBOX").len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_post_in_five_answered_by_a_dropped_connection_still_posts_each_reply_once() {
    let w = World::start().await;
    seed(&w, 60, 5);
    w.api.fail_every(5, Fault::AcceptThenDrop);
    let config = w.config_with(&[MailboxOpts::default()], "concurrency = 8", "");
    drain(&w, &config, 10).await;
    let lost = w
        .api
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.status.is_none())
        .count();
    let (missing, duplicates) = audit(&w, 60, 5);
    println!("300 replies, {lost} answers lost: {missing} missing, {duplicates} duplicates");
    assert!(lost >= 50, "the fault really fired ({lost})");
    assert_eq!((missing, duplicates), (0, 0));
    assert_eq!(w.folder("Processed").len(), 300);
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_after_the_client_timeout_are_read_back_not_posted_again() {
    let w = World::start().await;
    seed(&w, 10, 4);
    // The harness's client timeout is 2 s.
    w.api
        .fail_every(5, Fault::AcceptThenDelay(Duration::from_secs(3)));
    let config = w.config_with(&[MailboxOpts::default()], "concurrency = 8", "");
    drain(&w, &config, 10).await;
    let (missing, duplicates) = audit(&w, 10, 4);
    println!("40 replies, every 5th answered late: {missing} missing, {duplicates} duplicates");
    assert_eq!((missing, duplicates), (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_20_random_instants_loses_and_doubles_nothing() {
    let w = World::start().await;
    seed(&w, 50, 10);
    w.api.set_latency(Duration::from_millis(30));
    let config = w.config();
    let log = w.dir.path().join("run.log");
    let mut rng = rand::rng();
    for k in 1..=20usize {
        let target = (k * 25).saturating_sub(rng.random_range(0..15));
        let mut child = spawn_run(&config, &log);
        let reached = eventually(Duration::from_secs(60), || w.api.total_posted() >= target).await;
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            reached,
            "stalled before {target} posts:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let mut child = spawn_run(&config, &log);
    let done = eventually(Duration::from_secs(120), || {
        w.folder("Processed").len() == 500
    })
    .await;
    signal(&child, "TERM");
    wait_exit(&mut child, Duration::from_secs(20)).await;
    assert!(done, "only {} processed", w.folder("Processed").len());
    let (missing, duplicates) = audit(&w, 50, 10);
    println!("500 replies, kill -9 x20: {missing} missing, {duplicates} duplicates");
    assert_eq!((missing, duplicates), (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_post_while_the_read_back_fails() {
    let w = World::start().await;
    w.api.add_ticket(1, CUSTOMER);
    w.append(&reply(1, 0, "reply 0 to 1"));
    w.api.fail_next(1, Fault::AcceptThenDrop);
    w.api.fail_next(4, Fault::GetFails(503));
    let config = w.config();
    let posts = |w: &World| {
        w.api
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count()
    };

    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(posts(&w), 1, "the lost post is not repeated blindly");
    assert_eq!(
        w.folder("INBOX").len(),
        1,
        "the mail waits for the read-back"
    );
    let mut passes = 1;
    while !w.folder("INBOX").is_empty() && passes < 8 {
        let out = once(&config, &[]).await;
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(posts(&w), 1, "still no second post");
        passes += 1;
    }
    assert!(w.folder("INBOX").is_empty(), "read back once the GET works");
    assert_eq!(w.api.posted(1).len(), 1);
    assert_eq!(w.api.pending_faults(), 0, "every GET fault was consumed");

    let mut c = bin();
    c.arg("--config")
        .arg(&config)
        .args(["ledger", "show", "reply-1-0@customer.example"]);
    let shown = output(c).await;
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("state:       posted") && shown.contains("ticket:      1"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mail_that_keeps_failing_goes_to_failed_after_max_attempts() {
    let w = World::start().await;
    w.api.add_ticket(1, CUSTOMER);
    w.append(&reply(1, 0, "never accepted"));
    w.api.fail_every(1, Fault::Status(500));
    let config = w.config_with(
        &[MailboxOpts::default()],
        "",
        "[delivery]\nmax_attempts = 2\n",
    );
    for _ in 0..3 {
        let out = once(&config, &[]).await;
        assert!(out.status.success(), "{}", text(&out));
    }
    assert_eq!(w.folder("Failed").len(), 1, "given up on");
    let mut c = bin();
    c.arg("--config")
        .arg(&config)
        .args(["ledger", "show", "<reply-1-0@customer.example>"]);
    let shown = output(c).await;
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("state:       failed") && shown.contains("gave up after 2 attempts"),
        "{shown}"
    );
    let mut c = bin();
    c.arg("--config").arg(&config).args(["ledger", "stats"]);
    let stats = output(c).await;
    assert!(
        String::from_utf8_lossy(&stats.stdout).contains("failed   1"),
        "{}",
        text(&stats)
    );
}
