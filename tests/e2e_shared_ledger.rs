//! Operating a shared PostgreSQL ledger: a standby is healthy, a lost database is named
//! in `/healthz` and said once at its start and end, `check` shows the login, TLS,
//! schema and who leads what, and a certificate from the wrong CA or a newer schema is
//! refused with words an admin can act on.

#[macro_use]
mod support;

use std::path::PathBuf;
use std::time::Duration;
use support::*;

/// A config for `instance`, with its own state.dir and metrics port.
fn config_for(w: &World, instance: &str, port: u16) -> PathBuf {
    let first = w.config_with(
        &[MailboxOpts::default()],
        "",
        &format!("instance = {instance:?}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let state = w.dir.path().join("state").display().to_string();
    let text = std::fs::read_to_string(&first)
        .expect("config")
        .replace(&state, &format!("{state}-{instance}"));
    let path = w.dir.path().join(format!("{instance}.toml"));
    std::fs::write(&path, text).expect("config written");
    path
}

async fn leader_metric(port: u16, instance: &str) -> Option<f64> {
    metric(
        &metrics(port).await,
        "thulium_bridge_mailbox_leader",
        &[("mailbox", "support"), ("instance", instance)],
    )
}

async fn check(config: &std::path::Path) -> (bool, String) {
    let out = command(config, &["check"]).await;
    (out.status.success(), text(&out))
}

/// PostgreSQL stopped while host a leads, then started again: posting stops, `/healthz`
/// names the ledger, each is said once, and the reply written meanwhile is posted once.
async fn lose_and_regain_the_database(
    w: &mut World,
    health_a: &str,
    log_a: &std::path::Path,
    log_b: &std::path::Path,
) {
    // The database goes away: posting stops, /healthz names the ledger, one line.
    let pg = w.postgres.take().expect("postgres");
    let pg = tokio::task::spawn_blocking(move || pg.stop().map(|()| pg))
        .await
        .expect("join")
        .expect("stopped");
    let url = pg.url();
    let down = probe_until(
        Duration::from_secs(30),
        || get(health_a),
        |(code, body)| *code == 503 && body.contains(&url),
    )
    .await;
    assert!(
        down.is_ok(),
        "healthz never named the ledger:\n{}",
        read(log_a)
    );
    w.append(&reply(1, 0, "written while the database was down"));
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        posts(&w.api),
        0,
        "nothing is posted whose intent cannot be recorded"
    );
    assert_eq!(
        read(log_a).matches("leases: cannot renew").count(),
        1,
        "{}",
        read(log_a)
    );

    // It comes back: said once, healthy again, and the reply is posted once.
    let pg = tokio::task::spawn_blocking(move || pg.restart().map(|()| pg))
        .await
        .expect("join")
        .expect("restarted");
    w.postgres = Some(pg);
    assert!(
        eventually(Duration::from_secs(60), || posts(&w.api) == 1).await,
        "a:\n{}\nb:\n{}",
        read(log_a),
        read(log_b)
    );
    let up = probe_until(
        Duration::from_secs(30),
        || get(health_a),
        |(code, _)| *code == 200,
    )
    .await;
    assert!(up.is_ok(), "{}", read(log_a));
    for log in [log_a, log_b] {
        let said = read(log);
        assert_eq!(
            said.matches("the ledger's database answers again").count(),
            1,
            "{said}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_is_healthy_and_a_lost_database_is_named_said_once_and_survived() {
    on_postgres(async {
        let mut w = World::start().await;
        w.api.add_ticket(1, CUSTOMER);
        let (pa, pb) = (free_port(), free_port());
        let (config_a, config_b) = (config_for(&w, "host-a", pa), config_for(&w, "host-b", pb));
        let (log_a, log_b) = (w.dir.path().join("a.log"), w.dir.path().join("b.log"));
        let health_a = format!("http://127.0.0.1:{pa}/healthz");
        let mut a = spawn_run(&config_a, &log_a);
        let led = probe_until(
            Duration::from_secs(30),
            || leader_metric(pa, "host-a"),
            |v| *v == Some(1.0),
        )
        .await;
        assert!(led.is_ok(), "a never led:\n{}", read(&log_a));
        let mut b = spawn_run(&config_b, &log_b);
        let standby = probe_until(
            Duration::from_secs(30),
            || leader_metric(pb, "host-b"),
            |v| *v == Some(0.0),
        )
        .await;
        assert!(
            standby.is_ok(),
            "b never said it stands by:\n{}",
            read(&log_b)
        );
        let (code, body) = get(&format!("http://127.0.0.1:{pb}/healthz")).await;
        assert_eq!(code, 200, "a standby that leads nothing is healthy: {body}");

        let status = text(&command(&config_b, &["status"]).await);
        assert!(
            status.contains("lease        support: led by host-a (epoch"),
            "{status}"
        );
        let (ok, said) = check(&config_b).await;
        assert!(ok, "{said}");
        assert!(
            said.contains("answers (login, TLS verified, schema 6)"),
            "{said}"
        );
        assert!(
            said.contains("lease: support: led by host-a (epoch"),
            "{said}"
        );

        lose_and_regain_the_database(&mut w, &health_a, &log_a, &log_b).await;
        terminate_ok(&mut a, &log_a).await;
        // A stop hands its lease back: the other host need not wait for it to run out.
        assert!(
            read(&log_a).contains("leases: handed back mailbox=support"),
            "{}",
            read(&log_a)
        );
        terminate_ok(&mut b, &log_b).await;
        assert_eq!(posts(&w.api), 1);
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wrong_ca_and_a_newer_schema_are_refused_with_their_reasons() {
    on_postgres(async {
        let w = World::start().await;
        let config = w.config();
        let (ok, said) = ledger(&config, &["stats"]).await;
        assert!(ok, "{said}");

        // A certificate no configured CA signed: no session, and the reason.
        let wrong_ca = std::fs::read_to_string(&config).expect("config").replace(
            &format!("{:?}", w.postgres.as_ref().expect("postgres").ca_file()),
            &format!("{:?}", w.dovecot.ca_file()),
        );
        let wrong = w.dir.path().join("wrong-ca.toml");
        std::fs::write(&wrong, wrong_ca).expect("written");
        let (ok, said) = check(&wrong).await;
        assert!(!ok, "{said}");
        assert!(
            said.contains("cannot open the ledger postgresql://"),
            "{said}"
        );
        assert!(said.to_lowercase().contains("certificate"), "{said}");

        // A schema written by a newer version: refused, as on SQLite.
        w.postgres
            .as_ref()
            .expect("postgres")
            .superuser_psql("UPDATE schema_version SET version = 99")
            .expect("updated");
        let out = command(&config, &["ledger", "stats"]).await;
        assert!(!out.status.success());
        assert!(
            text(&out)
                .contains("written by a newer thulium-mail-bridge (schema 99, this one knows 6)"),
            "{}",
            text(&out)
        );
    })
    .await
}

/// A reply to `ticket` that kills the process reading it (the test build's hook,
/// src/daemon/test_crash.rs), as a stack overflow would.
fn deadly_reply(ticket: u64) -> Vec<u8> {
    String::from_utf8(reply(ticket, 1, "The mail nobody can read."))
        .expect("utf-8")
        .replacen("MIME-Version:", "X-Test-Crash: abort\r\nMIME-Version:", 1)
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mail_that_killed_one_host_is_not_read_by_the_other() {
    on_postgres(async {
        let w = World::start().await;
        w.api.add_ticket(1001, CUSTOMER);
        w.api.add_ticket(1002, CUSTOMER);
        w.append(&deadly_reply(1001));
        w.append(&reply(1002, 1, "A good mail after it."));
        let (pa, pb) = (free_port(), free_port());
        let (config_a, config_b) = (config_for(&w, "host-a", pa), config_for(&w, "host-b", pb));

        // Host a dies reading it.
        let first = once(&config_a, &[]).await;
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&first.status),
            Some(6),
            "{}",
            text(&first)
        );
        assert_eq!(posts(&w.api), 0);

        // Host a comes back (as systemd restarts it), strikes the mail it died on, and
        // is gone again before it could lead (the dead pass's lease still runs).
        let (log_a, log_b) = (w.dir.path().join("a.log"), w.dir.path().join("b.log"));
        let mut a = spawn_run(&config_a, &log_a);
        let struck = eventually(Duration::from_secs(20), || {
            read(&log_a).contains("a mail was being read when the bridge stopped")
        })
        .await;
        signal(&a, "KILL");
        let _ = wait_exit(&mut a, Duration::from_secs(5)).await;
        assert!(struck, "{}", read(&log_a));
        assert!(
            !read(&log_a).contains("leading this mailbox"),
            "{}",
            read(&log_a)
        );

        // Host b leads next: it does not read the mail (and die), it quarantines it.
        let mut b = spawn_run(&config_b, &log_b);
        let done = eventually(Duration::from_secs(60), || {
            w.api.posted(1002).len() == 1 && w.folder("Failed").len() == 1
        })
        .await;
        assert!(done, "b:\n{}", read(&log_b));
        assert!(
            matches!(b.try_wait(), Ok(None)),
            "host b died:\n{}",
            read(&log_b)
        );
        assert!(
            read(&log_b).contains("on host host-a; not read again here"),
            "{}",
            read(&log_b)
        );
        assert_eq!(w.api.posted(1001).len(), 0);
        terminate_ok(&mut b, &log_b).await;
    })
    .await
}
