//! Operating the daemon: systemd notifications, metrics, health, many mailboxes, secrets.

mod support;

use base64::Engine as _;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;
use support::*;

fn log_of(w: &World) -> String {
    std::fs::read_to_string(w.dir.path().join("run.log")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn systemd_hears_ready_status_watchdog_reloading_and_stopping_in_order() {
    let w = World::start().await;
    let socket_path = w.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
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
        let n = socket.recv(&mut buf).expect("a notification within 20 s");
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
        wait_exit(&mut child, Duration::from_secs(20))
            .await
            .and_then(|s| s.code()),
        Some(0),
        "{}",
        log_of(&w)
    );
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
    let config = w.config_with(
        &[MailboxOpts::default()],
        "",
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut child = spawn_run(&config, &w.dir.path().join("run.log"));
    let base = format!("http://127.0.0.1:{port}");
    let mut metrics = String::new();
    for _ in 0..200 {
        metrics = get(&format!("{base}/metrics")).await.1;
        if metrics.contains("outcome=\"ignored\"")
            && metrics.contains("outcome=\"posted\"} 2")
            && metrics.contains("thulium_bridge_last_success_timestamp_seconds")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("{metrics}");
    for line in [
        "thulium_bridge_mails_total{mailbox=\"support\",outcome=\"posted\"} 2",
        "thulium_bridge_mails_total{mailbox=\"support\",outcome=\"unmatched\"} 1",
        "thulium_bridge_mails_total{mailbox=\"support\",outcome=\"ignored\"} 1",
        "thulium_bridge_api_requests_total{status=\"200\"} 2",
        "thulium_bridge_mailbox_up{mailbox=\"support\"} 1",
        "thulium_bridge_api_request_duration_seconds_count 2",
        "thulium_bridge_last_success_timestamp_seconds{mailbox=\"support\"}",
    ] {
        assert!(metrics.contains(line), "missing {line}\n{metrics}");
    }
    let (status, body) = get(&format!("{base}/healthz")).await;
    assert_eq!(status, 200, "{body}");

    w.dovecot.stop().unwrap();
    let mut last = (0, String::new());
    for _ in 0..300 {
        last = get(&format!("{base}/healthz")).await;
        if last.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last.0, 503, "{}\n{}", last.1, log_of(&w));
    assert!(
        last.1.contains("\"mailbox\":\"support\"") && last.1.contains("down_since"),
        "{}",
        last.1
    );
    assert!(
        get(&format!("{base}/metrics"))
            .await
            .1
            .contains("thulium_bridge_mailbox_up{mailbox=\"support\"} 0")
    );

    w.dovecot.restart().unwrap();
    let mut back = 0;
    for _ in 0..600 {
        back = get(&format!("{base}/healthz")).await.0;
        if back == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(back, 200, "{}", log_of(&w));
    signal(&child, "TERM");
    wait_exit(&mut child, Duration::from_secs(20)).await;
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
    let unreachable = MailboxOpts {
        name: "unreachable".into(),
        extra: "port = 1".into(),
        ..MailboxOpts::default()
    };
    let config = w.config_with(
        &[bad, MailboxOpts::default()],
        "",
        "[log]\nlevel = \"trace\"\n",
    );
    let text = std::fs::read_to_string(&config).unwrap()
        + &w.mailbox_toml(&unreachable).replacen(
            &format!("port = {}", w.dovecot.plain_port()),
            "",
            1,
        );
    std::fs::write(&config, text).unwrap();
    let mut child = spawn_run(&config, &w.dir.path().join("run.log"));
    w.append(&reply(8, 1, "through the good mailbox"));
    assert!(
        eventually(Duration::from_secs(15), || w.api.posted(8).len() == 1).await,
        "{}",
        log_of(&w)
    );
    signal(&child, "TERM");
    wait_exit(&mut child, Duration::from_secs(20)).await;

    let log = log_of(&w);
    assert!(log.contains("login as support refused"), "{log}");
    assert!(
        log.contains("mailbox=unreachable") || log.contains("unreachable"),
        "{log}"
    );
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
