//! Where handled mails go (`move:`, `flag:`, `seen`, `delete`), on a real Dovecot
//! with and without MOVE, read back from the maildir and from Dovecot's own record
//! of the commands the bridge sent (rawlog).

mod support;

use support::*;
use testbed::{DovecotOptions, NO_MOVE_CAPABILITY};

const UNMATCHED: &[u8] = b"From: x@customer.example\r\nSubject: Question without a tag\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\nMessage-ID: <nt@x>\r\n\r\nHi\r\n";
const AUTO_REPLY: &[u8] = b"From: x@customer.example\r\nSubject: Out of office [TH#62]\r\nAuto-Submitted: auto-replied\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\nMessage-ID: <ar@x>\r\n\r\naway\r\n";

/// A world whose Dovecot records the commands it is sent.
async fn world(extra_config: &str) -> World {
    World::start_with(DovecotOptions {
        rawlog: true,
        extra_config: extra_config.into(),
        ..DovecotOptions::default()
    })
    .await
}

/// A mailbox with these dispositions (`on_posted`, `on_unmatched`, `on_ignored`,
/// `on_failed`, `on_unverified`).
fn mailbox(on: [&str; 5]) -> MailboxOpts {
    let keys = [
        "on_posted",
        "on_unmatched",
        "on_ignored",
        "on_failed",
        "on_unverified",
    ];
    MailboxOpts {
        extra: keys
            .iter()
            .zip(on)
            .map(|(key, value)| format!("{key} = {value:?}\n"))
            .collect(),
        ..MailboxOpts::default()
    }
}

/// The commands the bridge sent, without their tags.
fn commands(w: &World) -> Vec<String> {
    w.dovecot
        .imap_commands(USER)
        .expect("rawlog readable")
        .into_iter()
        .map(|c| {
            c.split_once(' ')
                .map_or(c.clone(), |(_, rest)| rest.to_string())
        })
        .collect()
}

fn uid_of(w: &World, folder: &str, subject: &str) -> u32 {
    w.folder(folder)
        .iter()
        .find(|m| m.subject().as_deref() == Some(subject))
        .and_then(|m| m.uid)
        .unwrap_or_else(|| panic!("no {subject:?} with a UID in {folder}"))
}

/// One more pass handles nothing: no request to the API, no mail event.
async fn second_pass_finds_nothing(w: &World, config: &std::path::Path) {
    let requests = w.api.requests().len();
    let out = once(config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.requests().len(), requests, "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("mail handled"),
        "{}",
        text(&out)
    );
}

/// A reply to ticket 60 saying `text`, an unmatched mail, and another client's reply to
/// ticket 61 marked \Deleted but not expunged yet: not ours to expunge.
fn ours_and_another_clients_deleted(w: &World, text: &str) {
    w.api.add_ticket(60, CUSTOMER);
    w.api.add_ticket(61, CUSTOMER);
    w.dovecot
        .append(
            USER,
            "INBOX",
            &reply(61, 1, "someone else's"),
            &["\\Deleted"],
        )
        .unwrap();
    w.append(&reply(60, 1, text));
    w.append(UNMATCHED);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_move_a_copy_and_uid_expunge_of_exactly_those_mails_is_used() {
    let w = world(NO_MOVE_CAPABILITY).await;
    ours_and_another_clients_deleted(&w, "moved without MOVE");
    let config = w.config();
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));

    assert_eq!(w.api.posted(60).len(), 1);
    assert!(
        w.api.posted(61).is_empty(),
        "a \\Deleted mail is no candidate"
    );
    assert_eq!(w.subjects("Processed"), ["Re: [TH#60] Order question"]);
    assert_eq!(w.subjects("Unmatched"), ["Question without a tag"]);
    let inbox = w.folder("INBOX");
    assert_eq!(inbox.len(), 1, "the foreign mail is still there: {inbox:?}");
    assert_eq!(
        inbox[0].subject().as_deref(),
        Some("Re: [TH#61] Order question")
    );
    assert!(inbox[0].has_flag("\\Deleted"));

    let sent = commands(&w);
    println!("{sent:#?}");
    assert!(
        !sent.iter().any(|c| c.contains("MOVE")),
        "MOVE used though not offered: {sent:?}"
    );
    assert!(
        !sent.iter().any(|c| c == "EXPUNGE" || c == "CLOSE"),
        "a plain EXPUNGE (or CLOSE) would remove the foreign mail too: {sent:?}"
    );
    let expunges: Vec<&String> = sent
        .iter()
        .filter(|c| c.starts_with("UID EXPUNGE"))
        .collect();
    assert_eq!(expunges.len(), 2, "{sent:?}");
    for (folder, subject) in [
        ("Processed", "Re: [TH#60] Order question"),
        ("Unmatched", "Question without a tag"),
    ] {
        let copy = sent
            .iter()
            .position(|c| c.starts_with("UID COPY") && c.contains(folder))
            .unwrap_or_else(|| panic!("no UID COPY to {folder}: {sent:?}"));
        // The UID it had in INBOX: UIDs were given in order of delivery (2 and 3).
        let uid = if folder == "Processed" { 2 } else { 3 };
        assert_eq!(
            sent[copy],
            format!("UID COPY {uid} \"{folder}\""),
            "{sent:?}"
        );
        assert_eq!(
            sent[copy + 1],
            format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"),
            "{sent:?}"
        );
        assert_eq!(sent[copy + 2], format!("UID EXPUNGE {uid}"), "{sent:?}");
        assert_eq!(
            uid_of(&w, folder, subject),
            1,
            "the copy is the folder's first mail"
        );
    }
    second_pass_finds_nothing(&w, &config).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn flag_dispositions_keep_every_mail_in_place_with_its_keyword_only() {
    let w = world("").await;
    w.api.add_ticket(60, CUSTOMER);
    w.append(&reply(60, 1, "flagged when posted"));
    w.append(UNMATCHED);
    w.append(AUTO_REPLY);
    w.append(&reply(404, 1, "to a ticket that does not exist"));
    let config = w.config_with(
        &[mailbox([
            "flag:ThuliumPosted",
            "flag:ThuliumUnmatched",
            "flag:ThuliumIgnored",
            "flag:ThuliumFailed",
            "flag:ThuliumUnverified",
        ])],
        "",
        "",
    );
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.posted(60).len(), 1);

    let flags_of = |subject: &str| -> Vec<String> {
        let inbox = w.folder("INBOX");
        let mail = inbox
            .iter()
            .find(|m| m.subject().as_deref() == Some(subject))
            .unwrap_or_else(|| panic!("{subject:?} left INBOX: {inbox:?}"));
        mail.flags.clone()
    };
    assert_eq!(flags_of("Re: [TH#60] Order question"), ["ThuliumPosted"]);
    assert_eq!(flags_of("Question without a tag"), ["ThuliumUnmatched"]);
    assert_eq!(flags_of("Out of office [TH#62]"), ["ThuliumIgnored"]);
    assert_eq!(flags_of("Re: [TH#404] Order question"), ["ThuliumFailed"]);
    assert_eq!(w.folder("INBOX").len(), 4);
    assert_eq!(
        w.dovecot.list_folders(USER).unwrap(),
        ["INBOX", "Approve"],
        "no folder is made without a move: target, but the approve folder"
    );
    let sent = commands(&w);
    assert!(
        !sent
            .iter()
            .any(|c| c.contains("EXPUNGE") || c.contains("\\Deleted")),
        "{sent:?}"
    );
    second_pass_finds_nothing(&w, &config).await;
    // Once each: the reply's POST, and the 404 for the missing ticket (to a ticket
    // read under verify_sender, else to the POST).
    let requests = w.api.requests();
    let posts_to_60 = requests
        .iter()
        .filter(|r| r.method == "POST" && r.ticket == Some(60))
        .count();
    let not_found = requests
        .iter()
        .filter(|r| r.ticket == Some(404) && r.status == Some(404))
        .count();
    assert_eq!((posts_to_60, not_found), (1, 1), "{requests:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn seen_marks_handled_mail_read_and_only_unseen_mail_is_a_candidate() {
    let w = world("").await;
    w.api.add_ticket(60, CUSTOMER);
    w.api.add_ticket(63, CUSTOMER);
    w.append(&reply(60, 1, "marked seen when posted"));
    w.append(UNMATCHED);
    // Read by a person before the bridge came: with a `seen` disposition, read mail
    // counts as handled (README: a candidate is unseen then), so it is left alone.
    w.dovecot
        .append(USER, "INBOX", &reply(63, 1, "already read"), &["\\Seen"])
        .unwrap();
    let config = w.config_with(
        &[mailbox([
            "seen",
            "seen",
            "move:Ignored",
            "flag:ThuliumFailed",
            "move:Unverified",
        ])],
        "",
        "",
    );
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.posted(60).len(), 1);
    assert!(w.api.posted(63).is_empty(), "a read mail is no candidate");
    let inbox = w.folder("INBOX");
    assert_eq!(inbox.len(), 3, "{inbox:?}");
    for m in &inbox {
        assert_eq!(m.flags, ["\\Seen"], "{:?}: {:?}", m.subject(), m.flags);
    }
    second_pass_finds_nothing(&w, &config).await;
    assert_eq!(posts(&w.api), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_expunges_exactly_the_posted_mail() {
    let w = world("").await;
    ours_and_another_clients_deleted(&w, "deleted when posted");
    let config = w.config_with(
        &[mailbox([
            "delete",
            "move:Unmatched",
            "move:Ignored",
            "move:Failed",
            "move:Unverified",
        ])],
        "",
        "",
    );
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.posted(60).len(), 1);
    let inbox = w.folder("INBOX");
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert_eq!(
        inbox[0].subject().as_deref(),
        Some("Re: [TH#61] Order question")
    );
    assert!(inbox[0].has_flag("\\Deleted"));
    assert_eq!(w.subjects("Unmatched"), ["Question without a tag"]);
    for folder in w.dovecot.list_folders(USER).unwrap() {
        assert!(
            !w.subjects(&folder)
                .contains(&"Re: [TH#60] Order question".to_string()),
            "the posted mail is in {folder}"
        );
    }
    let sent = commands(&w);
    assert!(sent.contains(&"UID EXPUNGE 2".to_string()), "{sent:?}");
    assert!(
        !sent.iter().any(|c| c == "EXPUNGE" || c == "CLOSE"),
        "{sent:?}"
    );
    second_pass_finds_nothing(&w, &config).await;
    assert_eq!(posts(&w.api), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_is_refused_for_mail_that_was_never_posted() {
    let w = World::start().await;
    for (key, i) in [
        ("on_unmatched", 1),
        ("on_ignored", 2),
        ("on_failed", 3),
        ("on_unverified", 4),
    ] {
        let mut on = [
            "move:Processed",
            "move:Unmatched",
            "move:Ignored",
            "move:Failed",
            "move:Unverified",
        ];
        on[i] = "delete";
        let config = w.config_with(&[mailbox(on)], "", "");
        let out = once(&config, &[]).await;
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("mailbox[0].{key}")),
            "names the key: {stderr}"
        );
    }
}
