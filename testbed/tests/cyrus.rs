//! The Cyrus harness: Debian's namespace (`INBOX.` and `.`), real password
//! logins, folders with modified UTF-7 names, seeding and reading, IDLE.

#[allow(dead_code, reason = "shared with the other test files")]
mod support;

use anyhow::Result;
use support::mail;
use testbed::{Cyrus, ImapClient, ImapServer, Status};

#[test]
fn namespace_folders_and_mail_round_trip() -> Result<()> {
    let cyrus = Cyrus::start()?;
    cyrus.add_user("support", "s3cret: with \"quotes\"")?;
    let mut imap = ImapClient::login_to(
        cyrus.host(),
        cyrus.plain_port(),
        "support",
        "s3cret: with \"quotes\"",
    )?;

    let namespace = imap.command_ok("NAMESPACE")?.lines();
    assert_eq!(
        namespace,
        [r#"NAMESPACE (("INBOX." ".")) (("user." ".")) (("" "."))"#]
    );

    let top = imap.command("CREATE Processed")?;
    assert_eq!(
        (top.status, top.text.as_str()),
        (Status::No, "Permission denied")
    );
    imap.command_ok("CREATE INBOX.Processed")?;
    let again = imap.command("CREATE INBOX.Processed")?;
    assert_eq!(
        (again.status, again.text.as_str()),
        (Status::No, "Mailbox already exists")
    );
    imap.command_ok("CREATE INBOX.Obs&AUI-u&AXw-one")?;
    // `/` is no separator here, and Cyrus takes no raw UTF-8 in names.
    assert_eq!(
        imap.command("CREATE \"INBOX.Obs&AUI-u&AXw-one/2026\"")?
            .status,
        Status::No
    );
    imap.command_ok("CREATE INBOX.Obs&AUI-u&AXw-one.2026")?;

    let select = imap.command_ok("SELECT INBOX")?.lines();
    assert!(
        select
            .iter()
            .any(|l| l
                == "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen \\*)] Ok"),
        "{select:?}"
    );
    imap.logout()?;

    let folders = cyrus.list_folders("support")?;
    for name in [
        "INBOX",
        "INBOX.Processed",
        "INBOX.Obsłużone",
        "INBOX.Obsłużone.2026",
    ] {
        assert!(folders.iter().any(|f| f == name), "{name} in {folders:?}");
    }
    let raw = cyrus.list_folders_raw("support")?;
    assert!(
        raw.iter().any(|f| f == "INBOX.Obs&AUI-u&AXw-one"),
        "{raw:?}"
    );
    assert!(
        cyrus
            .list("support")?
            .iter()
            .all(|e| e.delimiter.as_deref() == Some(".")),
    );

    let first = mail("[#1234] first");
    let uid = cyrus.append("support", "INBOX", &first, &["\\Seen", "$label1"])?;
    assert_eq!(uid, Some(1));
    cyrus.append("support", "INBOX.Obsłużone.2026", &mail("[#1] moved"), &[])?;
    let inbox = cyrus.folder_mails("support", "INBOX")?;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].uid, 1);
    assert_eq!(inbox[0].raw, first);
    assert!(inbox[0].has_flag("\\seen") && inbox[0].has_flag("$Label1"));
    assert_eq!(inbox[0].subject().as_deref(), Some("[#1234] first"));
    let done = cyrus.folder_mails("support", "INBOX.Obsłużone.2026")?;
    assert_eq!(done.len(), 1);
    assert!(done[0].flags.iter().all(|f| f != "\\Seen"), "{:?}", done[0]);
    assert!(cyrus.folder_mails("support", "INBOX.Processed")?.is_empty());
    Ok(())
}

#[test]
fn drop_stops_the_server() -> Result<()> {
    let cyrus = Cyrus::start()?;
    let port = cyrus.plain_port();
    let dir = cyrus.dir().to_path_buf();
    assert!(cyrus.is_running());
    drop(cyrus);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!dir.exists());
    Ok(())
}

/// The bridge's four dispositions as plain IMAP: move (Cyrus has MOVE),
/// a keyword, `\Seen`, delete (UIDPLUS's UID EXPUNGE).
#[test]
fn dispositions_work_over_imap() -> Result<()> {
    let cyrus = Cyrus::start()?;
    cyrus.add_user("support", "secret")?;
    for n in 1..=4 {
        cyrus.append("support", "INBOX", &mail(&format!("[#{n}] reply")), &[])?;
    }
    cyrus.create_folder("support", "INBOX.Obsłużone.2026")?;
    let mut imap = ImapClient::login_to(cyrus.host(), cyrus.plain_port(), "support", "secret")?;
    let capability = imap.command_ok("CAPABILITY")?.lines().join(" ");
    for word in [" MOVE ", " UIDPLUS ", " IDLE "] {
        assert!(capability.contains(word), "{word} in {capability}");
    }
    imap.select("INBOX")?;
    imap.command_ok("UID MOVE 1 \"INBOX.Obs&AUI-u&AXw-one.2026\"")?;
    imap.command_ok("UID STORE 2 +FLAGS (thulium-done)")?;
    imap.command_ok("UID STORE 3 +FLAGS (\\Seen)")?;
    imap.command_ok("UID STORE 4 +FLAGS (\\Deleted)")?;
    imap.command_ok("UID EXPUNGE 4")?;
    imap.logout()?;

    let inbox = cyrus.folder_mails("support", "INBOX")?;
    let uids: Vec<u32> = inbox.iter().map(|m| m.uid).collect();
    assert_eq!(uids, [2, 3]);
    assert_eq!(inbox[0].flags, ["thulium-done"]);
    assert_eq!(inbox[1].flags, ["\\Seen"]);
    let moved = cyrus.folder_mails("support", "INBOX.Obsłużone.2026")?;
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].subject().as_deref(), Some("[#1] reply"));
    Ok(())
}
