//! `once`, `check` and `--dry-run` against a real Dovecot and the fake Thulium API.

mod support;

use support::*;
use testbed::Fault;

fn html_reply(ticket: u64) -> Vec<u8> {
    format!(
        "From: Anna <{CUSTOMER}>\r\nSubject: Odp: [TH#{ticket}] Faktura\r\nDate: Sun, 29 Mar 2026 01:30:00 +0000\r\n\
         Message-ID: <html-{ticket}@customer.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDziekuje, dziala.\r\n\r\nW dniu 28.03.2026 o 10:00, Support pisze:\r\n> stare\r\n\
         --b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<div>Dzi\u{119}kuj\u{119}, <b>dzia\u{142}a</b>.<script>alert(1)</script></div>\
         <div class=\"gmail_quote\">W dniu 28.03.2026 o 10:00, Support pisze:<blockquote>stare</blockquote></div>\r\n--b--\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_are_posted_and_every_mail_goes_where_it_belongs() {
    let w = World::start().await;
    w.api.add_ticket(1001, CUSTOMER);
    w.api.add_ticket(1002, CUSTOMER);
    w.append(&html_reply(1001));
    w.append(&reply(1002, 1, "Plain thanks.\r\n\r\n-- \r\nAnna"));
    w.append(b"From: x@customer.example\r\nSubject: Question without a tag\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\nMessage-ID: <nt@x>\r\n\r\nHi\r\n");
    w.append(b"From: x@customer.example\r\nSubject: Out of office [TH#1001]\r\nAuto-Submitted: auto-replied\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\nMessage-ID: <ar@x>\r\n\r\naway\r\n");
    w.append(&reply(4040, 1, "to a ticket that does not exist"));

    let out = once(&w.config(), &[]).await;
    assert!(out.status.success(), "{}", text(&out));

    let html = w.api.posted(1001);
    assert_eq!(html.len(), 1, "{html:?}");
    assert_eq!(html[0].body_type, "HTML");
    // 01:30 UTC on the day Warsaw moves to summer time is 03:30 local.
    assert_eq!(html[0].date.as_deref(), Some("2026-03-29 03:30"));
    assert!(html[0].body.contains("dzia\u{142}a"), "{}", html[0].body);
    assert!(
        !html[0].body.contains("<script") && !html[0].body.contains("stare"),
        "{}",
        html[0].body
    );

    let plain = w.api.posted(1002);
    assert_eq!(plain.len(), 1);
    assert_eq!(plain[0].body_type, "PLAIN");
    assert_eq!(plain[0].date.as_deref(), Some("2026-11-26 10:01"));
    assert!(
        plain[0].body.starts_with("Plain thanks.") && !plain[0].body.contains("Anna"),
        "{:?}",
        plain[0].body
    );

    assert_eq!(w.folder("INBOX").len(), 0);
    assert_eq!(w.folder("Processed").len(), 2);
    assert_eq!(
        w.subjects("Unmatched"),
        vec!["Question without a tag".to_string()]
    );
    assert_eq!(
        w.subjects("Ignored"),
        vec!["Out of office [TH#1001]".to_string()]
    );
    assert_eq!(
        w.subjects("Failed"),
        vec!["Re: [TH#4040] Order question".to_string()]
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("HTTP 404") && log.contains("4040"),
        "the API's rejection is logged:\n{log}"
    );

    // A second pass finds nothing: every mail left the candidate set.
    let again = once(&w.config(), &[]).await;
    assert!(again.status.success());
    assert_eq!(w.api.total_posted(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_failures_end_in_exactly_one_post() {
    let w = World::start().await;
    for t in 1..=3 {
        w.api.add_ticket(t, CUSTOMER);
        w.append(&reply(t, t as u32, "hello"));
    }
    w.api.fail_next(1, Fault::Status(500));
    w.api.fail_next(
        1,
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
    );
    w.api.fail_next(1, Fault::Reset);
    w.api.fail_next(1, Fault::Status(503));
    let out = once(&w.config(), &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    for t in 1..=3 {
        assert_eq!(w.api.posted(t).len(), 1, "ticket {t}\n{}", text(&out));
    }
    assert_eq!(w.folder("Processed").len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_is_read_back_not_posted_twice() {
    let w = World::start().await;
    w.api.add_ticket(7, CUSTOMER);
    w.append(&reply(7, 1, "first"));
    w.api.fail_next(1, Fault::AcceptThenDrop);
    let out = once(&w.config(), &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.posted(7).len(), 1, "{}", text(&out));
    assert_eq!(w.folder("Processed").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_mail_in_two_mailboxes_is_posted_once() {
    let w = World::start().await;
    w.dovecot.add_user("sales", "sales-pw").unwrap();
    w.api.add_ticket(55, CUSTOMER);
    let mail = reply(55, 1, "cc'd to both");
    w.append(&mail);
    w.dovecot.append("sales", "INBOX", &mail, &[]).unwrap();
    let sales = MailboxOpts {
        name: "sales".into(),
        user: "sales".into(),
        password: "sales-pw".into(),
        ..MailboxOpts::default()
    };
    let config = w.config_with(&[MailboxOpts::default(), sales], "", "");
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    // The copy is finished in the same pass, not left for the next.
    assert_eq!(w.folder("Processed").len(), 1, "{}", text(&out));
    assert_eq!(
        w.dovecot.folder_mails("sales", "Processed").unwrap().len(),
        1,
        "{}",
        text(&out)
    );
    let again = once(&config, &[]).await;
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(w.api.posted(55).len(), 1);
    assert_eq!(w.folder("Processed").len(), 1);
    assert_eq!(
        w.dovecot.folder_mails("sales", "Processed").unwrap().len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversize_mail_goes_to_failed_without_download() {
    let w = World::start_with(testbed::DovecotOptions {
        rawlog: true,
        ..Default::default()
    })
    .await;
    w.api.add_ticket(9, CUSTOMER);
    w.api.add_ticket(10, CUSTOMER);
    // 200 KB over a 64 KiB limit, beside a small reply that is downloaded.
    let big = reply(9, 1, &"x".repeat(200_000));
    w.append(&big);
    w.append(&reply(10, 2, "small enough"));
    let config = w.config_with(
        &[MailboxOpts::default()],
        "",
        "[content]\nmax_message_size = \"64 KiB\"\n",
    );
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.posted(9).len(), 0);
    assert_eq!(w.api.posted(10).len(), 1, "{}", text(&out));
    assert_eq!(w.subjects("Failed"), ["Re: [TH#9] Order question"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not downloaded"),
        "{}",
        text(&out)
    );

    // Dovecot's own account of the session: it sent one mail body, the small
    // one, and far fewer bytes than the big mail has.
    assert!(
        eventually(WAIT, || w.dovecot.sessions(USER).len() == 1).await,
        "no session end logged:\n{}",
        w.dovecot.log()
    );
    let session = &w.dovecot.sessions(USER)[0];
    println!("{session:?}");
    assert_eq!(session.body_count, 1, "{session:?}");
    assert!(session.body_bytes < 1_000, "{session:?}");
    assert!(
        session.bytes_out < big.len() as u64 / 10,
        "Dovecot sent {} bytes for a {} byte mail: {session:?}",
        session.bytes_out,
        big.len()
    );
    // And the commands: the big mail (UID 1) was only asked for its size.
    let commands = w.dovecot.imap_commands(USER).unwrap();
    let body_fetches: Vec<&String> = commands
        .iter()
        .filter(|c| c.contains("UID FETCH") && c.contains("BODY"))
        .collect();
    assert_eq!(body_fetches.len(), 1, "{commands:?}");
    assert!(body_fetches[0].contains("UID FETCH 2 "), "{commands:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_to_one_ticket_keep_their_order_under_concurrency() {
    let w = World::start().await;
    for t in 1..=4 {
        w.api.add_ticket(t, CUSTOMER);
    }
    // Appended newest first: the order must come from the Date headers.
    for n in (0..10u32).rev() {
        for t in 1..=4u64 {
            w.append(&reply(t, n, &format!("reply {n}")));
        }
    }
    w.api.set_latency(std::time::Duration::from_millis(5));
    let config = w.config_with(&[MailboxOpts::default()], "concurrency = 8", "");
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    for t in 1..=4 {
        let bodies: Vec<String> = w
            .api
            .posted(t)
            .iter()
            .map(|r| r.body.trim().to_string())
            .collect();
        let expected: Vec<String> = (0..10).map(|n| format!("reply {n}")).collect();
        assert_eq!(bodies, expected, "ticket {t}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_changes_nothing() {
    let w = World::start().await;
    w.api.add_ticket(3, CUSTOMER);
    w.append(&reply(3, 1, "would be posted"));
    let out = once(&w.config(), &["--dry-run"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("would post"),
        "{}",
        text(&out)
    );
    assert_eq!(
        w.api
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count(),
        0
    );
    assert_eq!(w.folder("INBOX").len(), 1);
    assert!(w.folder("INBOX")[0].flags.is_empty());
    assert!(
        !w.dovecot
            .list_folders(USER)
            .unwrap()
            .iter()
            .any(|f| f == "Processed")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_passes_and_fails_where_it_should() {
    let w = World::start().await;
    let out = command(&w.config(), &["check"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout.contains("ok   mailbox support: logged in"),
        "{stdout}"
    );
    assert!(stdout.contains("ok   api:"), "{stdout}");
    for folder in ["Processed", "Unmatched", "Ignored", "Failed"] {
        assert!(
            w.dovecot
                .list_folders(USER)
                .unwrap()
                .iter()
                .any(|f| f == folder),
            "{folder} created"
        );
    }

    let wrong = MailboxOpts {
        password: "wrong".into(),
        ..MailboxOpts::default()
    };
    let config = w.config_with(&[wrong], "", "");
    let text_of = std::fs::read_to_string(&config)
        .unwrap()
        .replace(w.api.password(), "bad-api-pw");
    std::fs::write(&config, text_of).unwrap();
    let out = command(&config, &["check"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout.contains("FAIL mailbox support: login as support refused"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL api:") && stdout.contains("401"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("bad-api-pw") && !stdout.contains("wrong\""),
        "no secret printed: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_credentials_give_a_clear_message_and_lose_nothing() {
    let w = World::start().await;
    w.api.add_ticket(1, CUSTOMER);
    w.append(&reply(1, 1, "hello"));
    let config = w.config();
    let text_of = std::fs::read_to_string(&config)
        .unwrap()
        .replace(w.api.password(), "bad-api-pw");
    std::fs::write(&config, text_of).unwrap();
    let out = once(&config, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("refused our credentials"), "{log}");
    assert!(!log.contains("bad-api-pw"));
    assert_eq!(w.folder("INBOX").len(), 1, "the mail stays for a retry");

    let wrong = MailboxOpts {
        password: "wrong-imap-pw".into(),
        ..MailboxOpts::default()
    };
    let out = once(&w.config_with(&[wrong], "", ""), &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("login as support refused"), "{log}");
    assert!(!log.contains("wrong-imap-pw"));
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_and_starttls_with_a_private_ca() {
    let w = World::start().await;
    w.api.add_ticket(11, CUSTOMER);
    w.api.add_ticket(12, CUSTOMER);
    w.append(&reply(11, 1, "over implicit TLS"));
    let tls = MailboxOpts {
        tls: "tls",
        ..MailboxOpts::default()
    };
    let out = once(&w.config_with(std::slice::from_ref(&tls), "", ""), &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.posted(11).len(), 1);

    w.append(&reply(12, 1, "over STARTTLS"));
    let starttls = MailboxOpts {
        tls: "starttls",
        ..MailboxOpts::default()
    };
    let out = once(&w.config_with(&[starttls], "", ""), &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.posted(12).len(), 1);

    // Without the private CA the certificate is refused, clearly.
    let no_ca = w.config_with(&[tls], "", "");
    let stripped: String = std::fs::read_to_string(&no_ca)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("ca_file"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&no_ca, stripped).unwrap();
    let out = once(&no_ca, &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TLS with 127.0.0.1"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plaintext_to_a_remote_host_is_refused_at_start() {
    let w = World::start().await;
    let config = w.config();
    let remote = std::fs::read_to_string(&config)
        .unwrap()
        .replace("host = \"127.0.0.1\"", "host = \"imap.example.com\"");
    std::fs::write(&config, remote).unwrap();
    let out = once(&config, &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mailbox[0].tls"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_api_exits_1_and_keeps_the_mail() {
    let w = World::start().await;
    w.append(&reply(1, 1, "hello"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = w.config();
    let text_of = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&w.api.url(), &format!("http://127.0.0.1:{closed}/api"));
    std::fs::write(&config, text_of).unwrap();
    let out = once(&config, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("could not be reached"),
        "{}",
        text(&out)
    );
    assert_eq!(w.folder("INBOX").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_per_line_with_the_mail_fields() {
    let w = World::start().await;
    w.api.add_ticket(6, CUSTOMER);
    w.append(&reply(6, 1, "hello"));
    let config = w.config_with(&[MailboxOpts::default()], "", "[log]\nformat = \"json\"\n");
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let mail = events
        .iter()
        .find(|e| e["message"] == "mail handled")
        .expect("a per-mail event");
    assert_eq!(mail["mailbox"], "support");
    assert_eq!(mail["ticket"], 6);
    assert_eq!(mail["outcome"], "posted");
    assert_eq!(mail["message_id"], "<reply-6-1@customer.example>");
    assert!(mail["uid"].is_number());
}

#[tokio::test(flavor = "multi_thread")]
async fn rejections_go_to_failed_with_the_apis_own_message() {
    let w = World::start().await;
    let rejections = [
        (31, 400, "Malformed request: body_type"),
        (32, 409, "Ticket 32 is closed and takes no responses"),
        (33, 422, "The date does not match the format Y-m-d H:i."),
    ];
    for (ticket, status, message) in rejections {
        w.api.add_ticket(ticket, CUSTOMER);
        w.api.fail_next_for(
            ticket,
            1,
            Fault::Reject {
                status,
                message: message.into(),
            },
        );
        w.append(&reply(ticket, 1, "rejected"));
    }
    w.api.add_ticket(34, CUSTOMER);
    w.append(&reply(34, 1, "accepted"));
    let out = once(&w.config(), &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let log = String::from_utf8_lossy(&out.stderr);
    for (ticket, status, message) in rejections {
        let line = log
            .lines()
            .find(|l| l.contains("mail handled") && has_field(l, "ticket", &ticket.to_string()))
            .unwrap_or_else(|| panic!("no event for ticket {ticket}:\n{log}"));
        assert!(
            line.contains("failed")
                && line.contains(&format!("HTTP {status}"))
                && line.contains(message),
            "{line}"
        );
        let (_, shown) = ledger(
            &w.config(),
            &["show", &format!("reply-{ticket}-1@customer.example")],
        )
        .await;
        assert!(
            shown.contains("state:       failed") && shown.contains(message),
            "{shown}"
        );
    }
    assert_eq!(
        w.subjects("Failed"),
        [31, 32, 33].map(|t| format!("Re: [TH#{t}] Order question"))
    );
    assert_eq!(w.subjects("Processed"), ["Re: [TH#34] Order question"]);
    // A rejection is final: one POST each, none repeated by a second pass.
    let again = once(&w.config(), &[]).await;
    assert!(again.status.success(), "{}", text(&again));
    for (ticket, _, _) in rejections {
        let tries = w
            .api
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.ticket == Some(ticket))
            .count();
        assert_eq!(tries, 1, "ticket {ticket}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_never_sees_more_requests_than_thulium_concurrency_and_reaches_it() {
    let w = World::start().await;
    w.dovecot.add_user("sales", "sales-pw").unwrap();
    // 24 tickets, two replies each, spread over two mailboxes: far more work than slots.
    for t in 1..=24 {
        w.api.add_ticket(t, CUSTOMER);
        for n in 0..2 {
            let mail = reply(t, n, &format!("reply {n} to {t}"));
            let user = if t % 2 == 0 { USER } else { "sales" };
            w.dovecot.append(user, "INBOX", &mail, &[]).unwrap();
        }
    }
    // Slow enough that every free slot is taken long before a request ends.
    w.api.set_latency(std::time::Duration::from_millis(150));
    let config = w.config_with(
        &[
            MailboxOpts::default(),
            MailboxOpts::of_user("sales", "sales-pw"),
        ],
        "concurrency = 3",
        "",
    );
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.all_posted().len(), 48, "{}", text(&out));
    assert_eq!(
        w.api.max_posts_in_flight(),
        3,
        "POSTs in flight at once, over both mailboxes"
    );
}

/// `explain` looks In-Reply-To up in the daemon's ledger (read-only), so both place a
/// reply without a ticket number alike; without a readable ledger it says so.
#[tokio::test(flavor = "multi_thread")]
async fn explain_and_the_daemon_agree_on_a_reply_found_by_its_references() {
    let w = World::start().await;
    w.api.add_ticket(61, CUSTOMER);
    w.append(&reply(61, 1, "First, with the tag."));
    let config = w.config();
    assert!(once(&config, &[]).await.status.success());
    let untagged = format!(
        "From: {CUSTOMER}\r\nSubject: Re: Order question\r\nDate: Thu, 26 Nov 2026 12:00:00 +0100\r\n\
         Message-ID: <untagged-61@customer.example>\r\nIn-Reply-To: <reply-61-1@customer.example>\r\n\r\nThe tag got lost.\r\n"
    );
    let eml = w.dir.path().join("untagged.eml");
    std::fs::write(&eml, &untagged).expect("eml");
    let eml = eml.to_str().expect("a temp path is UTF-8");
    let explain = |config: std::path::PathBuf| async move {
        command(&config, &["explain", eml, "--json"]).await
    };

    let out = explain(config.clone()).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (json["action"].as_str(), json["ticket"].as_u64()),
        (Some("post"), Some(61)),
        "{json}"
    );
    w.append(untagged.as_bytes());
    assert!(once(&config, &[]).await.status.success());
    assert_eq!(w.api.posted(61).len(), 2, "the daemon placed it on 61 too");

    let elsewhere = w.dir.path().join("no-ledger.toml");
    let text_of_config = std::fs::read_to_string(&config).expect("config");
    let state = w.dir.path().join("state");
    let moved = text_of_config.replace(
        &format!("{state:?}"),
        &format!("{:?}", w.dir.path().join("empty")),
    );
    assert_ne!(moved, text_of_config);
    std::fs::write(&elsewhere, moved).expect("config");
    let out = explain(elsewhere).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["action"], "skip", "{json}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("In-Reply-To/References are not looked up"),
        "{said}"
    );
}
