//! A mail that was being read each time the process died is quarantined, on the real
//! path: the marker a killed process leaves behind, a real Dovecot and the fake API.

mod support;

use sha2::{Digest, Sha256};
use support::*;
use testbed::{Fault, ImapClient};

/// Leaves the marker a process leaves when it dies while reading mail `uid`.
fn died_reading(w: &World, uid_validity: u32, uid: u32) {
    let dir = w.dir.path().join("state").join("reading");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let name = hex::encode(&Sha256::digest(b"support")[..8]);
    std::fs::write(dir.join(name), format!("{uid_validity} {uid}\n")).expect("marker");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mail_in_hand_at_two_deaths_is_quarantined_and_never_posted() {
    let w = World::start().await;
    w.api.add_ticket(1001, CUSTOMER);
    w.append(&reply(1001, 1, "The mail the process died on."));
    let mut imap =
        ImapClient::login_to("127.0.0.1", w.dovecot.plain_port(), USER, PASSWORD).expect("login");
    let select = imap.command_ok("SELECT INBOX").expect("select").lines();
    // `* OK [UIDVALIDITY 1764580000] UIDs valid`
    let uid_validity: u32 = select
        .iter()
        .find_map(|l| {
            l.split("[UIDVALIDITY ")
                .nth(1)?
                .split(']')
                .next()?
                .parse()
                .ok()
        })
        .expect("UIDVALIDITY in the SELECT answer");
    let uid = w.folder("INBOX")[0]
        .uid
        .expect("a UID once Dovecot has seen the mail");
    let config = w.config();

    // The first death: a strike. The mail is read again, and waits (the API is down).
    died_reading(&w, uid_validity, uid);
    w.api.fail_next(5, Fault::Status(503));
    let first = once(&config, &[]).await;
    assert!(
        text(&first).contains("a mail was being read when the bridge stopped"),
        "{}",
        text(&first)
    );
    assert_eq!(w.folder("INBOX").len(), 1, "{}", text(&first));
    assert_eq!(w.api.total_posted(), 0);

    // The second death: quarantined, not read, not even tried.
    let tried = posts(&w.api);
    died_reading(&w, uid_validity, uid);
    let second = once(&config, &[]).await;
    assert_eq!(posts(&w.api), tried, "{}", text(&second));
    assert_eq!(w.api.total_posted(), 0);
    assert!(w.folder("INBOX").is_empty(), "{}", text(&second));
    assert_eq!(w.folder("Failed").len(), 1, "{}", text(&second));
    assert!(text(&second).contains("quarantined"), "{}", text(&second));

    // A clean stop leaves no marker: a later start strikes nothing.
    w.append(&reply(1001, 2, "A later mail."));
    let third = once(&config, &[]).await;
    assert!(third.status.success(), "{}", text(&third));
    assert!(!text(&third).contains("being read when the bridge stopped"));
    assert_eq!(w.api.total_posted(), 1);
}
