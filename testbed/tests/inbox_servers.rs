//! What Cyrus and Courier both do for the tests: check passwords (LOGIN and
//! AUTHENTICATE PLAIN), speak STARTTLS and implicit TLS with the harness's CA, and
//! announce an appended mail to a client in IDLE.

#[allow(dead_code, reason = "shared with the other test files")]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use support::{Imap, mail, server_name, tls_connector};
use testbed::{Courier, Cyrus, ImapClient, ImapServer};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(20);

fn passwords_are_checked(server: &dyn ImapServer) -> Result<()> {
    server.add_user("support", "right")?;
    assert!(ImapClient::login_to(server.host(), server.plain_port(), "support", "wrong").is_err());
    let mut imap = ImapClient::connect(server.host(), server.plain_port())?;
    // base64("\0support\0right")
    imap.command_ok("AUTHENTICATE PLAIN AHN1cHBvcnQAcmlnaHQ=")?;
    imap.logout()?;
    // A new password replaces the old one.
    server.add_user("support", "new")?;
    ImapClient::login_to(server.host(), server.plain_port(), "support", "new")?.logout()?;
    Ok(())
}

async fn starttls_and_implicit_tls(server: &dyn ImapServer) -> Result<()> {
    server.add_user("support", "secret")?;
    let connector = tls_connector(&server.ca_file())?;

    let stream = TcpStream::connect((server.host(), server.plain_port())).await?;
    let mut imap = Imap::greeted(stream).await?;
    let capability = imap.command("CAPABILITY").await?;
    assert!(capability.concat().contains("STARTTLS"), "{capability:?}");
    imap.command("STARTTLS").await?;
    let tls = connector
        .connect(server_name("localhost"), imap.into_inner())
        .await?;
    let mut imap = Imap::resumed(tls);
    imap.command("LOGIN support secret").await?;
    imap.command("LOGOUT").await?;

    let stream = TcpStream::connect((server.host(), server.tls_port())).await?;
    let tls = connector.connect(server_name("127.0.0.1"), stream).await?;
    let mut imap = Imap::greeted(tls).await?;
    imap.command("LOGIN support secret").await?;
    imap.command("LOGOUT").await?;
    Ok(())
}

async fn idle_announces_an_appended_mail(server: Arc<dyn ImapServer + Send + Sync>) -> Result<()> {
    server.add_user("support", "secret")?;
    let stream = TcpStream::connect((server.host(), server.plain_port())).await?;
    let mut imap = Imap::greeted(stream).await?;
    imap.command("LOGIN support secret").await?;
    imap.command("SELECT INBOX").await?;
    imap.send("t99 IDLE\r\n").await?;
    let line = imap.read_line(WAIT).await?;
    assert!(line.starts_with('+'), "{line}");

    let started = Instant::now();
    let seeder = server.clone();
    tokio::task::spawn_blocking(move || seeder.append("support", "INBOX", &mail("[#7] new"), &[]))
        .await??;
    loop {
        let line = imap.read_line(WAIT).await?;
        if line.starts_with("* 1 EXISTS") {
            break;
        }
    }
    // Not polling every 30 s or more (Courier without enhanced IDLE would).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    imap.send("DONE\r\n").await?;
    loop {
        let line = imap.read_line(WAIT).await?;
        if line.starts_with("t99 ") {
            assert!(line.starts_with("t99 OK"), "{line}");
            break;
        }
    }
    Ok(())
}

#[test]
fn cyrus_checks_passwords() -> Result<()> {
    passwords_are_checked(&Cyrus::start()?)
}

#[test]
fn courier_checks_passwords() -> Result<()> {
    passwords_are_checked(&Courier::start()?)
}

#[tokio::test(flavor = "multi_thread")]
async fn cyrus_speaks_starttls_and_implicit_tls() -> Result<()> {
    starttls_and_implicit_tls(&Cyrus::start()?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn courier_speaks_starttls_and_implicit_tls() -> Result<()> {
    starttls_and_implicit_tls(&Courier::start()?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn cyrus_announces_an_appended_mail_in_idle() -> Result<()> {
    idle_announces_an_appended_mail(Arc::new(Cyrus::start()?)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn courier_announces_an_appended_mail_in_idle() -> Result<()> {
    idle_announces_an_appended_mail(Arc::new(Courier::start()?)).await
}
