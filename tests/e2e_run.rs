//! The daemon (`run`) against a real Dovecot: IDLE, reconnects, signals, crashes.

mod support;

use std::time::{Duration, Instant};
use support::*;

fn log_of(w: &World) -> String {
    std::fs::read_to_string(w.dir.path().join("run.log")).unwrap_or_default()
}

async fn start_run(w: &World, config: &std::path::Path) -> Daemon {
    let child = spawn_run(config, &w.dir.path().join("run.log"));
    assert!(
        eventually(Duration::from_secs(20), || log_of(w).contains("watching")).await,
        "run never started watching:\n{}",
        log_of(w)
    );
    child
}

async fn stop(mut child: Daemon) -> std::process::ExitStatus {
    signal(&child, "TERM");
    wait_exit(&mut child, Duration::from_secs(20))
        .await
        .expect("run exits after SIGTERM")
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_posts_a_new_mail_within_two_seconds_and_sigterm_exits_0() {
    let w = World::start().await;
    w.api.add_ticket(21, CUSTOMER);
    let slow_poll = MailboxOpts {
        extra: "poll_interval = \"10m\"".into(),
        ..MailboxOpts::default()
    };
    let config = w.config_with(&[slow_poll], "", "");
    let child = start_run(&w, &config).await;
    // Let the first pass finish and IDLE begin.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let appended = Instant::now();
    w.append(&reply(21, 1, "arrives while run waits"));
    let posted = eventually(Duration::from_secs(2), || w.api.posted(21).len() == 1).await;
    let took = appended.elapsed();
    assert!(
        posted,
        "not posted within 2 s (poll_interval is 10 min, so IDLE must do it):\n{}",
        log_of(&w)
    );
    println!("IDLE arrival-to-post: {took:?}");
    assert!(eventually(Duration::from_secs(5), || w.folder("Processed").len() == 1).await);
    assert_eq!(stop(child).await.code(), Some(0), "{}", log_of(&w));
}

#[tokio::test(flavor = "multi_thread")]
async fn polling_works_without_idle() {
    let w = {
        let dovecot = testbed::Dovecot::start_with(testbed::DovecotOptions {
            extra_config: testbed::NO_IDLE_CAPABILITY.into(),
            ..Default::default()
        })
        .unwrap();
        dovecot.add_user(USER, PASSWORD).unwrap();
        World {
            dovecot,
            api: testbed::FakeThulium::start().await.unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    };
    w.api.add_ticket(5, CUSTOMER);
    let child = start_run(&w, &w.config()).await;
    assert!(log_of(&w).contains("idle=false"), "{}", log_of(&w));
    w.append(&reply(5, 1, "found by polling"));
    assert!(
        eventually(Duration::from_secs(10), || w.api.posted(5).len() == 1).await,
        "{}",
        log_of(&w)
    );
    assert_eq!(stop(child).await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dovecot_restart_under_run_is_survived() {
    let w = World::start().await;
    w.api.add_ticket(31, CUSTOMER);
    w.api.add_ticket(32, CUSTOMER);
    let child = start_run(&w, &w.config()).await;
    w.append(&reply(31, 1, "before the restart"));
    assert!(eventually(Duration::from_secs(10), || w.api.posted(31).len() == 1).await);
    w.dovecot.restart().unwrap();
    w.append(&reply(32, 1, "after the restart"));
    assert!(
        eventually(Duration::from_secs(30), || w.api.posted(32).len() == 1).await,
        "no reconnect:\n{}",
        log_of(&w)
    );
    assert!(log_of(&w).contains("reconnecting"), "{}", log_of(&w));
    assert_eq!(stop(child).await.code(), Some(0));
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
    assert!(
        eventually(Duration::from_secs(10), || log_of(&w)
            .contains("config reload failed"))
        .await
    );
    w.append(&reply(41, 1, "still served by the old config"));
    assert!(
        eventually(Duration::from_secs(10), || w.api.posted(41).len() == 1).await,
        "{}",
        log_of(&w)
    );

    let sales = MailboxOpts {
        name: "sales".into(),
        user: "sales".into(),
        password: "sales-pw".into(),
        ..MailboxOpts::default()
    };
    w.config_with(&[MailboxOpts::default(), sales], "", "");
    signal(&child, "HUP");
    assert!(
        eventually(Duration::from_secs(10), || log_of(&w)
            .contains("config reloaded"))
        .await
    );
    w.dovecot
        .append("sales", "INBOX", &reply(42, 1, "to the new mailbox"), &[])
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || w.api.posted(42).len() == 1).await,
        "{}",
        log_of(&w)
    );
    assert_eq!(stop(child).await.code(), Some(0));
}
