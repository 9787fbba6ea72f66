//! Hostile input on the real path: strangers and forged senders never reach a ticket,
//! inputs built to be slow or huge neither stall the mailbox nor take the bridge's
//! memory, and no secret travels or is logged in clear.

mod support;

use std::process::Stdio;
use std::time::Duration;
use support::*;
use testbed::{CapabilityProxy, ProxyOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A mail to `ticket` from `from`, with `headers` above the rest (as a receiving server
/// prepends its Authentication-Results).
fn mail(headers: &str, from: &str, ticket: u64, id: &str, body: &str) -> Vec<u8> {
    format!(
        "{headers}From: <{from}>\r\nTo: support@acme.example\r\nSubject: Re: [TH#{ticket}] Bank details\r\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0100\r\nMessage-ID: <{id}@hostile.test>\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stranger_guessing_a_ticket_number_is_held_and_a_colleague_in_the_thread_is_not() {
    let w = World::start().await;
    w.api.add_ticket(5, CUSTOMER);
    w.append(&reply(5, 1, "the customer's own reply"));
    let out = once(&w.config(), &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.posted(5).len(), 1);

    // The next number up, guessed by a stranger; and a colleague answering in the thread.
    w.append(&mail(
        "",
        "mallory@evil.example",
        5,
        "guess",
        "New bank account: XX00 0000",
    ));
    let colleague = String::from_utf8(mail(
        "",
        "bob@customer.example",
        5,
        "colleague",
        "Anna is away; I confirm the order.",
    ))
    .expect("utf-8")
    .replace(
        "Content-Type:",
        "In-Reply-To: <reply-5-1@customer.example>\r\nContent-Type:",
    );
    w.append(colleague.as_bytes());
    let out = once(&w.config(), &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let posted = w.api.posted(5);
    assert_eq!(posted.len(), 2, "{posted:?}");
    assert!(posted[1].body.contains("I confirm the order"), "{posted:?}");
    assert!(posted.iter().all(|p| !p.body.contains("bank account")));
    assert_eq!(w.subjects("Unverified"), ["Re: [TH#5] Bank details"]);
    assert!(
        stderr(&out).contains(
            "sender mallory@evil.example is not the ticket's customer (anna@customer.example)"
        ),
        "{}",
        text(&out)
    );

    // verify_sender = "warn": the same stranger is posted, and the log says why it
    // would have been held.
    w.append(&mail(
        "",
        "mallory@evil.example",
        5,
        "guess-2",
        "Posted anyway, with a warning",
    ));
    let warn = w.config_with(&[MailboxOpts::default()], "verify_sender = \"warn\"", "");
    let out = once(&warn, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let posted = w.api.posted(5);
    assert_eq!(posted.len(), 3, "{posted:?}");
    assert!(posted[2].body.contains("Posted anyway"), "{posted:?}");
    assert_eq!(w.folder("Unverified").len(), 1, "only the first stranger");
    assert!(
        stderr(&out).lines().any(|l| l.contains(" WARN ")
            && l.contains("sender mallory@evil.example is not the ticket's customer")
            && l.contains("posting anyway (verify_sender = \"warn\")")),
        "{}",
        text(&out)
    );
}

/// Authentication-Results of a forgery, written by the receiving server.
const FORGED: &str = "Authentication-Results: mx.example.com; spf=fail smtp.mailfrom=evil.example; \
                      dmarc=fail (p=none) header.from=customer.example\r\n";

/// A config whose mailbox trusts the Authentication-Results of `authserv_id`, with
/// `thulium` in its `[thulium]` table.
fn trusting(w: &World, authserv_id: &str, thulium: &str) -> std::path::PathBuf {
    w.config_with(
        &[MailboxOpts {
            extra: format!("trusted_authserv_id = [{authserv_id:?}]\n"),
            ..MailboxOpts::default()
        }],
        thulium,
        "",
    )
}

/// Without trusted_authserv_id nothing can tell the forgery: `check` says so.
async fn without_a_trusted_server_check_warns_and_a_forgery_is_posted(w: &World) {
    w.append(&mail(
        FORGED,
        CUSTOMER,
        6,
        "forged-1",
        "untrusted: cancel my order",
    ));
    let plain = w.config();
    let checked = command(&plain, &["check"]).await;
    assert!(
        text(&checked).contains("From is not authenticated (trusted_authserv_id is empty)"),
        "{}",
        text(&checked)
    );
    let out = once(&plain, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.posted(6).len(), 1, "the known limit without it");
}

/// With it: the forgery, a mail whose only pass comes from a header another host
/// wrote, and a mail with no verdict at all are held; the genuine one is posted.
async fn with_a_trusted_server_forgeries_and_mails_without_its_verdict_are_held(w: &World) {
    let trusted = trusting(w, "mx.example.com", "");
    w.append(&mail(FORGED, CUSTOMER, 6, "forged-2", "cancel my order"));
    w.append(&mail(
        &format!("{FORGED}Authentication-Results: evil.example; dmarc=pass header.from=customer.example\r\n"),
        CUSTOMER,
        6,
        "forged-3",
        "cancel it now",
    ));
    w.append(&mail("", CUSTOMER, 6, "no-verdict", "no header at all"));
    w.append(&mail(
        "Authentication-Results: mx.example.com; dkim=pass header.d=customer.example; \
         dmarc=pass (p=reject) header.from=customer.example\r\n",
        CUSTOMER,
        6,
        "genuine",
        "the genuine reply",
    ));
    let out = once(&trusted, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let posted = w.api.posted(6);
    assert_eq!(posted.len(), 2, "{posted:?}");
    assert!(posted[1].body.contains("the genuine reply"), "{posted:?}");
    assert_eq!(w.folder("Unverified").len(), 3);
    let said = stderr(&out);
    assert_eq!(
        said.matches("is not authenticated by the receiving server")
            .count(),
        3,
        "{said}"
    );
    assert!(said.contains("dmarc=fail"), "{said}");
}

/// "topmost": the receiving server's own header is the first one, whatever its id.
async fn topmost_trusts_the_first_header_whatever_its_id(w: &World) {
    let topmost = trusting(w, "topmost", "");
    w.append(&mail(
        "Authentication-Results: spf=fail smtp.mailfrom=evil.example; dmarc=fail action=none \
         header.from=customer.example\r\nAuthentication-Results: mx.example.com; dmarc=pass \
         header.from=customer.example\r\n",
        CUSTOMER,
        6,
        "topmost-forged",
        "forged below the real verdict",
    ));
    let out = once(&topmost, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.posted(6).len(), 2);
    assert_eq!(w.folder("Unverified").len(), 4);
}

/// verify_sender = "warn": a forgery the trusted server caught is posted, and logged.
async fn warn_posts_a_caught_forgery_and_logs_it(w: &World) {
    let warn = trusting(w, "mx.example.com", "verify_sender = \"warn\"");
    w.append(&mail(
        FORGED,
        CUSTOMER,
        6,
        "forged-4",
        "posted with a warning",
    ));
    let out = once(&warn, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let posted = w.api.posted(6);
    assert_eq!(posted.len(), 3, "{posted:?}");
    assert!(
        posted[2].body.contains("posted with a warning"),
        "{posted:?}"
    );
    assert_eq!(w.folder("Unverified").len(), 4);
    assert!(
        stderr(&out).lines().any(|l| l.contains(" WARN ")
            && l.contains("is not authenticated by the receiving server")
            && l.contains("posting anyway (verify_sender = \"warn\")")),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_from_is_caught_only_where_the_receiving_server_is_trusted() {
    let w = World::start().await;
    w.api.add_ticket(6, CUSTOMER);
    // In this order: each step counts what the steps before it posted and held.
    without_a_trusted_server_check_warns_and_a_forgery_is_posted(&w).await;
    with_a_trusted_server_forgeries_and_mails_without_its_verdict_are_held(&w).await;
    topmost_trusts_the_first_header_whatever_its_id(&w).await;
    warn_posts_a_caught_forgery_and_logs_it(&w).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_giant_subject_and_an_entity_flood_neither_stall_nor_block_the_next_mail() {
    let w = World::start().await;
    w.api.add_ticket(7, CUSTOMER);
    w.api.add_ticket(8, CUSTOMER);
    // 200,000 distinct tags: ambiguous, decided without reading them all.
    let tags: String = (1..=200_000).map(|n| format!("[#{n}] ")).collect();
    w.append(
        format!(
            "From: <{CUSTOMER}>\r\nSubject: {tags}\r\nMessage-ID: <tags@hostile.test>\r\n\r\nhi\r\n"
        )
        .as_bytes(),
    );
    // 2 MB of `&amp;` in an HTML reply.
    let flood = "&amp;".repeat(400_000);
    w.append(
        format!(
            "From: <{CUSTOMER}>\r\nSubject: Re: [TH#7] Flood\r\nMessage-ID: <flood@hostile.test>\r\n\
             Content-Type: text/html\r\n\r\n<p>Before {flood} after</p>\r\n"
        )
        .as_bytes(),
    );
    w.append(&reply(8, 1, "the mail after them"));
    let out = once(&w.config(), &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.folder("Unmatched").len(), 1, "the tag flood is ambiguous");
    let flood_post = w.api.posted(7);
    assert_eq!(flood_post.len(), 1);
    assert!(
        flood_post[0].body.starts_with("<p>Before &amp;&amp;"),
        "{}",
        &flood_post[0].body[..60.min(flood_post[0].body.len())]
    );
    assert_eq!(w.api.posted(8).len(), 1);
    assert!(w.folder("INBOX").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mail_the_server_gives_no_size_for_is_never_downloaded() {
    let w = World::start_with(testbed::DovecotOptions {
        rawlog: true,
        ..Default::default()
    })
    .await;
    let proxy = CapabilityProxy::start(
        w.dovecot.plain_port(),
        ProxyOptions {
            hide_size: true,
            ..ProxyOptions::default()
        },
    )
    .await
    .expect("proxy");
    w.api.add_ticket(9, CUSTOMER);
    w.append(&reply(9, 1, "sizeless"));
    let config = w.config_with(
        &[MailboxOpts {
            port: Some(proxy.port()),
            ..MailboxOpts::default()
        }],
        "",
        "",
    );
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(w.api.posted(9).is_empty());
    assert_eq!(w.subjects("Failed"), ["Re: [TH#9] Order question"]);
    assert!(
        stderr(&out).contains("the server gave no size for it"),
        "{}",
        text(&out)
    );
    let commands = w.dovecot.imap_commands(USER).expect("rawlog");
    assert!(
        commands.iter().any(|c| c.contains("RFC822.SIZE")),
        "{commands:?}"
    );
    assert!(
        !commands
            .iter()
            .any(|c| c.contains("UID FETCH") && c.contains("BODY")),
        "{commands:?}"
    );
}

/// A local "API" answering every request with 200 and a body that never ends
/// (`chunked`) or claims to be 10 GB long; returns its URL and how many bytes it sent.
async fn endless_api(chunked: bool) -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = if chunked {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
                };
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let block = "[".repeat(64 * 1024);
                let piece = if chunked {
                    format!("{:x}\r\n{block}\r\n", block.len())
                } else {
                    block
                };
                while socket.write_all(piece.as_bytes()).await.is_ok() {
                    counter.fetch_add(piece.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    (url, sent)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_api_answer_is_cut_short_and_the_mail_kept() {
    for chunked in [true, false] {
        let w = World::start().await;
        w.append(&reply(11, 1, "kept through an endless answer"));
        let (url, sent) = endless_api(chunked).await;
        let config = w.config();
        let text_before = std::fs::read_to_string(&config).expect("config");
        std::fs::write(
            &config,
            text_before.replace(
                &format!("url = {:?}", w.api.url()),
                &format!("url = {url:?}"),
            ),
        )
        .expect("config");
        let out = tokio::time::timeout(Duration::from_secs(120), once(&config, &[]))
            .await
            .expect("once ends");
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let said = stderr(&out);
        assert!(said.contains("the answer is larger than"), "{said}");
        assert_eq!(w.subjects("INBOX"), ["Re: [TH#11] Order question"]);
        let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
        println!("chunked={chunked}: the endless API got to send {sent} bytes");
        assert!(sent < 64 << 20, "read far past the cap: {sent} bytes");
    }
}

/// `check` with the config `text`.
async fn check(w: &World, text: String) -> std::process::Output {
    let path = w.dir.path().join("variant.toml");
    std::fs::write(&path, text).expect("config");
    command(&path, &["check"]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_to_a_remote_api_or_token_endpoint_is_a_config_error() {
    let w = World::start().await;
    let base = std::fs::read_to_string(w.config()).expect("config");
    let api_url = format!("url = {:?}", w.api.url());

    let remote = base.replace(&api_url, "url = \"http://thulium.example.com/api\"");
    let out = check(&w, remote.clone()).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("thulium.url") && stderr(&out).contains("allow_insecure"),
        "{}",
        text(&out)
    );
    // Allowed in so many words, it is no config error (the host does not resolve: 1).
    let allowed = remote.replace("[thulium]\n", "[thulium]\nallow_insecure = true\n");
    let out = check(&w, allowed).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    let oauth = base
        .replace(
            &format!("password = {PASSWORD:?}\n"),
            "",
        )
        .replace(
            "[state]",
            "[mailbox.oauth2]\ngrant = \"client_credentials\"\ntoken_url = \"http://login.example.com/token\"\n\
             client_id = \"id\"\nclient_secret = \"secret\"\nscope = \"https://outlook.office365.com/.default\"\n\n[state]",
        );
    let out = check(&w, oauth).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("token_url") && stderr(&out).contains("allow_insecure"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_rust_log_directive_uncovers_a_secret() {
    let w = World::start().await;
    w.api.add_ticket(12, CUSTOMER);
    w.append(&reply(12, 1, "logged at trace"));
    let config = w.config_with(&[MailboxOpts::default()], "", "[log]\nlevel = \"warn\"\n");
    let log = w.dir.path().join("trace.log");
    let file = std::fs::File::create(&log).expect("log");
    let mut c = bin();
    c.env(
        "RUST_LOG",
        "trace,async_imap=trace,async_imap::client=trace,imap_proto=trace,\
         reqwest=trace,reqwest::connect=trace,hyper=trace,hyper_util=trace,rustls=trace",
    )
    .arg("--config")
    .arg(&config)
    .arg("once")
    .stdout(Stdio::null())
    .stderr(file);
    let out = output(c).await;
    assert!(out.status.success(), "{}", read(&log));
    assert_eq!(w.api.posted(12).len(), 1);
    let said = read(&log);
    assert!(
        said.contains("DEBUG") && said.contains("Thulium API answered"),
        "RUST_LOG took effect over level = \"warn\":\n{said}"
    );
    let basic = base64_basic(w.api.user(), w.api.password());
    for secret in [PASSWORD, w.api.password(), basic.as_str()] {
        assert!(!said.contains(secret), "{secret:?} in the log");
    }
}

fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// A reply to `ticket` from the customer: `content_type` and `body` as given.
fn reply_of(ticket: u64, id: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "From: <{CUSTOMER}>\r\nTo: support@acme.example\r\nSubject: Re: [TH#{ticket}] Order\r\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0100\r\nMessage-ID: <{id}@hostile.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// `Content-Disposition` parameters: one file name in `n` RFC 2231 pieces.
fn file_name_pieces(n: usize) -> String {
    let mut name = String::from("filename*0*=utf-8''a");
    for i in 1..n {
        name.push_str(&format!(";\r\n filename*{i}*=b"));
    }
    name
}

#[tokio::test(flavor = "multi_thread")]
async fn giant_tags_and_mime_parameters_are_read_within_their_caps_and_nothing_unseen_is_posted() {
    let w = World::start().await;
    for ticket in 21..=26 {
        w.api.add_ticket(ticket, CUSTOMER);
    }
    // One tag with 276,007 distinct attribute names (2 MiB); past the first 64, even
    // an allowed attribute is not read.
    let names: String = (0..276_007).map(|i| format!(" a{i:x}")).collect();
    w.append(&reply_of(
        21,
        "attributes",
        "text/html",
        &format!("<p{names}>Hello</p>"),
    ));
    let names: String = (0..1_000).map(|i| format!(" b{i}")).collect();
    w.append(&reply_of(
        22,
        "title",
        "text/html",
        &format!("<p title=\"kept\"{names} lang=\"dropped\">Hi</p>"),
    ));
    // A file name in 100,000 RFC 2231 pieces: the first 100 are read.
    w.append(&reply_of(
        23,
        "pieces",
        "multipart/mixed; boundary=b",
        &format!(
            "--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\nContent-Type: application/pdf\r\n\
             Content-Disposition: attachment; {}\r\n\r\nx\r\n--b--",
            file_name_pieces(100_000)
        ),
    ));
    // The same hidden in a base64 attached message, where no pass over the bytes sees it.
    let inner = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!(
            "From: b@customer.example\r\nSubject: inner\r\nContent-Type: text/plain\r\n\
             Content-Disposition: attachment; {}\r\n\r\nx\r\n",
            file_name_pieces(20_000)
        ))
    };
    w.append(&reply_of(
        24,
        "encoded",
        "multipart/mixed; boundary=b",
        &format!(
            "--b\r\nContent-Type: text/plain\r\n\r\nForwarded.\r\n--b\r\nContent-Type: message/rfc822\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{inner}\r\n--b--"
        ),
    ));
    // Text turned around, hidden, or spelt with invisible characters.
    w.append(&reply_of(
        25,
        "invisible",
        "text/html; charset=utf-8",
        "<div dir=\"rtl\"><bdo dir=\"rtl\">Pay 1000</bdo> now</div>\
         <p>pay\u{200b}pal\u{2060}\u{e0041}\u{e0042} 👩\u{200d}💻 \u{202e}txt.exe</p>\
         <p style=\"color:#fefefe;background-color:#fff\">white on white</p>\
         <p style=\"font-size:1px\">tiny</p>\
         <p style=\"color:red;font-family:u&#x202E;rl(https://t.example/x)\">styled</p>",
    ));
    w.append(&reply(26, 1, "the mail after them"));

    let out = once(&w.config(), &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let body = |ticket| {
        let posted = w.api.posted(ticket);
        assert_eq!(posted.len(), 1, "ticket {ticket}: {posted:?}");
        posted[0].body.clone()
    };
    assert_eq!(body(21), "<p>Hello</p>");
    assert_eq!(body(22), "<p title=\"kept\">Hi</p>");
    assert_eq!(
        body(23),
        format!("See attached.\n\nAttachments: a{} (1 B)", "b".repeat(99))
    );
    assert_eq!(
        body(25),
        "<div>Pay 1000 now</div><p>paypal 👩\u{200d}💻 txt.exe</p><p>white on white</p>\
         <p>tiny</p><p>styled</p>"
    );
    assert!(body(26).contains("the mail after them"));
    assert!(w.api.posted(24).is_empty());
    assert_eq!(w.subjects("Failed"), ["Re: [TH#24] Order"]);
    assert!(
        stderr(&out).contains("an attached message has a Content-Type or Content-Disposition field over 100 parameters"),
        "{}",
        text(&out)
    );
    assert!(w.folder("INBOX").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_ticket_gets_at_most_50_uploads_only_real_cc_and_a_subject_without_controls() {
    let w = World::start().await;
    let mut body = String::from("--b\r\nContent-Type: text/plain\r\n\r\nPlease help.\r\n");
    for i in 0..300 {
        body.push_str(&format!(
            "--b\r\nContent-Disposition: attachment; filename=\"empty-{i}.txt\"\r\n\r\n\r\n"
        ));
    }
    body.push_str("--b--\r\n");
    w.append(
        format!(
            "From: Anna <{CUSTOMER}>\r\nTo: help@acme.example\r\n\
             Cc: '@', Bob <bob@customer.example>, <@>, \"Eve\" <eve@\u{202e}customer.example>\r\n\
             Subject: =?utf-8?B?{}?=\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\n\
             Message-ID: <many@hostile.test>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=b\r\n\r\n{body}",
            {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .encode("Printer \u{202e}fdp.exe\u{200b}\u{e0041} broken")
            }
        )
        .as_bytes(),
    );
    let config = w.config_with(
        &[MailboxOpts {
            extra:
                "on_unmatched = \"new_ticket\"\n[mailbox.new_ticket]\nto = \"help@acme.example\"\n"
                    .into(),
            ..MailboxOpts::default()
        }],
        "",
        "",
    );
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let created = w.api.created_tickets();
    assert_eq!(created.len(), 1, "{}", text(&out));
    let t = &created[0];
    assert_eq!(t.subject, "Printer fdp.exe broken");
    assert_eq!(t.cc, ["bob@customer.example"]);
    assert_eq!(t.attachments.len(), 50);
    assert_eq!(w.api.uploads().len(), 50);
    assert!(
        t.body.contains(
            "Not attached, over the limits (20 MiB each, 40 MiB together, 50 files): \
             empty-50.txt (0 B), empty-51.txt (0 B), "
        ) && t.body.contains("empty-99.txt (0 B), and 200 more"),
        "{}",
        t.body
    );
}
