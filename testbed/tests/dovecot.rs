//! The Dovecot harness: logins on every listener, seeding, IDLE, restart.

#[allow(dead_code, reason = "shared with the other test files")]
mod support;

use std::time::Duration;

use anyhow::Result;
use support::{Imap, server_name, tls_connector};
use testbed::{Dovecot, DovecotOptions, NO_IDLE_CAPABILITY, NO_MOVE_CAPABILITY};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(30);

fn mail(subject: &str) -> Vec<u8> {
    format!(
        "From: Customer <customer@example.com>\r\nTo: support@example.com\r\n\
         Subject: {subject}\r\nMessage-ID: <{subject}@example.com>\r\n\
         Date: Mon, 4 Mar 2024 10:00:00 +0100\r\n\r\nHello.\r\n"
    )
    .into_bytes()
}

async fn plain(dovecot: &Dovecot) -> Result<Imap<TcpStream>> {
    let stream = TcpStream::connect((dovecot.host(), dovecot.plain_port())).await?;
    Imap::greeted(stream).await
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_login_sees_seeded_mail_and_idle_wakes_up() -> Result<()> {
    let dovecot = Dovecot::start()?;
    dovecot.add_user("support", "s3cret: with spaces")?;
    dovecot.append("support", "INBOX", &mail("[#1234] first"), &[])?;

    let mut imap = plain(&dovecot).await?;
    imap.command("LOGIN support \"s3cret: with spaces\"")
        .await?;
    let select = imap.command("SELECT INBOX").await?;
    assert!(
        select.iter().any(|l| l.starts_with("* 1 EXISTS")),
        "{select:?}"
    );
    let search = imap.command("UID SEARCH ALL").await?;
    assert_eq!(search, ["* SEARCH 1\r\n"]);
    let fetch = imap.command("UID FETCH 1 (BODY.PEEK[])").await?;
    assert!(fetch.concat().contains("[#1234] first"), "{fetch:?}");

    // Dovecot has now given the file a UID.
    let mails = dovecot.folder_mails("support", "INBOX")?;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].uid, Some(1));
    assert_eq!(mails[0].subject().as_deref(), Some("[#1234] first"));

    imap.send("t99 IDLE\r\n").await?;
    let line = imap.read_line(WAIT).await?;
    assert!(line.starts_with('+'), "{line}");
    dovecot.append("support", "INBOX", &mail("[#1234] second"), &[])?;
    let mut saw_exists = false;
    for _ in 0..20 {
        let line = imap.read_line(WAIT).await?;
        if line.starts_with("* 2 EXISTS") {
            saw_exists = true;
            break;
        }
    }
    assert!(saw_exists, "IDLE never announced the new mail");
    imap.send("DONE\r\n").await?;
    loop {
        let line = imap.read_line(WAIT).await?;
        if line.starts_with("t99 ") {
            assert!(line.starts_with("t99 OK"), "{line}");
            break;
        }
    }
    imap.command("LOGOUT").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_on_the_plain_port() -> Result<()> {
    let dovecot = Dovecot::start()?;
    dovecot.add_user("support", "secret")?;
    let mut imap = plain(&dovecot).await?;
    let caps = imap.command("CAPABILITY").await?;
    assert!(caps.concat().contains("STARTTLS"), "{caps:?}");
    imap.command("STARTTLS").await?;
    let tls = tls_connector(dovecot.ca_file())?
        .connect(server_name("localhost"), imap.into_inner())
        .await?;
    let mut imap = Imap::resumed(tls);
    imap.command("LOGIN support secret").await?;
    imap.command("SELECT INBOX").await?;
    imap.command("LOGOUT").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn implicit_tls_port_with_an_ip_address_name() -> Result<()> {
    let dovecot = Dovecot::start()?;
    dovecot.add_user("support", "secret")?;
    let tcp = TcpStream::connect((dovecot.host(), dovecot.tls_port())).await?;
    let tls = tls_connector(dovecot.ca_file())?
        .connect(server_name("127.0.0.1"), tcp)
        .await?;
    let mut imap = Imap::greeted(tls).await?;
    imap.command("LOGIN support secret").await?;
    imap.command("LOGOUT").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_and_users_added_while_running() -> Result<()> {
    let dovecot = Dovecot::start()?;
    dovecot.add_user("support", "secret")?;
    let mut imap = plain(&dovecot).await?;
    let err = imap.command("LOGIN support wrong").await.unwrap_err();
    assert!(format!("{err}").contains("AUTHENTICATIONFAILED"), "{err}");

    dovecot.add_user("late", "pw")?;
    let mut imap = plain(&dovecot).await?;
    imap.command("LOGIN late pw").await?;
    imap.command("SELECT INBOX").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn flags_keywords_folders_and_moves_show_on_disk() -> Result<()> {
    let dovecot = Dovecot::start()?;
    dovecot.add_user("support", "secret")?;
    dovecot.append("support", "INBOX", &mail("seen"), &["\\Seen", "$Posted"])?;
    dovecot.create_folder("support", "Processed")?;
    assert_eq!(dovecot.list_folders("support")?, ["INBOX", "Processed"]);

    let mut imap = plain(&dovecot).await?;
    imap.command("LOGIN support secret").await?;
    let select = imap.command("SELECT INBOX").await?;
    assert!(select.concat().contains("$Posted"), "{select:?}");
    let fetch = imap.command("UID FETCH 1 (FLAGS)").await?;
    assert!(
        fetch[0].contains("\\Seen") && fetch[0].contains("$Posted"),
        "{fetch:?}"
    );

    imap.command("UID STORE 1 +FLAGS (thulium-done)").await?;
    let inbox = dovecot.folder_mails("support", "INBOX")?;
    assert!(inbox[0].has_flag("thulium-done"), "{:?}", inbox[0].flags);
    assert!(inbox[0].has_flag("\\Seen"));

    imap.command("CREATE Failed").await?;
    imap.command("UID MOVE 1 Processed").await?;
    assert!(dovecot.folder_mails("support", "INBOX")?.is_empty());
    let processed = dovecot.folder_mails("support", "Processed")?;
    assert_eq!(processed.len(), 1);
    assert_eq!(processed[0].subject().as_deref(), Some("seen"));
    assert_eq!(
        dovecot.list_folders("support")?,
        ["INBOX", "Failed", "Processed"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn append_many_makes_every_mail_visible() -> Result<()> {
    let dovecot = Dovecot::start()?;
    dovecot.add_user("support", "secret")?;
    let mails: Vec<Vec<u8>> = (0..2000).map(|i| mail(&format!("[#{i}] bulk"))).collect();
    assert_eq!(dovecot.append_many("support", "INBOX", &mails, &[])?, 2000);
    let mut imap = plain(&dovecot).await?;
    imap.command("LOGIN support secret").await?;
    let select = imap.command("SELECT INBOX").await?;
    assert!(
        select.iter().any(|l| l.starts_with("* 2000 EXISTS")),
        "{select:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_keeps_ports_users_and_mail() -> Result<()> {
    let dovecot = Dovecot::start()?;
    dovecot.add_user("support", "secret")?;
    dovecot.append("support", "INBOX", &mail("kept"), &[])?;
    let mut imap = plain(&dovecot).await?;
    imap.command("LOGIN support secret").await?;
    imap.command("SELECT INBOX").await?;

    let (plain_port, tls_port) = (dovecot.plain_port(), dovecot.tls_port());
    dovecot.restart()?;
    assert_eq!(
        (dovecot.plain_port(), dovecot.tls_port()),
        (plain_port, tls_port)
    );
    // The old session is gone with the old server.
    assert!(imap.command("NOOP").await.is_err());

    let mut imap = plain(&dovecot).await?;
    imap.command("LOGIN support secret").await?;
    let search = imap.command("UID SEARCH ALL").await;
    assert!(search.is_err(), "no mailbox selected yet");
    imap.command("SELECT INBOX").await?;
    let fetch = imap
        .command("UID FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        .await?;
    assert!(fetch.concat().contains("kept"), "{fetch:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_can_be_switched_off() -> Result<()> {
    let dovecot = Dovecot::start_with(DovecotOptions {
        extra_config: NO_IDLE_CAPABILITY.into(),
        ..DovecotOptions::default()
    })?;
    dovecot.add_user("support", "secret")?;
    let mut imap = plain(&dovecot).await?;
    let caps = imap.command("LOGIN support secret").await?;
    let caps = format!("{caps:?} {:?}", imap.command("CAPABILITY").await?);
    assert!(!caps.contains("IDLE"), "{caps}");
    assert!(caps.contains("MOVE"), "{caps}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn move_can_be_switched_off_and_uidplus_stays() -> Result<()> {
    let dovecot = Dovecot::start_with(DovecotOptions {
        extra_config: NO_MOVE_CAPABILITY.into(),
        ..DovecotOptions::default()
    })?;
    dovecot.add_user("support", "secret")?;
    let mut imap = plain(&dovecot).await?;
    let caps = imap.command("LOGIN support secret").await?;
    let caps = format!("{caps:?} {:?}", imap.command("CAPABILITY").await?);
    assert!(!caps.contains("MOVE"), "{caps}");
    assert!(caps.contains("UIDPLUS") && caps.contains("IDLE"), "{caps}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn ended_sessions_are_logged_with_what_was_fetched_and_rawlog_has_the_commands() -> Result<()>
{
    let dovecot = Dovecot::start_with(DovecotOptions {
        rawlog: true,
        ..DovecotOptions::default()
    })?;
    dovecot.add_user("support", "secret")?;
    let big = format!(
        "Subject: big\r\nMessage-ID: <big@example.com>\r\n\r\n{}\r\n",
        "x".repeat(100_000)
    );
    dovecot.append("support", "INBOX", big.as_bytes(), &[])?;

    // Sizes only: Dovecot sends far less than the mail.
    let mut imap = plain(&dovecot).await?;
    imap.command("LOGIN support secret").await?;
    imap.command("SELECT INBOX").await?;
    imap.command("UID FETCH 1 (UID RFC822.SIZE)").await?;
    imap.command("LOGOUT").await?;
    testbed::wait_until("the first session's log line", WAIT, || {
        dovecot.sessions("support").len() == 1
    })
    .await?;
    assert_eq!(dovecot.logins("support"), 1);
    assert_eq!(dovecot.logins("nobody"), 0);
    let sizes = &dovecot.sessions("support")[0];
    assert!(sizes.reason.ends_with("Logged out"), "{sizes:?}");
    assert_eq!((sizes.body_count, sizes.body_bytes), (0, 0), "{sizes:?}");
    assert!(sizes.bytes_out < 10_000, "{sizes:?}");

    // The whole mail: counted, and the bytes show.
    let mut imap = plain(&dovecot).await?;
    imap.command("LOGIN support secret").await?;
    imap.command("SELECT INBOX").await?;
    imap.command("UID FETCH 1 (BODY.PEEK[])").await?;
    imap.command("UID STORE 1 +FLAGS.SILENT (\\Deleted)")
        .await?;
    imap.command("UID EXPUNGE 1").await?;
    drop(imap);
    testbed::wait_until("the second session's log line", WAIT, || {
        dovecot.sessions("support").len() == 2
    })
    .await?;
    let body = &dovecot.sessions("support")[1];
    assert!(body.reason.contains("Connection closed"), "{body:?}");
    assert_eq!(body.body_count, 1, "{body:?}");
    assert!(
        body.body_bytes > 100_000 && body.bytes_out > 100_000,
        "{body:?}"
    );
    assert_eq!(body.expunged, 1, "{body:?}");
    assert!(dovecot.sessions("nobody").is_empty());

    let commands = dovecot.imap_commands("support")?;
    let tail: Vec<&str> = commands
        .iter()
        .map(|c| c.split_once(' ').map_or(c.as_str(), |(_, rest)| rest))
        .collect();
    assert_eq!(
        tail,
        [
            "SELECT INBOX",
            "UID FETCH 1 (UID RFC822.SIZE)",
            "LOGOUT",
            "SELECT INBOX",
            "UID FETCH 1 (BODY.PEEK[])",
            "UID STORE 1 +FLAGS.SILENT (\\Deleted)",
            "UID EXPUNGE 1",
        ],
        "{commands:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_proxy_greets_only_once_released() -> Result<()> {
    let dovecot = Dovecot::start()?;
    dovecot.add_user("support", "secret")?;
    let proxy = testbed::HeldProxy::start(([127, 0, 0, 1], dovecot.plain_port()).into()).await?;
    let connect = async {
        let stream = TcpStream::connect(("127.0.0.1", proxy.port())).await?;
        let mut imap = Imap::greeted(stream).await?;
        imap.command("LOGIN support secret").await?;
        anyhow::Ok(proxy.relayed())
    };
    let release = async {
        testbed::wait_until("a held connection", WAIT, || proxy.waiting() == 1).await?;
        assert_eq!(proxy.relayed(), 0, "nothing relayed before the release");
        proxy.release();
        anyhow::Ok(())
    };
    let (relayed, released) = tokio::join!(connect, release);
    released?;
    assert_eq!(relayed?, 1);
    assert_eq!(proxy.waiting(), 0);
    // Released for good: the next connection goes straight through.
    let mut imap = Imap::greeted(TcpStream::connect(("127.0.0.1", proxy.port())).await?).await?;
    imap.command("LOGIN support secret").await?;
    assert_eq!(proxy.relayed(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn internaldate_is_the_date_header_or_what_the_test_says() -> Result<()> {
    let dovecot = Dovecot::start()?;
    dovecot.add_user("support", "secret")?;
    // mail() is dated Mon, 4 Mar 2024 10:00:00 +0100.
    dovecot.append("support", "INBOX", &mail("dated"), &[])?;
    dovecot.append("support", "INBOX", b"Subject: undated\r\n\r\nHi\r\n", &[])?;
    let received = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    dovecot
        .maildir("support")
        .append_received("INBOX", &mail("told"), &[], received)?;
    let mut imap = plain(&dovecot).await?;
    imap.command("LOGIN support secret").await?;
    imap.command("SELECT INBOX").await?;
    let fetch = imap.command("UID FETCH 1:3 (UID INTERNALDATE)").await?;
    let text = fetch.concat();
    assert!(
        text.contains("\"04-Mar-2024 09:00:00 +0000\"")
            || text.contains("\"04-Mar-2024 10:00:00 +0100\""),
        "{text}"
    );
    assert!(text.contains("\"14-Nov-2023 22:13:20 +0000\""), "{text}");
    assert!(!text.contains("1970"), "{text}");
    Ok(())
}
