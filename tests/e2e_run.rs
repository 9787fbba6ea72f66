//! The daemon (`run`) against a real Dovecot: IDLE, reconnects, signals, crashes.

mod support;

use std::time::{Duration, Instant};
use support::*;
use testbed::Fault;

fn log_of(w: &World) -> String {
    w.log()
}

async fn start_run(w: &World, config: &std::path::Path) -> Daemon {
    let child = w.spawn_run(config);
    assert!(
        eventually(WAIT, || log_of(w).contains("watching")).await,
        "run never started watching:\n{}",
        log_of(w)
    );
    child
}

async fn stop(w: &World, mut child: Daemon) -> std::process::ExitStatus {
    terminate(&mut child, &w.log_path()).await
}

/// A world whose Dovecot records the commands it gets (to see when IDLE began).
async fn recorded_world() -> World {
    World::start_with(testbed::DovecotOptions {
        rawlog: true,
        ..Default::default()
    })
    .await
}

/// Whether the daemon's last command so far was IDLE (it is waiting in it).
fn in_idle(w: &World) -> bool {
    w.dovecot
        .imap_commands(USER)
        .unwrap_or_default()
        .last()
        .is_some_and(|c| c.ends_with(" IDLE"))
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_posts_a_new_mail_long_before_the_poll_and_sigterm_exits_0() {
    let w = recorded_world().await;
    w.api.add_ticket(20, CUSTOMER);
    w.api.add_ticket(21, CUSTOMER);
    let slow_poll = MailboxOpts {
        extra: "poll_interval = \"10m\"".into(),
        ..MailboxOpts::default()
    };
    let config = w.config_with(&[slow_poll], "", "");
    w.append(&reply(20, 1, "there before the start"));
    let child = start_run(&w, &config).await;
    // The first pass is over and the mailbox waits in IDLE.
    assert!(
        eventually(WAIT, || w.folder("Processed").len() == 1 && in_idle(&w)).await,
        "{}\n{:?}",
        log_of(&w),
        w.dovecot.imap_commands(USER)
    );
    let appended = Instant::now();
    w.append(&reply(21, 1, "arrives while run waits"));
    // The deadline is a hang guard far below the 10 min poll: only IDLE gets it here.
    let posted = eventually(WAIT, || w.api.posted(21).len() == 1).await;
    let took = appended.elapsed();
    assert!(
        posted,
        "not posted within {WAIT:?} (poll_interval is 10 min, so IDLE must do it):\n{}",
        log_of(&w)
    );
    println!("IDLE arrival-to-post: {took:?}");
    assert!(eventually(WAIT, || w.folder("Processed").len() == 2).await);
    assert_eq!(stop(&w, child).await.code(), Some(0), "{}", log_of(&w));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mail_arriving_during_a_pass_is_not_left_for_the_next_poll() {
    let w = recorded_world().await;
    w.api.add_ticket(22, CUSTOMER);
    w.api.add_ticket(23, CUSTOMER);
    let slow_poll = MailboxOpts {
        extra: "poll_interval = \"10m\"".into(),
        ..MailboxOpts::default()
    };
    let config = w.config_with(&[slow_poll], "timeout = \"30s\"", "");
    // The first reply's POST takes a while; the second mail arrives meanwhile, after
    // the pass's search. Dovecot tells the session about it (EXISTS) with the next
    // command's answer, not again in IDLE: the bridge must not wait for the poll.
    w.api.fail_next(1, Fault::Latency(Duration::from_secs(2)));
    w.append(&reply(22, 1, "posted slowly"));
    let child = start_run(&w, &config).await;
    assert!(
        eventually(WAIT, || w.api.posts_in_flight() == 1).await,
        "{}",
        log_of(&w)
    );
    w.append(&reply(23, 1, "arrives during the pass"));
    let posted = eventually(WAIT, || w.api.posted(23).len() == 1).await;
    let commands = w.dovecot.imap_commands(USER).unwrap_or_default();
    assert!(
        posted,
        "a mail that arrived during a pass waits for the next poll (10 min):\n{commands:#?}\n{}",
        log_of(&w)
    );
    assert_eq!(w.api.posted(22).len(), 1);
    assert_eq!(stop(&w, child).await.code(), Some(0), "{}", log_of(&w));
}

#[tokio::test(flavor = "multi_thread")]
async fn polling_works_without_idle() {
    let w = World::start_with(testbed::DovecotOptions {
        extra_config: testbed::NO_IDLE_CAPABILITY.into(),
        ..Default::default()
    })
    .await;
    w.api.add_ticket(5, CUSTOMER);
    let child = start_run(&w, &w.config()).await;
    assert!(log_of(&w).contains("idle=false"), "{}", log_of(&w));
    w.append(&reply(5, 1, "found by polling"));
    assert!(
        eventually(WAIT, || w.api.posted(5).len() == 1).await,
        "{}",
        log_of(&w)
    );
    assert_eq!(stop(&w, child).await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dovecot_restart_under_run_is_survived() {
    let w = World::start().await;
    w.api.add_ticket(31, CUSTOMER);
    w.api.add_ticket(32, CUSTOMER);
    let child = start_run(&w, &w.config()).await;
    w.append(&reply(31, 1, "before the restart"));
    assert!(eventually(WAIT, || w.api.posted(31).len() == 1).await);
    w.dovecot.restart().unwrap();
    w.append(&reply(32, 1, "after the restart"));
    assert!(
        eventually(WAIT, || w.api.posted(32).len() == 1).await,
        "no reconnect:\n{}",
        log_of(&w)
    );
    assert!(log_of(&w).contains("reconnecting"), "{}", log_of(&w));
    assert_eq!(stop(&w, child).await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_applies_a_good_config_and_keeps_the_old_one_on_a_bad_one() {
    let w = World::start().await;
    w.dovecot.add_user("sales", "sales-pw").unwrap();
    w.api.add_ticket(41, CUSTOMER);
    w.api.add_ticket(42, CUSTOMER);
    let config = w.config();
    let child = start_run(&w, &config).await;

    std::fs::write(&config, "[thulium]\nurl = 5\n").unwrap();
    signal(&child, "HUP");
    assert!(eventually(WAIT, || log_of(&w).contains("config reload failed")).await);
    w.append(&reply(41, 1, "still served by the old config"));
    assert!(
        eventually(WAIT, || w.api.posted(41).len() == 1).await,
        "{}",
        log_of(&w)
    );

    let sales = MailboxOpts::of_user("sales", "sales-pw");
    w.config_with(&[MailboxOpts::default(), sales], "", "");
    signal(&child, "HUP");
    assert!(eventually(WAIT, || log_of(&w).contains("config reloaded")).await);
    w.dovecot
        .append("sales", "INBOX", &reply(42, 1, "to the new mailbox"), &[])
        .unwrap();
    assert!(
        eventually(WAIT, || w.api.posted(42).len() == 1).await,
        "{}",
        log_of(&w)
    );
    assert_eq!(stop(&w, child).await.code(), Some(0));
}

/// Runs the daemon on `mail`, whose POST the API sits on for `latency`, and sends
/// SIGTERM while it is in flight; how the daemon exited.
async fn sigterm_while_posting(
    w: &World,
    config: &std::path::Path,
    mail: &[u8],
    latency: Duration,
) -> Option<std::process::ExitStatus> {
    w.api.fail_next(1, Fault::Latency(latency));
    w.append(mail);
    let mut child = w.spawn_run(config);
    assert!(
        eventually(WAIT, || w.api.posts_in_flight() == 1).await,
        "{}",
        log_of(w)
    );
    signal(&child, "TERM");
    wait_exit(&mut child, WAIT).await
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_the_post_in_flight_records_and_disposes_it() {
    let w = World::start().await;
    w.api.add_ticket(51, CUSTOMER);
    let config = w.config_with(&[MailboxOpts::default()], "timeout = \"30s\"", "");
    // The API takes 3 s over this POST (the client waits up to 30 s).
    let mail = reply(51, 1, "in flight at SIGTERM");
    let status = sigterm_while_posting(&w, &config, &mail, Duration::from_secs(3)).await;
    // Right at the exit: the POST had been answered and stored, not cut off.
    let (in_flight, stored) = (w.api.posts_in_flight(), w.api.posted(51).len());
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", log_of(&w));
    assert_eq!(
        (in_flight, stored),
        (0, 1),
        "exited before its POST was answered:\n{}",
        log_of(&w)
    );
    assert_eq!(w.subjects("Processed"), ["Re: [TH#51] Order question"]);
    assert!(w.folder("INBOX").is_empty());
    let (ok, shown) = ledger(&config, &["show", "reply-51-1@customer.example"]).await;
    assert!(ok && shown.contains("state:       posted"), "{shown}");
    assert!(
        log_of(&w).contains("stopping: finishing the mail in hand"),
        "{}",
        log_of(&w)
    );

    // The next start posts nothing again.
    w.append(&mail);
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(posts(&w.api), 1);
    assert_eq!(w.folder("Processed").len(), 2, "the copy was only disposed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_abandons_a_post_still_in_flight_after_stop_timeout_and_loses_nothing() {
    let w = World::start().await;
    w.api.add_ticket(52, CUSTOMER);
    let config = w.config_with(
        &[MailboxOpts::default()],
        "timeout = \"60s\"",
        "[delivery]\nstop_timeout = \"1s\"\n",
    );
    // The API sits on this POST for 20 s, far beyond the stop's 1 s.
    let mail = reply(52, 1, "in flight when the stop gives up");
    let status = sigterm_while_posting(&w, &config, &mail, Duration::from_secs(20)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", log_of(&w));
    let log = log_of(&w);
    let abandoned: Vec<&str> = log.lines().filter(|l| l.contains("abandoned")).collect();
    assert_eq!(
        abandoned.len(),
        1,
        "one line says what was abandoned:\n{log}"
    );
    assert!(
        abandoned[0].contains("support"),
        "it names the mailbox: {}",
        abandoned[0]
    );
    assert_eq!(w.subjects("INBOX"), ["Re: [TH#52] Order question"]);
    let (ok, shown) = ledger(&config, &["show", "reply-52-1@customer.example"]).await;
    assert!(ok && shown.contains("state:       pending"), "{shown}");

    // Whatever became of the abandoned POST, the next start leaves exactly one.
    assert!(eventually(WAIT, || w.api.posts_in_flight() == 0).await);
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.posted(52).len(), 1, "{}", text(&out));
    assert_eq!(w.subjects("Processed"), ["Re: [TH#52] Order question"]);
}
