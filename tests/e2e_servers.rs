//! The same end-to-end path on the IMAP servers admins point the bridge at: Cyrus and
//! Courier (personal namespace `INBOX.`, separator `.`, Courier without MOVE), and
//! Dovecot behind a proxy that takes away what Exchange Online and Gmail lack.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;
use testbed::{CapabilityProxy, Courier, Cyrus, FakeThulium, ImapMail, ImapServer, ProxyOptions};

/// A config for one mailbox on 127.0.0.1:`port` with `extra` lines in its table.
fn config(dir: &Path, api: &FakeThulium, mailboxes: &[(&str, &str, u16, &str)]) -> PathBuf {
    let mut text = format!(
        "[thulium]\nurl = {:?}\nuser = {:?}\npassword = {:?}\ntimeout = \"5s\"\n\n",
        api.url(),
        api.user(),
        api.password()
    );
    for (name, user, port, extra) in mailboxes {
        let poll = if extra.contains("poll_interval") {
            ""
        } else {
            "poll_interval = \"1s\"\n"
        };
        text.push_str(&format!(
            "[[mailbox]]\nname = {name:?}\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nusername = {user:?}\npassword = {PASSWORD:?}\n{poll}{extra}\n\n"
        ));
    }
    text.push_str(&format!("[state]\ndir = {:?}\n", dir.join("state")));
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("config written");
    path
}

fn no_ticket() -> Vec<u8> {
    format!(
        "From: {CUSTOMER}\r\nSubject: A question without a ticket\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\n\
         Message-ID: <no-ticket@customer.example>\r\nContent-Type: text/plain\r\n\r\nHello\r\n"
    )
    .into_bytes()
}

/// Post, then each disposition (move into a Polish folder under `INBOX.`, flag, seen,
/// delete), each mail handled once. Another client's mail marked `\Deleted` sits in
/// INBOX throughout: moving without MOVE (Courier: `COPY` + `UID EXPUNGE`) and deleting
/// expunge exactly the bridge's mails, never it.
async fn four_dispositions(server: &dyn ImapServer) {
    server.add_user(USER, PASSWORD).expect("user");
    let api = FakeThulium::start().await.expect("fake API");
    for t in 1..=4 {
        api.add_ticket(t, CUSTOMER);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let port = server.plain_port();
    let with = |on_posted: &str| {
        config(
            dir.path(),
            &api,
            &[(
                "support",
                USER,
                port,
                &format!("on_posted = {on_posted:?}\n"),
            )],
        )
    };

    server
        .append(
            USER,
            "INBOX",
            b"Subject: not ours\r\n\r\nkeep\r\n",
            &["\\Deleted"],
        )
        .expect("append");
    server
        .append(USER, "INBOX", &reply(1, 1, "first"), &[])
        .expect("append");
    server
        .append(USER, "INBOX", &no_ticket(), &[])
        .expect("append");
    let out = once(&with("move:Obsłużone/2026"), &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(api.posted(1).len(), 1);
    let folders = server.list_folders(USER).expect("list");
    assert!(
        folders.iter().any(|f| f == "INBOX.Obsłużone.2026"),
        "{folders:?}"
    );
    assert_eq!(
        server
            .folder_mails(USER, "INBOX.Obsłużone.2026")
            .expect("read")
            .len(),
        1
    );
    assert_eq!(
        server
            .folder_mails(USER, "INBOX.Unmatched")
            .expect("read")
            .len(),
        1
    );
    let not_ours = |m: &ImapMail| m.subject().is_some_and(|s| s == "not ours");
    let inbox = server.folder_mails(USER, "INBOX").expect("read");
    assert!(
        inbox.len() == 1 && not_ours(&inbox[0]) && inbox[0].has_flag("\\Deleted"),
        "the other client's deleted mail survives the move: {inbox:?}"
    );

    let inbox = posted_once_over_two_runs(server, &api, &with("flag:$Posted"), 2).await;
    let ours: Vec<&ImapMail> = inbox.iter().filter(|m| !not_ours(m)).collect();
    assert!(ours.len() == 1 && ours[0].has_flag("$Posted"), "{inbox:?}");

    let inbox = posted_once_over_two_runs(server, &api, &with("seen"), 3).await;
    assert!(
        inbox
            .iter()
            .any(|m| m.has_flag("\\Seen") && m.subject().is_some_and(|s| s.contains("[TH#3]"))),
        "{inbox:?}"
    );

    // Delete: the ledger knows the flagged and the seen mail were posted, so switching
    // to delete removes them too without posting them again; a stranger's mail stays.
    server
        .append(USER, "INBOX", &reply(4, 1, "fourth"), &[])
        .expect("append");
    let out = once(&with("delete"), &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(api.posted(4).len(), 1);
    assert_eq!((api.posted(2).len(), api.posted(3).len()), (1, 1));
    let after = server.folder_mails(USER, "INBOX").expect("read");
    assert!(after.len() == 1 && not_ours(&after[0]), "{after:?}");
}

/// Appends a reply to `ticket` and runs `once` twice: posted once, then left alone by
/// its disposition. The INBOX afterwards.
async fn posted_once_over_two_runs(
    server: &dyn ImapServer,
    api: &FakeThulium,
    config: &Path,
    ticket: u64,
) -> Vec<ImapMail> {
    server
        .append(USER, "INBOX", &reply(ticket, 1, "again?"), &[])
        .expect("append");
    for _ in 0..2 {
        let out = once(config, &[]).await;
        assert!(out.status.success(), "{}", text(&out));
    }
    assert_eq!(
        api.posted(ticket).len(),
        1,
        "disposed, so not handled again"
    );
    server.folder_mails(USER, "INBOX").expect("read")
}

/// Under `run` with a poll interval of 10 minutes, only IDLE can bring a new mail in.
async fn idle_arrival(server: &dyn ImapServer) {
    server.add_user(USER, PASSWORD).expect("user");
    let api = FakeThulium::start().await.expect("fake API");
    api.add_ticket(7, CUSTOMER);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(
        dir.path(),
        &api,
        &[(
            "support",
            USER,
            server.plain_port(),
            "poll_interval = \"10m\"\n",
        )],
    );
    let log = dir.path().join("run.log");
    let mut child = spawn_run(&config, &log);
    let watching = eventually(Duration::from_secs(30), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("watching"))
    })
    .await;
    assert!(
        watching,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // A first mail, posted by the first pass (or IDLE); then one that only the server
    // telling us can bring in before the 10-minute poll.
    server
        .append(USER, "INBOX", &reply(7, 1, "first"), &[])
        .expect("append");
    let first = eventually(Duration::from_secs(30), || api.posted(7).len() == 1).await;
    server
        .append(USER, "INBOX", &reply(7, 2, "via idle"), &[])
        .expect("append");
    let posted = first && eventually(Duration::from_secs(30), || api.posted(7).len() == 2).await;
    signal(&child, "TERM");
    let exit = wait_exit(&mut child, Duration::from_secs(20)).await;
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(posted, "{log}");
    assert!(log.contains("idle=true"), "{log}");
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cyrus_posts_and_disposes_in_its_inbox_namespace() {
    four_dispositions(&Cyrus::start().expect("cyrus starts")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn courier_posts_and_disposes_in_its_inbox_namespace_without_move() {
    four_dispositions(&Courier::start().expect("courier starts")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cyrus_announces_a_new_mail_in_idle() {
    idle_arrival(&Cyrus::start().expect("cyrus starts")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn courier_announces_a_new_mail_in_idle() {
    idle_arrival(&Courier::start().expect("courier starts")).await;
}

/// Dovecot behind the proxy, with a second, direct user for a mailbox that keeps working.
struct Proxied {
    w: World,
    proxy: CapabilityProxy,
}

async fn proxied(options: ProxyOptions) -> Proxied {
    let w = World::start().await;
    w.dovecot.add_user("sales", PASSWORD).expect("user");
    let proxy = CapabilityProxy::start(w.dovecot.plain_port(), options)
        .await
        .expect("proxy starts");
    Proxied { w, proxy }
}

impl Proxied {
    fn config(&self, extra: &str, with_direct: bool, sections: &str) -> PathBuf {
        let mut mailboxes = vec![MailboxOpts {
            port: Some(self.proxy.port()),
            extra: extra.into(),
            ..MailboxOpts::default()
        }];
        if with_direct {
            mailboxes.push(MailboxOpts {
                name: "sales".into(),
                user: "sales".into(),
                ..MailboxOpts::default()
            });
        }
        self.w.config_with(&mailboxes, "", sections)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_move_the_fallback_expunges_only_its_own_mails() {
    let p = proxied(ProxyOptions {
        hide_move: true,
        ..ProxyOptions::default()
    })
    .await;
    p.w.api.add_ticket(1, CUSTOMER);
    // Another client's mail, marked \Deleted but not expunged: it must survive.
    p.w.dovecot
        .append(
            USER,
            "INBOX",
            b"Subject: someone else's\r\n\r\nkeep me\r\n",
            &["\\Deleted"],
        )
        .expect("append");
    p.w.append(&reply(1, 1, "hello"));
    let config = p.config("", false, "");
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(p.w.api.posted(1).len(), 1);
    assert_eq!(p.w.folder("Processed").len(), 1);
    let inbox = p.w.folder("INBOX");
    assert_eq!(inbox.len(), 1, "the other client's mail is still there");
    assert!(inbox[0].has_flag("\\Deleted"));
    assert!(
        p.proxy.refused_commands().is_empty(),
        "no MOVE was tried: {:?}",
        p.proxy.refused_commands()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_move_and_uidplus_moving_is_refused_and_flags_work() {
    let p = proxied(ProxyOptions {
        hide_move: true,
        hide_uidplus: true,
        ..ProxyOptions::default()
    })
    .await;
    p.w.api.add_ticket(1, CUSTOMER);
    p.w.api.add_ticket(2, CUSTOMER);
    let config = p.config("", false, "");
    let out = command(&config, &["check"]).await;
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("neither") && said.contains("flag:<keyword> or seen"),
        "{said}"
    );

    // Under run: that mailbox is down with the reason, the other one posts.
    let port = free_port();
    let config = p.config(
        "",
        true,
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    p.w.dovecot
        .append("sales", "INBOX", &reply(2, 1, "to sales"), &[])
        .expect("append");
    let log = p.w.dir.path().join("run.log");
    let mut child = spawn_run(&config, &log);
    let posted = eventually(Duration::from_secs(30), || p.w.api.posted(2).len() == 1).await;
    let url = format!("http://127.0.0.1:{port}/healthz");
    let health = probe_until(Duration::from_secs(30), || get(&url), |(s, _)| *s == 503).await;
    signal(&child, "TERM");
    let exit = wait_exit(&mut child, Duration::from_secs(20)).await;
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(posted, "{log}");
    let (_, health) = health.unwrap_or_else(|(s, h)| panic!("{s} {h}\n{log}"));
    assert!(
        health.contains("\"support\"") && health.contains("server lacks a needed feature"),
        "{health}"
    );
    assert!(log.contains("needs MOVE or UIDPLUS"), "{log}");
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");

    // With a flag, the same server is fine.
    p.w.append(&reply(1, 1, "flagged"));
    let flags = "on_posted = \"flag:$Posted\"\non_unmatched = \"flag:$Unmatched\"\n\
                 on_ignored = \"flag:$Ignored\"\non_failed = \"flag:$Failed\"\n\
                 on_unverified = \"flag:$Unverified\"\n";
    let out = once(&p.config(flags, false, ""), &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(p.w.api.posted(1).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_kept_keywords_a_flag_disposition_is_refused() {
    let p = proxied(ProxyOptions {
        no_keywords: true,
        ..ProxyOptions::default()
    })
    .await;
    let config = p.config("on_posted = \"flag:$Posted\"\n", false, "");
    let out = command(&config, &["check"]).await;
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("PERMANENTFLAGS") && said.contains("move:<folder> or seen"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_idle_it_polls_and_says_so_once() {
    let p = proxied(ProxyOptions {
        hide_idle: true,
        ..ProxyOptions::default()
    })
    .await;
    p.w.api.add_ticket(1, CUSTOMER);
    let config = p.config("", false, "");
    let log = p.w.dir.path().join("run.log");
    let mut child = spawn_run(&config, &log);
    assert!(
        eventually(Duration::from_secs(30), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("does not offer IDLE"))
        })
        .await
    );
    p.w.append(&reply(1, 1, "polled"));
    let posted = eventually(Duration::from_secs(30), || p.w.api.posted(1).len() == 1).await;
    signal(&child, "TERM");
    let exit = wait_exit(&mut child, Duration::from_secs(20)).await;
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(posted, "{log}");
    assert_eq!(log.matches("does not offer IDLE").count(), 1, "{log}");
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_drops_idle_on_a_schedule_is_reconnected_without_a_log_storm() {
    let p = proxied(ProxyOptions {
        drop_after_idle: Some(Duration::from_millis(500)),
        ..ProxyOptions::default()
    })
    .await;
    p.w.api.add_ticket(1, CUSTOMER);
    let config = p.config("poll_interval = \"10m\"\n", false, "");
    let log = p.w.dir.path().join("run.log");
    let mut child = spawn_run(&config, &log);
    assert!(
        eventually(Duration::from_secs(30), || p.proxy.dropped_connections()
            >= 4)
        .await
    );
    p.w.append(&reply(1, 1, "after the drops"));
    let posted = eventually(Duration::from_secs(30), || p.w.api.posted(1).len() == 1).await;
    signal(&child, "TERM");
    let exit = wait_exit(&mut child, Duration::from_secs(20)).await;
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(posted, "{log}");
    assert!(
        !log.contains("mailbox trouble"),
        "routine drops are no trouble: {log}"
    );
    assert_eq!(
        log.matches("ended the connection while idle").count(),
        1,
        "said once: {log}"
    );
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
}
