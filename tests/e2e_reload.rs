//! SIGHUP under `run`: mailboxes removed, changed (after their mail in hand) and kept,
//! a refused `state.dir` change, and an OAuth2 secret changed inline. What is running
//! is read from Dovecot's side (its logins and ended sessions), not only from our own
//! log.

mod support;

use std::path::Path;
use std::time::Duration;
use support::*;
use testbed::{Dovecot, DovecotOptions, FakeIdp, FakeThulium, Fault};

const SALES_PW: &str = "sales-Secret-3";

fn sales() -> MailboxOpts {
    MailboxOpts::of_user("sales", SALES_PW)
}

/// A world with a second Dovecot user, `sales`.
async fn world() -> World {
    let w = World::start().await;
    w.dovecot.add_user("sales", SALES_PW).unwrap();
    w
}

/// `run` on the default config with tickets `1..=tickets`, once a first reply (to ticket
/// 1) is posted: the daemon is up and serving before a test changes its config.
async fn running_with_one_posted(tickets: u64) -> (World, std::path::PathBuf, Daemon) {
    let w = world().await;
    for t in 1..=tickets {
        w.api.add_ticket(t, CUSTOMER);
    }
    let config = w.config();
    let child = w.spawn_run(&config);
    w.append(&reply(1, 0, "before"));
    assert!(
        eventually(WAIT, || w.api.posted(1).len() == 1).await,
        "{}",
        w.log()
    );
    (w, config, child)
}

/// SIGHUP, then waits until the log shows the reload number `n` (1, 2, ...) done.
async fn reload(w: &World, child: &Daemon, n: usize) {
    signal(child, "HUP");
    assert!(
        eventually(WAIT, || {
            let log = w.log();
            log.matches("config reloaded").count() + log.matches("config reload failed").count()
                >= n
        })
        .await,
        "reload {n} never finished:\n{}",
        w.log()
    );
}

/// Whether every session `user` opened has ended (Dovecot logged its end).
fn all_sessions_ended(dovecot: &Dovecot, user: &str) -> bool {
    dovecot.sessions(user).len() == dovecot.logins(user)
}

/// `run` with support and sales, once each has posted (and moved) a reply; tickets 1–4
/// exist.
async fn both_posting(w: &World) -> Daemon {
    for t in 1..=4 {
        w.api.add_ticket(t, CUSTOMER);
    }
    let config = w.config_with(&[MailboxOpts::default(), sales()], "", "");
    let child = w.spawn_run(&config);
    w.append(&reply(1, 0, "to support"));
    w.dovecot
        .append("sales", "INBOX", &reply(2, 0, "to sales"), &[])
        .unwrap();
    let moved = |user: &str| {
        w.dovecot
            .folder_mails(user, "Processed")
            .unwrap_or_default()
            .len()
    };
    assert!(
        eventually(WAIT, || moved(USER) == 1 && moved("sales") == 1).await,
        "{}",
        w.log()
    );
    child
}

/// POSTs the fake API received for `ticket`, answered or not.
fn posts_to(w: &World, ticket: u64) -> usize {
    w.api
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.ticket == Some(ticket))
        .count()
}

fn stopped(log: &str, mailbox: &str) -> bool {
    log.lines().any(|l| {
        l.contains("stopping mailbox (removed or changed)") && has_field(l, "mailbox", mailbox)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_mailbox_stops_and_the_other_keeps_posting() {
    let w = world().await;
    let mut child = both_posting(&w).await;

    w.config_with(&[MailboxOpts::default()], "", "");
    reload(&w, &child, 1).await;
    assert!(stopped(&w.log(), "sales"), "{}", w.log());
    assert!(!stopped(&w.log(), "support"), "{}", w.log());
    // The sales loop logged out and has not come back.
    assert!(
        eventually(WAIT, || all_sessions_ended(&w.dovecot, "sales")).await,
        "{}",
        w.dovecot.log()
    );
    let sales_logins = w.dovecot.logins("sales");
    w.dovecot
        .append(
            "sales",
            "INBOX",
            &reply(3, 0, "to the removed mailbox"),
            &[],
        )
        .unwrap();
    w.append(&reply(4, 0, "to support, after the reload"));
    assert!(
        eventually(WAIT, || w.api.posted(4).len() == 1).await,
        "support stopped posting:\n{}",
        w.log()
    );
    // Support finished a pass that began after the sales mail arrived; the sales
    // loop, were it alive, would have logged in again by now (it polls every second).
    assert!(
        eventually(WAIT, || w.folder("Processed").len() == 2).await,
        "{}",
        w.log()
    );
    terminate_ok(&mut child, &w.log_path()).await;
    assert_eq!(w.dovecot.logins("sales"), sales_logins, "{}", w.log());
    assert!(w.api.posted(3).is_empty());
    assert_eq!(w.dovecot.folder_mails("sales", "INBOX").unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_mailbox_finishes_its_mail_in_hand_then_restarts_with_its_new_settings() {
    let w = world().await;
    let mut child = both_posting(&w).await;
    let support_logins = w.dovecot.logins(USER);

    // A reply in hand in sales: its POST is under way when the reload comes.
    w.api.add_ticket(5, CUSTOMER);
    w.api
        .fail_next_for(5, 1, Fault::Latency(Duration::from_millis(1500)));
    w.dovecot
        .append("sales", "INBOX", &reply(5, 0, "in hand at the reload"), &[])
        .unwrap();
    assert!(
        eventually(WAIT, || w.api.posts_in_flight() == 1).await,
        "{}",
        w.log()
    );

    // Sales now flags what it posted instead of moving it.
    let changed = MailboxOpts {
        extra: "on_posted = \"flag:ThuliumPosted\"\n".into(),
        ..sales()
    };
    w.config_with(&[MailboxOpts::default(), changed], "", "");
    signal(&child, "HUP");
    assert_eq!(
        w.api.posts_in_flight(),
        1,
        "the reload must come while the POST is under way"
    );
    reload(&w, &child, 1).await;
    // Finished under the old settings before the restart: posted once, moved.
    assert_eq!(posts_to(&w, 5), 1, "{}", w.log());
    assert_eq!(w.api.posted(5).len(), 1);
    assert_eq!(
        w.dovecot.folder_mails("sales", "Processed").unwrap().len(),
        2,
        "{}",
        w.log()
    );
    assert!(stopped(&w.log(), "sales"), "{}", w.log());
    assert!(!stopped(&w.log(), "support"), "{}", w.log());
    w.dovecot
        .append(
            "sales",
            "INBOX",
            &reply(3, 0, "to sales, after the change"),
            &[],
        )
        .unwrap();
    w.append(&reply(4, 0, "to support, after the change"));
    let flagged = || {
        w.dovecot
            .folder_mails("sales", "INBOX")
            .unwrap_or_default()
            .iter()
            .any(|m| m.has_flag("ThuliumPosted"))
    };
    assert!(
        eventually(WAIT, || flagged() && w.folder("Processed").len() == 2).await,
        "{}",
        w.log()
    );
    terminate_ok(&mut child, &w.log_path()).await;
    assert_eq!(w.api.posted(3).len(), 1);
    assert_eq!(
        w.dovecot.folder_mails("sales", "Processed").unwrap().len(),
        2,
        "the new mail stayed in INBOX, flagged"
    );
    assert_eq!(posts_to(&w, 5), 1, "{}", w.log());
    // The unchanged mailbox kept its session: no new login across the reload.
    assert_eq!(w.dovecot.logins(USER), support_logins, "{}", w.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_dir_change_is_refused_and_the_old_config_kept() {
    let (w, config, mut child) = running_with_one_posted(3).await;

    // A new state.dir, and a new mailbox in the same edit: neither is taken.
    w.config_with(&[MailboxOpts::default(), sales()], "", "");
    let moved = w.dir.path().join("elsewhere");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("{:?}", w.dir.path().join("state")),
        &format!("{moved:?}"),
    );
    assert!(text.contains("elsewhere"), "{text}");
    std::fs::write(&config, text).unwrap();
    reload(&w, &child, 1).await;
    let log = w.log();
    let refused = log
        .lines()
        .find(|l| l.contains("config reload failed, keeping the old config"))
        .unwrap_or_else(|| panic!("no refusal:\n{log}"));
    assert!(
        refused.contains("state.dir") && refused.contains("needs a restart"),
        "{refused}"
    );
    assert!(!log.contains("config reloaded"), "{log}");

    w.dovecot
        .append(
            "sales",
            "INBOX",
            &reply(2, 0, "to the mailbox not added"),
            &[],
        )
        .unwrap();
    w.append(&reply(3, 0, "after"));
    assert!(
        eventually(WAIT, || w.folder("Processed").len() == 2).await,
        "the old config runs on:\n{}",
        w.log()
    );
    terminate_ok(&mut child, &w.log_path()).await;
    assert_eq!(
        w.dovecot.logins("sales"),
        0,
        "the new mailbox never started"
    );
    assert!(w.api.posted(2).is_empty());
    assert!(!moved.exists(), "nothing was written to the new state.dir");
    let (ok, shown) = ledger(
        &config_with_state(&config, &w),
        &["show", "reply-3-0@customer.example"],
    )
    .await;
    assert!(ok && shown.contains("state:       posted"), "{shown}");
}

/// A new password typed into the config, to be seen in no log line.
const NEW_SECRET: &str = "Zebra7-Quokka-Hunter2";

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_new_config_is_logged_without_its_secrets() {
    let (w, config, mut child) = running_with_one_posted(2).await;
    let good = std::fs::read_to_string(&config).unwrap();
    let api_url = format!("url = {:?}", w.api.url());
    let with_userinfo = w
        .api
        .url()
        .replace("http://", &format!("http://api:{NEW_SECRET}@"));
    let broken = [
        // A closing quote forgotten on the new IMAP password.
        good.replace(
            &format!("password = {PASSWORD:?}"),
            &format!("password = \"{NEW_SECRET}"),
        ),
        // user:password@ in a URL that does not parse (a port too big) ...
        good.replace(
            &api_url,
            &format!("url = \"http://api:{NEW_SECRET}@127.0.0.1:99999/api\""),
        ),
        // ... and in one that does.
        good.replace(&api_url, &format!("url = {with_userinfo:?}")),
    ];
    for (n, text) in broken.iter().enumerate() {
        assert!(text.contains(NEW_SECRET), "{text}");
        std::fs::write(&config, text).unwrap();
        reload(&w, &child, n + 1).await;
    }
    let log = w.log();
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("config reload failed, keeping the old config"))
        .collect();
    assert_eq!(failures.len(), 3, "{log}");
    assert!(failures[0].contains("(syntax): line "), "{}", failures[0]);
    assert!(failures[1].contains("***@"), "{}", failures[1]);
    assert!(
        failures[2].contains("must not hold a user or password"),
        "{}",
        failures[2]
    );
    for part in ["Zebra7", "Quokka", "Hunter2"] {
        assert!(!log.contains(part), "{part:?} logged:\n{log}");
    }

    // The old config runs on.
    w.append(&reply(2, 0, "after"));
    assert!(
        eventually(WAIT, || w.api.posted(2).len() == 1).await,
        "{}",
        w.log()
    );
    terminate_ok(&mut child, &w.log_path()).await;
    assert!(!w.log().contains("Hunter2"));
}

/// The config as it was before the edit (its own `state.dir`), for `ledger show`.
fn config_with_state(config: &Path, w: &World) -> std::path::PathBuf {
    let text = std::fs::read_to_string(config).unwrap().replace(
        &format!("{:?}", w.dir.path().join("elsewhere")),
        &format!("{:?}", w.dir.path().join("state")),
    );
    let path = w.dir.path().join("ledger.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const APP: &str = "bridge-app";
const FIRST_SECRET: &str = "first-Secret-41";
const SECOND_SECRET: &str = "second-Secret-42";

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_inline_oauth2_client_secret_restarts_the_mailbox() {
    let idp = FakeIdp::start().await.expect("fake IdP starts");
    let dovecot = Dovecot::start_with(DovecotOptions {
        oauth2_introspection_url: Some(idp.introspection_url()),
        ..DovecotOptions::default()
    })
    .expect("dovecot starts");
    dovecot.add_user(USER, PASSWORD).unwrap();
    // During a rotation the app accepts both secrets; the IdP says which one came.
    idp.add_client(APP, Some(FIRST_SECRET));
    idp.add_client_secret(APP, SECOND_SECRET);
    idp.grant_mailbox(APP, USER);
    let w = World {
        dovecot,
        api: FakeThulium::start().await.expect("fake API starts"),
        dir: tempfile::tempdir().expect("temp dir"),
        postgres: None,
    };
    w.api.add_ticket(1, CUSTOMER);
    w.api.add_ticket(2, CUSTOMER);
    let write_config = |secret: &str| {
        let mailbox = format!(
            "[[mailbox]]\nname = \"support\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nusername = {USER:?}\npoll_interval = \"1s\"\n\
             [mailbox.oauth2]\ngrant = \"client_credentials\"\ntoken_url = {:?}\nclient_id = {APP:?}\nclient_secret = {secret:?}\nscope = \"https://outlook.office365.com/.default\"\n",
            w.dovecot.plain_port(),
            idp.token_url()
        );
        w.config_with(&[], "", &mailbox)
    };
    let config = write_config(FIRST_SECRET);
    let mut child = w.spawn_run(&config);
    w.append(&reply(1, 0, "with the first secret"));
    assert!(
        eventually(WAIT, || w.api.posted(1).len() == 1).await,
        "{}",
        w.log()
    );
    let used = |secret: &str| {
        idp.requests()
            .iter()
            .filter(|r| r.client_secret.as_deref() == Some(secret))
            .count()
    };
    assert!(used(FIRST_SECRET) >= 1 && used(SECOND_SECRET) == 0);

    write_config(SECOND_SECRET);
    reload(&w, &child, 1).await;
    // The mailbox restarts with the new secret: a token fetched with it, a new login.
    let restarted = eventually(WAIT, || used(SECOND_SECRET) >= 1).await;
    w.append(&reply(2, 0, "after the secret changed"));
    let posted = eventually(WAIT, || w.api.posted(2).len() == 1).await;
    terminate_ok(&mut child, &w.log_path()).await;
    let log = w.log();
    assert!(
        restarted && stopped(&log, "support"),
        "the changed client_secret did not restart the mailbox (no token with the new secret):\n{log}"
    );
    assert!(posted, "{log}");
    assert_eq!(used(FIRST_SECRET), 1, "{:?}", idp.requests());
    for secret in [FIRST_SECRET, SECOND_SECRET] {
        assert!(!log.contains(secret), "a client secret in the log");
    }
}
