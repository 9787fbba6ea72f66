//! Operating the daemon: systemd notifications, metrics, health, many mailboxes, secrets.

mod support;

use base64::Engine as _;
use std::os::unix::net::UnixDatagram;
use support::*;
use testbed::Fault;

fn log_of(w: &World) -> String {
    w.log()
}

#[test]
fn metric_reads_exactly_the_sample_asked_for() {
    let text = "# HELP thulium_bridge_mails_total Mails handled\n\
        # TYPE thulium_bridge_mails_total counter\n\
        thulium_bridge_mails_total{mailbox=\"support\",outcome=\"posted\"} 20\n\
        thulium_bridge_mails_total{outcome=\"failed\",mailbox=\"support\"} 3\n\
        thulium_bridge_mails_total{mailbox=\"sup\\\"port\",outcome=\"posted\"} 7 1700000000000\n\
        thulium_bridge_api_up 0\n\
        thulium_bridge_api_request_duration_seconds_count 12\n\
        thulium_bridge_api_request_duration_seconds_bucket{le=\"+Inf\"} 12\n";
    let mails = |mailbox: &str, outcome: &str| {
        metric(
            text,
            "thulium_bridge_mails_total",
            &[("mailbox", mailbox), ("outcome", outcome)],
        )
    };
    assert_eq!(mails("support", "posted"), Some(20.0));
    assert_ne!(mails("support", "posted"), Some(2.0));
    assert_eq!(mails("support", "failed"), Some(3.0), "labels in any order");
    assert_eq!(
        mails("sup\"port", "posted"),
        Some(7.0),
        "escapes, a timestamp"
    );
    assert_eq!(mails("support", "ignored"), None);
    assert_eq!(
        metric(
            text,
            "thulium_bridge_mails_total",
            &[("mailbox", "support")]
        ),
        None,
        "the whole label set must match"
    );
    assert_eq!(metric(text, "thulium_bridge_api_up", &[]), Some(0.0));
    assert_eq!(
        metric(text, "thulium_bridge_api_request_duration_seconds", &[]),
        None,
        "a name is not a prefix"
    );
    assert_eq!(
        metric(
            text,
            "thulium_bridge_api_request_duration_seconds_count",
            &[]
        ),
        Some(12.0)
    );
    assert_eq!(
        metric(
            text,
            "thulium_bridge_api_request_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        Some(12.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn systemd_hears_ready_status_watchdog_reloading_and_stopping_in_order() {
    let w = World::start().await;
    let socket_path = w.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let config = w.config();
    let log = std::fs::File::create(w.dir.path().join("run.log")).unwrap();
    let child = Daemon(
        bin()
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "400000")
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let recv = move |socket: &UnixDatagram| {
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).expect("a notification in time");
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    let socket = std::sync::Arc::new(socket);
    let next_until = |want: &'static str| {
        let socket = socket.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut seen = Vec::new();
                loop {
                    let m = recv(&socket);
                    seen.push(m.clone());
                    if m.starts_with(want) {
                        return seen;
                    }
                }
            })
            .await
            .unwrap()
        }
    };
    let before_ready = next_until("READY=1").await;
    assert!(
        !before_ready.iter().any(|m| m.starts_with("STOPPING")),
        "{before_ready:?}"
    );
    let seen = next_until("WATCHDOG=1").await;
    println!("after READY: {seen:?}");
    let seen = next_until("STATUS=").await;
    assert!(
        seen.last()
            .unwrap()
            .contains("1 mailboxes (1 connected), 0 posted"),
        "{seen:?}"
    );
    signal(&child, "HUP");
    next_until("RELOADING=1").await;
    next_until("READY=1").await;
    signal(&child, "TERM");
    next_until("STOPPING=1").await;
    let mut child = child;
    assert_eq!(
        wait_exit(&mut child, WAIT).await.and_then(|s| s.code()),
        Some(0),
        "{}",
        log_of(&w)
    );
}

/// `thulium_bridge_mails_total` of the support mailbox for `outcome`.
fn mails(m: &str, outcome: &str) -> Option<f64> {
    metric(
        m,
        "thulium_bridge_mails_total",
        &[("mailbox", "support"), ("outcome", outcome)],
    )
}

/// The metrics once every mail is handled and a pass has succeeded.
async fn metrics_after_the_pass(w: &World, port: u16) -> String {
    // Every mail handled once the four mails have left INBOX (counted before disposal).
    assert!(
        eventually(WAIT, || w.folder("INBOX").is_empty()).await,
        "{}",
        w.log()
    );
    probe_until(
        WAIT,
        || metrics(port),
        |m| {
            metric(
                m,
                "thulium_bridge_last_success_timestamp_seconds",
                &[("mailbox", "support")],
            )
            .is_some()
        },
    )
    .await
    .unwrap_or_else(|m| panic!("no pass succeeded:\n{m}"))
}

/// Two posted, one unmatched, one ignored, nothing else.
fn the_outcomes_are_counted(m: &str) {
    println!("{m}");
    assert_eq!(mails(m, "posted"), Some(2.0), "{m}");
    assert_eq!(mails(m, "unmatched"), Some(1.0), "{m}");
    assert_eq!(mails(m, "ignored"), Some(1.0), "{m}");
    for outcome in ["duplicate", "failed", "retried", "unverified"] {
        assert_eq!(mails(m, outcome).unwrap_or(0.0), 0.0, "{outcome}: {m}");
    }
}

/// Every request the API answered, counted once: the two POSTs, and the ticket
/// reads of verify_sender when it is on, each timed; and the mailbox is up.
fn the_api_requests_are_counted(w: &World, m: &str) {
    assert_eq!(posts(&w.api), 2);
    assert_eq!(answered(w, 200), w.api.requests().len(), "only 200s");
    assert_eq!(
        metric(m, "thulium_bridge_api_requests_total", &[("status", "200")]),
        Some(answered(w, 200) as f64),
        "{m}"
    );
    assert_eq!(
        metric(m, "thulium_bridge_mailbox_up", &[("mailbox", "support")]),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(m, "thulium_bridge_api_request_duration_seconds_count", &[]),
        Some(w.api.requests().len() as f64),
        "{m}"
    );
}

/// The last success is a Unix time of this run.
fn the_last_success_is_now(m: &str) {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let last = metric(
        m,
        "thulium_bridge_last_success_timestamp_seconds",
        &[("mailbox", "support")],
    )
    .unwrap_or_default();
    assert!(
        (started - 3600.0..=started + 60.0).contains(&last),
        "a Unix time of this run: {last} ({started})"
    );
}

/// /healthz is 200, then 503 naming the mailbox (and `mailbox_up` 0) while Dovecot is
/// stopped, then 200 again once it is back.
async fn healthz_follows_the_mailbox(w: &World, port: u16) {
    let base = format!("http://127.0.0.1:{port}");
    let (status, body) = get(&format!("{base}/healthz")).await;
    assert_eq!(status, 200, "{body}");

    w.dovecot.stop().unwrap();
    let healthz = format!("{base}/healthz");
    let last = probe_until(WAIT, || get(&healthz), |(status, _)| *status == 503)
        .await
        .unwrap_or_else(|last| panic!("{last:?}\n{}", w.log()));
    assert!(
        last.1.contains("\"mailbox\":\"support\"") && last.1.contains("down_since"),
        "{}",
        last.1
    );
    let m = metrics(port).await;
    assert_eq!(
        metric(&m, "thulium_bridge_mailbox_up", &[("mailbox", "support")]),
        Some(0.0),
        "{m}"
    );

    w.dovecot.restart().unwrap();
    if let Err(last) = probe_until(WAIT, || get(&healthz), |(status, _)| *status == 200).await {
        panic!("{last:?}\n{}", w.log());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_outcomes_and_healthz_follows_the_mailboxes() {
    let w = World::start().await;
    w.api.add_ticket(1, CUSTOMER);
    w.api.add_ticket(2, CUSTOMER);
    w.append(&reply(1, 1, "one"));
    w.append(&reply(2, 1, "two"));
    w.append(b"From: a@b.example\r\nSubject: no tag\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\nMessage-ID: <u@b>\r\n\r\nx\r\n");
    w.append(b"From: a@b.example\r\nSubject: [#1] away\r\nAuto-Submitted: auto-replied\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\nMessage-ID: <i@b>\r\n\r\nx\r\n");
    let port = free_port();
    let config = w.config_with_metrics(port);
    let mut child = w.spawn_run(&config);
    let m = metrics_after_the_pass(&w, port).await;
    the_outcomes_are_counted(&m);
    the_api_requests_are_counted(&w, &m);
    the_last_success_is_now(&m);
    healthz_follows_the_mailbox(&w, port).await;
    terminate_ok(&mut child, &w.log_path()).await;
}

/// One raw request on a fresh connection; the whole answer (until the server closes).
async fn raw_request(port: u16, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    c.write_all(request.as_bytes()).await.expect("request sent");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, c.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_never_lock_out_healthz_and_only_get_and_head_are_answered() {
    use tokio::io::AsyncReadExt;
    let w = World::start().await;
    let port = free_port();
    let config = w.config_with_metrics(port);
    let mut child = w.spawn_run(&config);
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    if let Err(last) = probe_until(WAIT, || get(&healthz), |(status, _)| *status == 200).await {
        panic!("{last:?}\n{}", w.log());
    }
    // The mailbox is up too, so the last GET /metrics below has its gauge to show.
    let up = |m: &String| m.contains("thulium_bridge_mailbox_up");
    if let Err(last) = probe_until(WAIT, || metrics(port), up).await {
        panic!("{last}\n{}", w.log());
    }

    // More idle connections than the listener keeps open, none sending a byte.
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect"),
        );
    }
    for round in 0..3 {
        let (status, body) = get(&healthz).await;
        assert_eq!(status, 200, "round {round}: {body}\n{}", w.log());
    }
    // The oldest idle connection made room: the listener closed it.
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(WAIT, idle[0].read(&mut byte)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the oldest idle connection is still open: {closed:?}"
    );

    let post = raw_request(
        port,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(
        post.starts_with("HTTP/1.1 405 ") && post.contains("\r\nAllow: GET, HEAD\r\n"),
        "{post}"
    );
    assert!(!post.contains("thulium_bridge_"), "{post}");
    for method in ["PUT", "DELETE", "OPTIONS"] {
        let answer = raw_request(port, &format!("{method} /healthz HTTP/1.1\r\n\r\n")).await;
        assert!(answer.starts_with("HTTP/1.1 405 "), "{method}: {answer}");
    }
    let head = raw_request(port, "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.ends_with("\r\n\r\n"),
        "HEAD answers without a body: {head}"
    );
    let got = raw_request(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        got.starts_with("HTTP/1.1 200 OK\r\n") && got.contains("thulium_bridge_mailbox_up"),
        "{got}"
    );
    drop(idle);
    terminate_ok(&mut child, &w.log_path()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_mailbox_never_holds_up_a_good_one_and_no_secret_is_ever_logged() {
    let w = World::start().await;
    w.api.add_ticket(8, CUSTOMER);
    let bad = MailboxOpts {
        name: "broken".into(),
        password: "Wrong-Imap-Secret".into(),
        ..MailboxOpts::default()
    };
    // Nothing listens on port 1.
    let unreachable = MailboxOpts {
        name: "unreachable".into(),
        port: Some(1),
        ..MailboxOpts::default()
    };
    let config = w.config_with(
        &[bad, MailboxOpts::default(), unreachable],
        "",
        "[log]\nlevel = \"trace\"\n",
    );
    let mut child = w.spawn_run(&config);
    w.append(&reply(8, 1, "through the good mailbox"));
    assert!(
        eventually(WAIT, || w.api.posted(8).len() == 1).await,
        "{}",
        w.log()
    );
    // Both broken mailboxes have failed at least once by now (their errors are logged).
    let trouble = |log: &str, mailbox: &str, error: &str| {
        log.lines().any(|l| {
            l.contains("mailbox trouble; reconnecting")
                && has_field(l, "mailbox", mailbox)
                && l.contains(error)
        })
    };
    assert!(
        eventually(WAIT, || {
            let log = w.log();
            trouble(&log, "broken", "login as support refused")
                && trouble(&log, "unreachable", "cannot connect to 127.0.0.1:1")
        })
        .await,
        "{}",
        w.log()
    );
    terminate_ok(&mut child, &w.log_path()).await;

    let log = w.log();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        w.api.user(),
        w.api.password()
    ));
    for secret in [
        w.api.password(),
        PASSWORD,
        "Wrong-Imap-Secret",
        basic.as_str(),
    ] {
        assert!(!log.contains(secret), "secret {secret:?} in the trace log");
    }
    assert!(
        !log.to_ascii_lowercase().contains("authorization: basic"),
        "auth header in the trace log"
    );
    assert!(
        log.contains("DEBUG") && log.contains("Thulium API answered"),
        "the log is really verbose:\n{log}"
    );
}

#[test]
fn has_field_reads_plain_quoted_and_span_fields_whole() {
    let line = "INFO mailbox{mailbox=support}:mail{uid=3 ticket=55}: mail handled ticket=\"7\" outcome=\"failed\"";
    assert!(has_field(line, "mailbox", "support"));
    assert!(has_field(line, "ticket", "55"));
    assert!(has_field(line, "ticket", "7"));
    assert!(has_field(line, "outcome", "failed"));
    assert!(!has_field(line, "ticket", "5"));
    assert!(!has_field(line, "mailbox", "sup"));
    assert!(!has_field(line, "id", "3"), "uid=3 is not id=3");
}

/// Everything `socket` has received so far, without waiting.
fn drain(socket: &UnixDatagram) -> Vec<String> {
    socket.set_nonblocking(true).expect("non-blocking");
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while let Ok(n) = socket.recv(&mut buf) {
        seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    socket.set_nonblocking(false).expect("blocking");
    seen
}

fn is_ready(message: &str) -> bool {
    message.lines().any(|l| l == "READY=1")
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_comes_only_once_every_mailbox_was_opened_or_failed_once() {
    let w = World::start().await;
    w.dovecot.add_user("slow", "slow-pw").unwrap();
    w.api.add_ticket(1, CUSTOMER);
    w.append(&reply(1, 1, "the fast mailbox works"));
    // The slow mailbox's server greets only when the test says so.
    let proxy = testbed::HeldProxy::start(([127, 0, 0, 1], w.dovecot.plain_port()).into())
        .await
        .unwrap();
    let slow = MailboxOpts {
        port: Some(proxy.port()),
        ..MailboxOpts::of_user("slow", "slow-pw")
    };
    let refused = MailboxOpts {
        name: "refused".into(),
        password: "Wrong-Password-1".into(),
        ..MailboxOpts::default()
    };
    let port = free_port();
    let config = w.config_with(
        &[MailboxOpts::default(), slow, refused],
        "",
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let readyz = format!("http://127.0.0.1:{port}/readyz");
    let socket_path = w.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let log = std::fs::File::create(w.log_path()).unwrap();
    let mut child = Daemon(
        bin()
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env("NOTIFY_SOCKET", &socket_path)
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    // The fast mailbox opened and finished a pass, the refused one failed, the slow
    // one waits for its greeting: a READY sent too early has been sent by now.
    let waited = eventually(WAIT, || {
        let log = w.log();
        w.folder("Processed").len() == 1
            && log.contains("login as support refused")
            && proxy.waiting() == 1
    })
    .await;
    assert!(waited, "{}", w.log());
    let early = drain(&socket);
    assert!(
        !early.iter().any(|m| is_ready(m)),
        "READY before the slow mailbox was opened: {early:?}\n{}",
        w.log()
    );
    assert_eq!(proxy.relayed(), 0);
    let (status, body) = get(&readyz).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("starting: 1 of 3 mailboxes connected"),
        "{body}"
    );

    proxy.release();
    let socket = std::sync::Arc::new(socket);
    let waiter = std::sync::Arc::clone(&socket);
    let after = tokio::task::spawn_blocking(move || {
        waiter.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut buf = [0u8; 4096];
        let mut seen = Vec::new();
        while let Ok(n) = waiter.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).to_string();
            let ready = is_ready(&m);
            seen.push(m);
            if ready {
                break;
            }
        }
        seen
    })
    .await
    .unwrap();
    assert!(
        after.last().is_some_and(|m| is_ready(m)),
        "no READY after the slow mailbox opened: {after:?}\n{}",
        w.log()
    );
    assert!(proxy.relayed() >= 1);
    assert!(
        w.log()
            .lines()
            .any(|l| l.contains("watching") && has_field(l, "mailbox", "slow")),
        "{}",
        w.log()
    );
    // Started: /readyz now follows /healthz, which names the refused mailbox.
    let (status, body) = get(&readyz).await;
    assert!(
        status == 503 && !body.contains("starting") && body.contains("refused"),
        "{status} {body}"
    );
    terminate_ok(&mut child, &w.log_path()).await;
}

/// One mail of each outcome in the support mailbox (a throttled one retried, a true
/// copy a duplicate), and a new ticket's mail in a sales mailbox, which it returns.
fn one_mail_of_each_outcome(w: &World) -> MailboxOpts {
    for t in [1, 2, 5, 7] {
        w.api.add_ticket(t, CUSTOMER);
    }
    // posted
    w.append(&reply(1, 0, "posted"));
    // posted once, and its true copy: duplicate
    let twice = reply(2, 0, "delivered twice");
    w.append(&twice);
    w.append(&twice);
    // ticket 404 does not exist: failed (HTTP 404)
    w.append(&reply(404, 0, "to no ticket"));
    // rejected in the API's words: failed (HTTP 422)
    w.append(&reply(7, 0, "rejected"));
    w.api.fail_next_for(
        7,
        1,
        Fault::Reject {
            status: 422,
            message: "The body field is invalid.".into(),
        },
    );
    // throttled longer than a pass waits: retried once, then posted
    w.append(&reply(5, 0, "throttled"));
    w.api.fail_next_for(
        5,
        1,
        Fault::TooManyRequests {
            retry_after_secs: 6,
        },
    );
    w.append(b"From: a@b.example\r\nSubject: no tag\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\nMessage-ID: <u@b>\r\n\r\nx\r\n");
    w.append(b"From: a@b.example\r\nSubject: [#1] away\r\nAuto-Submitted: auto-replied\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\nMessage-ID: <i@b>\r\n\r\nx\r\n");
    // a stranger guessing ticket 1: unverified
    w.append(&reply_from("mallory@evil.example", 1, 1, "a guess"));
    // a mail without a ticket number to a mailbox that opens tickets: new_ticket
    w.dovecot.add_user("sales", "sales-Secret-3").unwrap();
    let sales = MailboxOpts {
        extra: "on_unmatched = \"new_ticket\"\n[mailbox.new_ticket]\nto = \"help@acme.example\"\n"
            .into(),
        ..MailboxOpts::of_user("sales", "sales-Secret-3")
    };
    w.dovecot
        .append("sales", "INBOX", b"From: Customer <anna@customer.example>\r\nTo: help@acme.example\r\nSubject: A new question\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\nMessage-ID: <new@customer.example>\r\n\r\nThe printer jams.\r\n", &[])
        .unwrap();
    sales
}

/// Each outcome counted exactly, per mailbox.
fn every_outcome_is_counted(w: &World, m: &str) {
    let count_in = |mailbox: &str, outcome: &str| {
        metric(
            m,
            "thulium_bridge_mails_total",
            &[("mailbox", mailbox), ("outcome", outcome)],
        )
        .unwrap_or(0.0)
    };
    let count = |outcome: &str| count_in("support", outcome);
    let counted: Vec<(&str, f64)> = [
        "posted",
        "duplicate",
        "failed",
        "retried",
        "unmatched",
        "ignored",
        "unverified",
    ]
    .into_iter()
    .map(|o| (o, count(o)))
    .collect();
    assert_eq!(
        counted,
        [
            ("posted", 3.0),
            ("duplicate", 1.0),
            ("failed", 2.0),
            ("retried", 1.0),
            ("unmatched", 1.0),
            ("ignored", 1.0),
            ("unverified", 1.0),
        ],
        "{m}\n{}",
        w.log()
    );
    assert_eq!(count("new_ticket"), 0.0, "{m}");
    assert_eq!(count_in("sales", "new_ticket"), 1.0, "{m}");
    assert_eq!(w.api.total_created(), 1);
}

/// Every API answer counted by status; the POSTs' own statuses.
fn every_api_answer_is_counted(w: &World, m: &str) {
    let requests = |status: u16| {
        metric(
            m,
            "thulium_bridge_api_requests_total",
            &[("status", &status.to_string())],
        )
        .unwrap_or(0.0)
    };
    for status in [200, 404, 422, 429] {
        assert_eq!(
            requests(status),
            answered(w, status) as f64,
            "HTTP {status}: {m}"
        );
    }
    assert_eq!(w.api.all_posted().len(), 3);
    let post_statuses = |status: u16| {
        w.api
            .requests()
            .iter()
            .filter(|r| {
                r.method == "POST"
                    && r.path.ends_with("/customer_response")
                    && r.status == Some(status)
            })
            .count()
    };
    assert_eq!(
        [200, 422, 429].map(post_statuses),
        [3, 1, 1],
        "{:?}",
        w.api.requests()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mails_total_counts_every_outcome_exactly() {
    let w = World::start().await;
    let sales = one_mail_of_each_outcome(&w);
    let port = free_port();
    let config = w.config_with(
        &[MailboxOpts::default(), sales],
        "",
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut child = w.spawn_run(&config);
    let all_disposed = eventually(WAIT, || {
        w.folder("Processed").len() == 4
            && w.folder("Failed").len() == 2
            && w.folder("Unmatched").len() == 1
            && w.folder("Ignored").len() == 1
            && w.folder("Unverified").len() == 1
            && w.dovecot
                .folder_mails("sales", "Processed")
                .unwrap_or_default()
                .len()
                == 1
    })
    .await;
    assert!(all_disposed, "{}", w.log());
    let m = metrics(port).await;
    terminate_ok(&mut child, &w.log_path()).await;
    println!("{m}");
    every_outcome_is_counted(&w, &m);
    every_api_answer_is_counted(&w, &m);
}

/// Requests the fake API answered with `status`.
fn answered(w: &World, status: u16) -> usize {
    w.api
        .requests()
        .iter()
        .filter(|r| r.status == Some(status))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_pauses_posting_for_every_mailbox_loudly() {
    refused_api_credentials_pause_posting_for_every_mailbox(401, "Unauthorized").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_403_pauses_posting_for_every_mailbox_loudly() {
    refused_api_credentials_pause_posting_for_every_mailbox(403, "Forbidden: no write access")
        .await;
}

/// The API refuses our credentials with `status` and `message` for the first POST.
async fn refused_api_credentials_pause_posting_for_every_mailbox(status: u16, message: &str) {
    let w = World::start().await;
    w.dovecot.add_user("sales", "sales-pw").unwrap();
    for t in 1..=8 {
        w.api.add_ticket(t, CUSTOMER);
    }
    w.api.fail_next(
        1,
        Fault::Reject {
            status,
            message: message.into(),
        },
    );
    for t in 1..=3 {
        w.append(&reply(t, 0, "to support"));
    }
    for t in 4..=5 {
        w.dovecot
            .append("sales", "INBOX", &reply(t, 0, "to sales"), &[])
            .unwrap();
    }
    let port = free_port();
    // One request at a time: the refused POST is the only one in flight, so any
    // later POST was sent after the refusal. No ticket reads (verify_sender off): the
    // POSTs alone take turns.
    let config = w.config_with(
        &[
            MailboxOpts::default(),
            MailboxOpts::of_user("sales", "sales-pw"),
        ],
        "concurrency = 1\nverify_sender = \"off\"",
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut child = w.spawn_run(&config);
    // Every mail of both mailboxes has been handled: left waiting (or, wrongly, posted).
    let handled = |log: &str| log.matches("mail handled").count();
    assert!(
        eventually(WAIT, || handled(&w.log()) >= 5).await,
        "{}",
        w.log()
    );
    // Later mails to either mailbox wait too.
    w.append(&reply(6, 0, "later, to support"));
    w.dovecot
        .append("sales", "INBOX", &reply(7, 0, "later, to sales"), &[])
        .unwrap();
    assert!(
        eventually(WAIT, || handled(&w.log()) >= 7).await,
        "{}",
        w.log()
    );
    let m = metrics(port).await;
    terminate_ok(&mut child, &w.log_path()).await;
    let log = w.log();

    let requests = w.api.requests();
    let statuses: Vec<Option<u16>> = requests
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses,
        [Some(status)],
        "no POST after the refusal, from either mailbox:\n{log}"
    );
    assert!(w.api.all_posted().is_empty());
    assert_eq!(w.folder("INBOX").len(), 4, "nothing given up or moved");
    assert_eq!(w.dovecot.folder_mails("sales", "INBOX").unwrap().len(), 3);
    let waiting = |mailbox: &str| {
        log.lines()
            .filter(|l| {
                l.contains("mail handled")
                    && has_field(l, "mailbox", mailbox)
                    && l.contains("retried")
                    && l.contains(&format!("API credentials refused (HTTP {status})"))
            })
            .count()
    };
    assert_eq!((waiting("support"), waiting("sales")), (4, 3), "{log}");
    // Loud: one error that says what to check, and the API shown down.
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("refused our credentials"))
        .collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains("posting paused for every mailbox") && errors[0].contains(message),
        "{}",
        errors[0]
    );
    assert_eq!(metric(&m, "thulium_bridge_api_up", &[]), Some(0.0), "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_each_mailbox_and_fails_while_one_is_down() {
    let w = World::start().await;
    w.api.add_ticket(3, CUSTOMER);
    w.append(&reply(3, 1, "counted"));
    let out = command(&w.config(), &["status"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("[metrics]\n    listen = \"127.0.0.1:9898\""),
        "{}",
        text(&out)
    );

    let port = free_port();
    let broken = MailboxOpts {
        name: "broken".into(),
        password: "Wrong-Imap-Secret".into(),
        ..MailboxOpts::default()
    };
    let config = w.config_with(
        &[MailboxOpts::default(), broken],
        "",
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut child = w.spawn_run(&config);
    assert!(
        eventually(WAIT, || w.api.posted(3).len() == 1).await,
        "{}",
        w.log()
    );
    let out = probe_until(
        WAIT,
        || command(&config, &["status"]),
        // /metrics and /healthz are read one after the other: wait for both to agree.
        |o| {
            let said = String::from_utf8_lossy(&o.stdout);
            said.contains("mailbox support      up    last good pass")
                && said.contains("mailbox broken       DOWN (login refused)")
        },
    )
    .await
    .unwrap_or_else(|o| panic!("{}", text(&o)));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{said}");
    assert_eq!(out.status.code(), Some(1), "{said}");
    let line = |name: &str| {
        said.lines()
            .find(|l| l.trim_start().starts_with(&format!("mailbox {name} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("support").contains(" up ")
            && line("support").contains("1 posted, 0 new tickets, 0 failed"),
        "{said}"
    );
    assert!(line("broken").contains("DOWN (login refused)"), "{said}");
    assert!(!said.contains("Wrong-Imap-Secret") && !said.contains(PASSWORD));
    terminate_ok(&mut child, &w.log_path()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_does_not_wait_for_a_server_that_never_greets() {
    let w = World::start().await;
    // Accepts and never says a word: the greeting timeout is far longer than the wait below.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let config = w.config_with(
        &[MailboxOpts {
            port: Some(silent_port),
            ..MailboxOpts::default()
        }],
        "",
        "",
    );
    let mut child = w.spawn_run(&config);
    let accepted = tokio::task::spawn_blocking(move || silent.accept().map(|(s, _)| s));
    let _connection = accepted.await.expect("join").expect("the daemon connects");
    signal(&child, "TERM");
    let exit = wait_exit(&mut child, std::time::Duration::from_secs(10)).await;
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}\n{}", w.log());
}
