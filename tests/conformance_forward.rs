//! Real forwards of the corpus unwrapped: Gmail's inline forward (2005), Outlook's
//! forward as attachment, Outlook's forward of a forward with its attachments, web.de's
//! HTML-only forward of a forward in German; and every corpus mail taken as an agent's
//! forward, unwrapped without a panic into a mail that reads.

mod corpus;

use mail_parser::MessageParser;
use thulium_mail_bridge::mail::body::{self, Body, BodyType};
use thulium_mail_bridge::mail::content::ContentConfig;
use thulium_mail_bridge::mail::date::sent_at;
use thulium_mail_bridge::mail::forward::{Context, Forwarded, Shape, unwrap};

/// The corpus mail at `path` unwrapped, with `agent` (an address suffix) as the agents.
fn unwrapped(path: &str, agent: &str) -> Option<Forwarded> {
    let raw = corpus::normalize(std::fs::read(corpus::file(path)).expect("readable"));
    let msg = MessageParser::default().parse(&raw).expect("parses");
    let subject = msg.subject().unwrap_or("").to_string();
    let is_agent = |a: &str| a.ends_with(agent);
    let ctx = Context {
        subject: &subject,
        is_agent: &is_agent,
        sent: sent_at(&msg),
        timezone: chrono_tz::Europe::Warsaw,
    };
    unwrap(&msg, &ctx)
}

fn posted(f: &Forwarded) -> Body {
    let msg = MessageParser::default()
        .parse(&f.raw)
        .expect("the forwarded mail parses");
    body::extract(&msg, &ContentConfig::default())
}

fn date(f: &Forwarded) -> String {
    f.date.map(|d| d.to_rfc3339()).unwrap_or_default()
}

#[test]
fn gmail_inline_forward_of_2005() {
    let f = unwrapped(
        "ruby-mail/spec/fixtures/emails/plain_emails/raw_email8.eml",
        "@gmail.com",
    )
    .expect("a forward");
    assert_eq!(
        f.shape,
        Shape::Inline {
            separator: Some("---------- Forwarded message ----------".into())
        }
    );
    assert_eq!(f.from.as_deref(), Some("xxxxxxxx@xxx.com"));
    assert_eq!(f.subject, "Signed email causes file attachments");
    // "May 8, 2005 1:17 PM" has no zone: the forward's own (-0500) places it.
    assert_eq!(date(&f), "2005-05-08T13:17:00-05:00");
    assert_eq!(
        f.note,
        "We should not include these files or vcards as attachments."
    );
    let b = posted(&f);
    assert_eq!(b.body_type, BodyType::Plain);
    assert!(
        b.text
            .starts_with("Hi,\n\nTest attachments oddly encoded with japanese charset."),
        "{}",
        b.text
    );
    assert_eq!(
        b.attachments.len(),
        1,
        "the forward's attachment is the mail's"
    );
}

#[test]
fn outlook_forward_as_attachment() {
    let f =
        unwrapped("request-tracker/t/data/emails/outlook-rfc822", "@localhost").expect("a forward");
    assert_eq!(f.shape, Shape::Attached);
    assert_eq!(f.sender, "Microsoft <foo@example.com>");
    assert_eq!(f.subject, "Updates to our terms of use");
    assert_eq!(date(&f), "2023-08-31T15:51:33+00:00");
    assert!(
        f.message_id
            .as_deref()
            .is_some_and(|id| id.ends_with("@microsoft.com]")),
        "{:?}",
        f.message_id
    );
    assert!(
        f.note.starts_with("Could this look more spammy?"),
        "{}",
        f.note
    );
    assert!(
        !posted(&f).text.contains("spammy"),
        "the note is not posted"
    );
}

#[test]
fn outlook_forward_of_a_forward_with_its_attachments() {
    let path = "zammad/test/data/mail/mail082.box";
    // John forwards his own forward: both levels are his, the innermost mail is posted.
    let f = unwrapped(path, "from@example.com").expect("a forward");
    assert_eq!(f.shape, Shape::Inline { separator: None });
    assert_eq!(f.depth, 2);
    assert_eq!(f.subject, "Tax Invoice INX4183");
    // "Monday, 04 March 2019 12:41": the forward's +0200 (not Warsaw's +0100 then).
    assert_eq!(date(&f), "2019-03-04T12:41:00+02:00");
    let b = posted(&f);
    assert!(b.text.contains("Tax Invoice"), "{}", b.text);
    assert!(!b.text.contains("Jammer Janette"), "the note: {}", b.text);
    let names: Vec<&str> = b.attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        ["Tax Invoice INX4183.PDF", "Fortuin NGM claim vorm.pdf"]
    );
    // Sent by someone who is not an agent, the first level is that person's mail.
    let f = unwrapped(path, "@agents.example").expect("a forward");
    assert_eq!(f.depth, 1);
    assert_eq!(f.subject, "FW: Tax Invoice INX4183");
    assert_eq!(date(&f), "2019-03-06T08:52:00+02:00");
}

#[test]
fn web_de_html_forward_of_a_forward_in_german() {
    let f = unwrapped("zammad/test/data/mail/mail036.box", "@example.com").expect("a forward");
    assert_eq!(f.depth, 2);
    assert_eq!(f.from.as_deref(), Some("me@example.com"));
    assert_eq!(f.subject, "Zugangsdaten");
    // "Freitag, 22. Januar 2016 um 11:52 Uhr".
    assert_eq!(date(&f), "2016-01-22T11:52:00+01:00");
    let b = posted(&f);
    assert_eq!(b.body_type, BodyType::Html);
    assert!(
        b.text.contains("Um noch vertrauter zu werden"),
        "{}",
        b.text
    );
    assert!(!b.text.contains("Gesendet"), "{}", b.text);
}

#[test]
fn every_corpus_mail_as_an_agents_forward() {
    let dir = corpus::dir();
    let mails = corpus::raw_mails(&dir);
    let mut found = 0;
    for path in &mails {
        let raw = corpus::normalize(std::fs::read(path).expect("readable"));
        let Some(msg) = MessageParser::default().parse(&raw) else {
            continue;
        };
        let subject = msg.subject().unwrap_or("").to_string();
        let ctx = Context {
            subject: &subject,
            is_agent: &|_| true,
            sent: sent_at(&msg),
            timezone: chrono_tz::Europe::Warsaw,
        };
        if let Some(f) = unwrap(&msg, &ctx) {
            found += 1;
            assert!(f.depth >= 1, "{}", path.display());
            assert!(
                MessageParser::default().parse(&f.raw).is_some(),
                "{}: the forwarded mail does not read",
                path.display()
            );
            let _ = posted(&f);
        }
    }
    println!("{found} of {} corpus mails forward a mail", mails.len());
    assert!(found >= 4, "the forwards above are among them");
}
