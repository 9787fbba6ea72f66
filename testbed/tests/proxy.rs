//! The capability-filtering proxy in front of a real Dovecot: what it hides
//! and refuses, that everything else still works through it, and its drops.

#[allow(dead_code, reason = "shared with the other test files")]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use support::Imap;
use testbed::{CapabilityProxy, Dovecot, ProxyOptions};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(20);

fn mail(subject: &str) -> Vec<u8> {
    format!(
        "From: Customer <customer@example.com>\r\nTo: support@example.com\r\n\
         Subject: {subject}\r\nMessage-ID: <{subject}@example.com>\r\n\
         Date: Mon, 4 Mar 2024 10:00:00 +0100\r\n\r\nHello.\r\n"
    )
    .into_bytes()
}

fn dovecot_with_mail() -> Result<Dovecot> {
    let dovecot = Dovecot::start()?;
    dovecot.add_user("support", "secret")?;
    dovecot.append("support", "INBOX", &mail("[#1] first"), &[])?;
    dovecot.append("support", "INBOX", &mail("[#2] second"), &[])?;
    dovecot.create_folder("support", "Processed")?;
    Ok(dovecot)
}

/// Connects and returns the session with its greeting line.
async fn connect(proxy: &CapabilityProxy) -> Result<(Imap<TcpStream>, String)> {
    let stream = TcpStream::connect((proxy.host(), proxy.port())).await?;
    let mut imap = Imap::resumed(stream);
    let greeting = imap.read_line(WAIT).await?;
    Ok((imap, greeting))
}

/// Sends one tagged command; returns all its lines, the tagged one last.
async fn exchange(imap: &mut Imap<TcpStream>, tag: &str, command: &str) -> Result<Vec<String>> {
    imap.send(&format!("{tag} {command}\r\n")).await?;
    read_until_tagged(imap, tag).await
}

async fn read_until_tagged(imap: &mut Imap<TcpStream>, tag: &str) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let line = imap.read_line(WAIT).await?;
        let done = line.starts_with(&format!("{tag} "));
        lines.push(line);
        if done {
            return Ok(lines);
        }
    }
}

fn capabilities_hidden(line: &str) -> bool {
    let words: Vec<&str> = line.split([' ', '[', ']']).map(|w| w.trim_end()).collect();
    words.contains(&"IMAP4rev1")
        && !["MOVE", "UIDPLUS", "IDLE", "STARTTLS"]
            .iter()
            .any(|hidden| words.contains(hidden))
}

#[tokio::test(flavor = "multi_thread")]
async fn hides_and_refuses_what_exchange_lacks_and_relays_the_rest() -> Result<()> {
    let dovecot = dovecot_with_mail()?;
    let proxy = CapabilityProxy::start(dovecot.plain_port(), ProxyOptions::restricted()).await?;
    let (mut imap, greeting) = connect(&proxy).await?;
    assert!(greeting.starts_with("* OK [CAPABILITY"), "{greeting}");
    assert!(capabilities_hidden(&greeting), "{greeting}");

    let capability = exchange(&mut imap, "a1", "CAPABILITY").await?;
    assert!(capabilities_hidden(&capability[0]), "{capability:?}");
    // Dovecot repeats its capabilities after login, untagged or in the OK.
    let login = exchange(&mut imap, "a2", "LOGIN support secret").await?;
    assert!(
        login.last().is_some_and(|l| l.starts_with("a2 OK")),
        "{login:?}"
    );
    let listed: Vec<_> = login.iter().filter(|l| l.contains("CAPABILITY")).collect();
    assert!(!listed.is_empty(), "{login:?}");
    assert!(listed.iter().all(|l| capabilities_hidden(l)), "{login:?}");

    let select = exchange(&mut imap, "a3", "SELECT INBOX").await?;
    let permanent = select
        .iter()
        .find(|l| l.contains("PERMANENTFLAGS"))
        .cloned()
        .unwrap_or_default();
    assert!(
        permanent
            .starts_with("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)]"),
        "{select:?}"
    );

    let refused = [
        ("b1", "UID MOVE 1 Processed", "b1 BAD"),
        ("b2", "MOVE 1 Processed", "b2 BAD"),
        ("b3", "UID EXPUNGE 1", "b3 BAD"),
        ("b4", "IDLE", "b4 BAD"),
        ("b5", "UID STORE 1 +FLAGS (done)", "b5 NO [CANNOT]"),
        ("b6", "STORE 1 FLAGS (\\Seen $Done)", "b6 NO [CANNOT]"),
        ("b7", "STARTTLS", "b7 BAD"),
    ];
    for (tag, command, answer) in refused {
        let lines = exchange(&mut imap, tag, command).await?;
        assert_eq!(lines.len(), 1, "{command}: {lines:?}");
        assert!(lines[0].starts_with(answer), "{command}: {lines:?}");
    }
    // A refused command's non-synchronizing literal is swallowed whole.
    imap.send("b8 UID MOVE 1 {9+}\r\nProcessed\r\n").await?;
    let lines = read_until_tagged(&mut imap, "b8").await?;
    assert!(lines[0].starts_with("b8 BAD"), "{lines:?}");

    let search = exchange(&mut imap, "c1", "UID SEARCH ALL").await?;
    assert_eq!(search[0], "* SEARCH 1 2\r\n");
    let fetch = exchange(&mut imap, "c2", "UID FETCH 1 (FLAGS BODY.PEEK[])").await?;
    assert!(fetch.concat().contains("[#1] first"), "{fetch:?}");
    let store = exchange(&mut imap, "c3", "UID STORE 1 +FLAGS (\\Seen)").await?;
    assert!(
        store.last().is_some_and(|l| l.starts_with("c3 OK")),
        "{store:?}"
    );
    let copy = exchange(&mut imap, "c4", "UID COPY 2 Processed").await?;
    let tagged = copy.last().cloned().unwrap_or_default();
    assert!(
        tagged.starts_with("c4 OK") && !tagged.contains("COPYUID"),
        "{copy:?}"
    );

    // APPEND with a synchronizing literal: the proxy waits for the `+`.
    let raw = mail("[#3] appended");
    imap.send(&format!(
        "c5 APPEND Processed (\\Flagged) {{{}}}\r\n",
        raw.len()
    ))
    .await?;
    let go_ahead = imap.read_line(WAIT).await?;
    assert!(go_ahead.starts_with('+'), "{go_ahead}");
    imap.send(&format!("{}\r\n", String::from_utf8_lossy(&raw)))
        .await?;
    let append = read_until_tagged(&mut imap, "c5").await?;
    let tagged = append.last().cloned().unwrap_or_default();
    assert!(
        tagged.starts_with("c5 OK") && !tagged.contains("APPENDUID"),
        "{append:?}"
    );
    // ... and one refused before its literal: the client never sends it.
    imap.send("c6 APPEND Nowhere {5}\r\n").await?;
    let refused = read_until_tagged(&mut imap, "c6").await?;
    assert!(
        refused.last().is_some_and(|l| l.starts_with("c6 NO")),
        "{refused:?}"
    );
    let noop = exchange(&mut imap, "c7", "NOOP").await?;
    assert!(
        noop.last().is_some_and(|l| l.starts_with("c7 OK")),
        "{noop:?}"
    );
    exchange(&mut imap, "c8", "LOGOUT").await?;

    let inbox = dovecot.folder_mails("support", "INBOX")?;
    assert!(inbox[0].has_flag("\\Seen") && !inbox[1].has_flag("\\Seen"));
    let processed = dovecot.folder_mails("support", "Processed")?;
    let subjects: Vec<_> = processed.iter().filter_map(|m| m.subject()).collect();
    assert_eq!(subjects, ["[#2] second", "[#3] appended"]);
    assert!(processed[1].has_flag("\\Flagged"));
    assert_eq!(proxy.refused_commands().len(), 8);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn transparent_by_default_including_idle() -> Result<()> {
    let dovecot = Arc::new(dovecot_with_mail()?);
    let proxy = CapabilityProxy::start(dovecot.plain_port(), ProxyOptions::default()).await?;
    let (mut imap, greeting) = connect(&proxy).await?;
    assert!(greeting.contains(" IDLE"), "{greeting}");
    exchange(&mut imap, "a1", "LOGIN support secret").await?;
    let select = exchange(&mut imap, "a2", "SELECT INBOX").await?;
    assert!(select.concat().contains("\\*)]"), "{select:?}");
    imap.send("a3 IDLE\r\n").await?;
    assert!(imap.read_line(WAIT).await?.starts_with('+'));
    let seeder = dovecot.clone();
    tokio::task::spawn_blocking(move || seeder.append("support", "INBOX", &mail("[#4] new"), &[]))
        .await??;
    loop {
        if imap.read_line(WAIT).await?.starts_with("* 3 EXISTS") {
            break;
        }
    }
    imap.send("DONE\r\n").await?;
    let done = read_until_tagged(&mut imap, "a3").await?;
    assert!(
        done.last().is_some_and(|l| l.starts_with("a3 OK")),
        "{done:?}"
    );
    let moved = exchange(&mut imap, "a4", "UID MOVE 1 Processed").await?;
    assert!(
        moved.last().is_some_and(|l| l.starts_with("a4 OK")),
        "{moved:?}"
    );
    Ok(())
}

/// Reads until the proxy closes the connection; how long that took.
async fn closed_after(imap: &mut Imap<TcpStream>, started: Instant) -> Result<Duration> {
    loop {
        match imap.read_line(WAIT).await {
            Ok(_) => continue,
            Err(e) if format!("{e:#}").contains("closed") => return Ok(started.elapsed()),
            Err(e) => bail!("expected the proxy to close the connection: {e:#}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn drops_the_connection_after_login() -> Result<()> {
    let dovecot = dovecot_with_mail()?;
    let options = ProxyOptions {
        drop_after_login: Some(Duration::from_secs(2)),
        ..ProxyOptions::default()
    };
    let proxy = CapabilityProxy::start(dovecot.plain_port(), options).await?;
    let (mut imap, _) = connect(&proxy).await?;
    // Not logged in yet: no timer runs.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    exchange(&mut imap, "a1", "NOOP").await?;
    exchange(&mut imap, "a2", "LOGIN support secret").await?;
    let started = Instant::now();
    exchange(&mut imap, "a3", "SELECT INBOX").await?;
    let elapsed = closed_after(&mut imap, started).await?;
    assert!(
        (Duration::from_millis(1500)..Duration::from_secs(5)).contains(&elapsed),
        "{elapsed:?}"
    );
    assert_eq!(proxy.dropped_connections(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn drops_the_connection_after_idle_starts() -> Result<()> {
    let dovecot = dovecot_with_mail()?;
    let options = ProxyOptions {
        drop_after_idle: Some(Duration::from_secs(2)),
        ..ProxyOptions::default()
    };
    let proxy = CapabilityProxy::start(dovecot.plain_port(), options).await?;
    let (mut imap, _) = connect(&proxy).await?;
    exchange(&mut imap, "a1", "LOGIN support secret").await?;
    exchange(&mut imap, "a2", "SELECT INBOX").await?;
    // A short IDLE ended in time resets nothing that would drop later.
    imap.send("a3 IDLE\r\n").await?;
    assert!(imap.read_line(WAIT).await?.starts_with('+'));
    imap.send("DONE\r\n").await?;
    read_until_tagged(&mut imap, "a3").await?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    exchange(&mut imap, "a4", "NOOP").await?;

    imap.send("a5 IDLE\r\n").await?;
    let started = Instant::now();
    assert!(imap.read_line(WAIT).await?.starts_with('+'));
    let elapsed = closed_after(&mut imap, started).await?;
    assert!(
        (Duration::from_millis(1500)..Duration::from_secs(5)).contains(&elapsed),
        "{elapsed:?}"
    );
    assert_eq!(proxy.dropped_connections(), 1);
    Ok(())
}
