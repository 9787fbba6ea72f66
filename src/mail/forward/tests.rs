//! Each shape of forward as its client writes it, and forwards of forwards.

use super::*;
use crate::mail::body::BodyType;
use crate::mail::content::{ContentConfig, Prefer};

fn is_agent(address: &str) -> bool {
    address.ends_with("@acme.pl")
}

/// Unwraps a mail written with LF line ends, sent with CRLF as mail is.
fn unwrapped(raw: &str) -> Option<Forwarded> {
    let raw = raw.replace('\n', "\r\n");
    let msg = MessageParser::default()
        .parse(raw.as_bytes())
        .expect("the forward parses");
    let subject = msg.subject().unwrap_or("").to_string();
    let ctx = Context {
        subject: &subject,
        is_agent: &is_agent,
        sent: date::sent_at(&msg),
        timezone: chrono_tz::Europe::Warsaw,
    };
    unwrap(&msg, &ctx)
}

fn forwarded(raw: &str) -> Forwarded {
    match unwrapped(raw) {
        Some(f) => f,
        None => panic!("no forward found in:\n{raw}"),
    }
}

/// The body the bridge posts for the forwarded mail, as for any mail.
fn posted(f: &Forwarded) -> crate::mail::body::Body {
    let msg = MessageParser::default()
        .parse(&f.raw)
        .expect("the forwarded mail parses");
    body::extract(&msg, &ContentConfig::default())
}

fn date(f: &Forwarded) -> String {
    f.date.map(|d| d.to_rfc3339()).unwrap_or_default()
}

fn names(b: &crate::mail::body::Body) -> Vec<&str> {
    b.attachments.iter().map(|a| a.name.as_str()).collect()
}

const AGENT_HEAD: &str = "From: Jan Agent <jan@acme.pl>\nTo: support@acme.pl\n\
Date: Wed, 05 Mar 2025 09:00:00 +0100\nMessage-ID: <fwd@acme.pl>\nMIME-Version: 1.0\n";

const PDF: &str = "Content-Type: application/pdf; name=\"invoice.pdf\"\n\
Content-Disposition: attachment; filename=\"invoice.pdf\"\nContent-Transfer-Encoding: base64\n\n\
JVBERi0xLjQK\n";

fn gmail(subject: &str) -> String {
    format!(
        "{AGENT_HEAD}Subject: {subject}\nContent-Type: multipart/mixed; boundary=\"mixed\"\n\n\
--mixed\nContent-Type: multipart/alternative; boundary=\"alt\"\n\n\
--alt\nContent-Type: text/plain; charset=\"UTF-8\"\n\n\
This one landed in my inbox, sorry.\n\n\
---------- Forwarded message ---------\n\
From: Anna Nowak <anna@customer.example>\n\
Date: Tue, Mar 4, 2025 at 10:15 AM\n\
Subject: Re: [#12] Invoice\n\
To: Jan Agent <jan@acme.pl>\n\n\n\
The invoice total is wrong: it should be *120 EUR*.\n\nAnna\n\n\
--alt\nContent-Type: text/html; charset=\"UTF-8\"\n\n\
<div dir=\"ltr\">This one landed in my inbox, sorry.<br><br><div class=\"gmail_quote\">\
<div dir=\"ltr\" class=\"gmail_attr\">---------- Forwarded message ---------<br>\
From: <strong class=\"gmail_sendername\" dir=\"auto\">Anna Nowak</strong> <span dir=\"auto\">&lt;\
<a href=\"mailto:anna@customer.example\">anna@customer.example</a>&gt;</span><br>\
Date: Tue, Mar 4, 2025 at 10:15 AM<br>Subject: Re: [#12] Invoice<br>\
To: Jan Agent &lt;<a href=\"mailto:jan@acme.pl\">jan@acme.pl</a>&gt;<br></div><br><br>\
<div dir=\"ltr\">The invoice total is wrong: it should be <b>120 EUR</b>.<div><br></div><div>Anna</div></div>\n\
</div></div>\n\n--alt--\n\n--mixed\n{PDF}--mixed--\n"
    )
}

#[test]
fn gmail_inline_gives_the_customers_mail_its_html_and_the_attachment() {
    let f = forwarded(&gmail("Fwd: Re: [#12] Invoice"));
    assert_eq!(
        f.shape,
        Shape::Inline {
            separator: Some("---------- Forwarded message ---------".into())
        }
    );
    assert_eq!(f.sender, "Anna Nowak <anna@customer.example>");
    assert_eq!(f.from.as_deref(), Some("anna@customer.example"));
    assert_eq!(f.subject, "Re: [#12] Invoice");
    // No zone written: the agent's (+01:00 on 5 March is Warsaw's, so Warsaw's rules).
    assert_eq!(date(&f), "2025-03-04T10:15:00+01:00");
    assert_eq!(f.note, "This one landed in my inbox, sorry.");
    assert_eq!(f.depth, 1);
    assert_eq!(f.message_id, None);
    let b = posted(&f);
    assert_eq!(b.body_type, BodyType::Html);
    assert!(b.text.contains("<b>120 EUR</b>"), "{}", b.text);
    assert!(
        !b.text.contains("landed"),
        "the note is not posted: {}",
        b.text
    );
    assert!(!b.text.contains("Forwarded message"), "{}", b.text);
    assert!(!b.text.contains("anna@customer.example"), "{}", b.text);
    assert_eq!(names(&b), ["invoice.pdf"]);
    // The same forward read as plain text.
    let plain = ContentConfig {
        prefer: Prefer::Plain,
        ..ContentConfig::default()
    };
    let msg = MessageParser::default().parse(&f.raw).expect("parses");
    let b = body::extract(&msg, &plain);
    assert!(
        b.text
            .starts_with("The invoice total is wrong: it should be *120 EUR*.\n\nAnna"),
        "{}",
        b.text
    );
}

#[test]
fn a_subject_without_a_prefix_still_finds_a_separator_but_a_reply_does_not() {
    assert!(unwrapped(&gmail("[#12] Invoice")).is_some());
    assert!(unwrapped(&gmail("Re: [#12] Invoice")).is_none());
    assert!(unwrapped(&gmail("[#12] AW: Invoice")).is_none());
}

/// The customer's mail as it arrived: its own Message-ID, date and attachment.
const CUSTOMER_MAIL: &str = "From: Anna Nowak <anna@customer.example>\nTo: jan@acme.pl\n\
Subject: Invoice\nDate: Tue, 04 Mar 2025 10:15:00 +0100\nMessage-ID: <orig@customer.example>\n\
In-Reply-To: <reply-1@acme.pl>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"inner\"\n\n\
--inner\nContent-Type: text/plain; charset=utf-8\n\nThe invoice total is wrong.\n\n-- \nAnna Nowak\n\n\
--inner\nContent-Type: image/png; name=\"scan.png\"\nContent-Disposition: attachment; filename=\"scan.png\"\n\
Content-Transfer-Encoding: base64\n\niVBORw0KGgo=\n--inner--\n";

fn attached(encoding: &str, mail: &str) -> String {
    format!(
        "{AGENT_HEAD}Subject: FW: Invoice [#12]\nContent-Type: multipart/mixed; boundary=\"outer\"\n\n\
--outer\nContent-Type: text/plain; charset=utf-8\n\nPlease put this into #12.\n\n\
--outer\nContent-Type: message/rfc822\n{encoding}Content-Disposition: attachment; filename=\"Invoice.eml\"\n\n\
{mail}\n--outer--\n"
    )
}

#[test]
fn an_attached_mail_keeps_its_identity_date_and_attachment() {
    use base64::Engine;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(CUSTOMER_MAIL.replace('\n', "\r\n"));
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    for raw in [
        attached("", CUSTOMER_MAIL),
        attached("Content-Transfer-Encoding: base64\n", &lines.join("\n")),
    ] {
        let f = forwarded(&raw);
        assert_eq!(f.shape, Shape::Attached);
        assert_eq!(f.sender, "Anna Nowak <anna@customer.example>");
        assert_eq!(f.subject, "Invoice");
        assert_eq!(date(&f), "2025-03-04T10:15:00+01:00");
        assert_eq!(f.message_id.as_deref(), Some("orig@customer.example"));
        assert_eq!(f.references, ["<reply-1@acme.pl>"]);
        assert_eq!(f.note, "Please put this into #12.");
        let b = posted(&f);
        assert_eq!(
            b.text,
            "The invoice total is wrong.\n\nAttachments: scan.png (8 B)"
        );
        assert_eq!(names(&b), ["scan.png"]);
        // The identity the customer's mail had when it arrived by itself.
        let own = CUSTOMER_MAIL.replace('\n', "\r\n");
        let expected = MailId::of(
            own.as_bytes(),
            Some("orig@customer.example"),
            "anna@customer.example",
            " Tue, 04 Mar 2025 10:15:00 +0100",
            "Invoice",
        );
        assert_eq!(f.id, expected);
    }
}

#[test]
fn outlook_header_blocks_count_under_a_forward_subject_only() {
    let body = "Customer called about this one.\n\n________________________________\n\
From: Anna Nowak <anna@customer.example>\nSent: Tuesday, March 4, 2025 10:15 AM\n\
To: Jan Agent <jan@acme.pl>\nSubject: Invoice\n\nThe invoice total is wrong.\n\n\
From: Jan Agent <jan@acme.pl>\nSent: Monday, March 3, 2025 16:00\nTo: Anna\nSubject: Invoice\n\nOur offer.\n";
    let mail = |subject: &str| {
        format!("{AGENT_HEAD}Subject: {subject}\nContent-Type: text/plain; charset=utf-8\n\n{body}")
    };
    let f = forwarded(&mail("FW: [#12] Invoice"));
    assert_eq!(f.shape, Shape::Inline { separator: None });
    assert_eq!(f.from.as_deref(), Some("anna@customer.example"));
    assert_eq!(date(&f), "2025-03-04T10:15:00+01:00");
    assert_eq!(f.note, "Customer called about this one.");
    // Cleaned as a reply is: the history below it is cut.
    assert_eq!(posted(&f).text, "The invoice total is wrong.");
    assert!(unwrapped(&mail("RE: [#12] Invoice")).is_none());
    assert!(unwrapped(&mail("[#12] Invoice")).is_none());
}

#[test]
fn outlook_in_polish_with_its_date_and_an_old_mailto_sender() {
    let raw = format!(
        "{AGENT_HEAD}Subject: =?UTF-8?Q?PD:_[#12]_Faktura?=\nContent-Type: text/plain; charset=utf-8\n\
Content-Transfer-Encoding: 8bit\n\n\
Do zgłoszenia 12.\n\n-----Wiadomość oryginalna-----\n\
Od: Anna Nowak [mailto:Anna@Customer.Example]\nWysłane: wtorek, 4 marca 2025 10:15\n\
Do: Jan Agent\nTemat: Faktura\n\nFaktura jest błędna.\n"
    );
    let f = forwarded(&raw);
    assert_eq!(f.from.as_deref(), Some("anna@customer.example"));
    assert_eq!(f.subject, "Faktura");
    assert_eq!(date(&f), "2025-03-04T10:15:00+01:00");
    assert_eq!(f.note, "Do zgłoszenia 12.");
    assert_eq!(posted(&f).text, "Faktura jest błędna.");
}

#[test]
fn apple_mail_plain_text_quotes_what_it_forwards() {
    let raw = format!(
        "{AGENT_HEAD}Subject: Fwd: [#12] Invoice\nContent-Type: text/plain; charset=utf-8\n\n\
Sent from my iPhone\n\nBegin forwarded message:\n\n\
> From: Anna Nowak <anna@customer.example>\n> Date: 4 March 2025 at 10:15:00 CET\n\
> To: jan@acme.pl\n> Subject: Re: Invoice\n> \n> The invoice total is wrong.\n"
    );
    let f = forwarded(&raw);
    assert_eq!(
        f.shape,
        Shape::Inline {
            separator: Some("Begin forwarded message:".into())
        }
    );
    assert_eq!(f.from.as_deref(), Some("anna@customer.example"));
    assert_eq!(date(&f), "2025-03-04T10:15:00+01:00");
    assert_eq!(posted(&f).text, "The invoice total is wrong.");
}

#[test]
fn apple_mail_html_forwards_inside_a_blockquote() {
    let raw = format!(
        "{AGENT_HEAD}Subject: Fwd: [#12] Invoice\nContent-Type: text/html; charset=utf-8\n\n\
<html><body><div>See below.</div><div><br><blockquote type=\"cite\"><div>Begin forwarded message:</div>\
<br class=\"Apple-interchange-newline\"><div style=\"margin:0\"><span><b>From: </b></span>\
<span>Anna Nowak &lt;anna@customer.example&gt;</span></div>\
<div style=\"margin:0\"><span><b>Subject: </b></span><span><b>Re: Invoice</b></span></div>\
<div style=\"margin:0\"><span><b>Date: </b></span><span>4 March 2025 at 10:15:00 CET</span></div>\
<div style=\"margin:0\"><span><b>To: </b></span><span>jan@acme.pl</span></div><br>\
<div><p>The invoice total is <i>wrong</i>.</p></div></blockquote></div></body></html>\n"
    );
    let f = forwarded(&raw);
    assert_eq!(f.from.as_deref(), Some("anna@customer.example"));
    assert_eq!(f.subject, "Re: Invoice");
    assert_eq!(f.note, "See below.");
    let b = posted(&f);
    assert_eq!(b.body_type, BodyType::Html);
    assert_eq!(
        b.text,
        "<div><p>The invoice total is <i>wrong</i>.</p></div>"
    );
}

#[test]
fn thunderbird_writes_a_separator_and_a_tabbed_block() {
    let raw = format!(
        "{AGENT_HEAD}Subject: Fwd: Invoice\nContent-Type: text/plain; charset=utf-8; format=flowed\n\n\
For ticket 12.\n\n\n-------- Forwarded Message --------\nSubject: \tInvoice\n\
Date: \tTue, 4 Mar 2025 10:15:00 +0100\nFrom: \tAnna Nowak <anna@customer.example>\n\
To: \tjan@acme.pl\n\n\n\nThe invoice total is wrong.\n"
    );
    let f = forwarded(&raw);
    assert_eq!(
        f.shape,
        Shape::Inline {
            separator: Some("-------- Forwarded Message --------".into())
        }
    );
    assert_eq!(f.sender, "Anna Nowak <anna@customer.example>");
    assert_eq!(date(&f), "2025-03-04T10:15:00+01:00");
    assert_eq!(f.note, "For ticket 12.");
    assert_eq!(posted(&f).text, "The invoice total is wrong.");
}

#[test]
fn thunderbird_html_puts_the_block_in_a_table() {
    let raw = format!(
        "{AGENT_HEAD}Subject: Fwd: Invoice\nContent-Type: text/html; charset=utf-8\n\n\
<html><body><p>For ticket 12.</p><div class=\"moz-forward-container\"><br><br>\
-------- Forwarded Message --------\n<table class=\"moz-email-headers-table\"><tbody>\
<tr><th>Subject: </th><td>Invoice</td></tr>\
<tr><th>Date: </th><td>Tue, 4 Mar 2025 10:15:00 +0100</td></tr>\
<tr><th>From: </th><td>Anna Nowak <a href=\"mailto:anna@customer.example\">&lt;anna@customer.example&gt;</a></td></tr>\
<tr><th>To: </th><td>jan@acme.pl</td></tr></tbody></table><br><br>\
<p>The invoice total is <b>wrong</b>.</p></div></body></html>\n"
    );
    let f = forwarded(&raw);
    assert_eq!(f.from.as_deref(), Some("anna@customer.example"));
    assert_eq!(date(&f), "2025-03-04T10:15:00+01:00");
    assert_eq!(f.note, "For ticket 12.");
    assert_eq!(posted(&f).text, "<p>The invoice total is <b>wrong</b>.</p>");
}

/// Gmail forwarding an HTML-only mail from an HTML-only client: no text part anywhere.
#[test]
fn an_html_only_inline_forward_posts_the_forwarded_html() {
    let raw = format!(
        "{AGENT_HEAD}Subject: Fwd: [#12] Invoice\nContent-Type: text/html; charset=utf-8\n\n\
<div dir=\"ltr\">fyi<div class=\"gmail_quote\"><div class=\"gmail_attr\">---------- Forwarded message ---------<br>\
From: Anna Nowak &lt;anna@customer.example&gt;<br>Date: Tue, Mar 4, 2025 at 10:15 AM<br>\
Subject: Invoice<br>To: &lt;jan@acme.pl&gt;<br></div><br><br>\
<table><tr><td style=\"color:red\">Total: <b>100 EUR</b></td></tr><tr><td>should be 120 EUR</td></tr></table>\
<img src=\"https://tracker.example/p.gif\"></div></div>\n"
    );
    let f = forwarded(&raw);
    assert_eq!(f.from.as_deref(), Some("anna@customer.example"));
    assert_eq!(f.note, "fyi");
    let b = posted(&f);
    assert_eq!(b.body_type, BodyType::Html);
    assert!(
        b.text.contains("<b>100 EUR</b>") && b.text.contains("should be 120 EUR"),
        "{}",
        b.text
    );
    assert!(
        !b.text.contains("tracker.example") && !b.text.contains("fyi"),
        "{}",
        b.text
    );
}

#[test]
fn a_forward_of_an_agents_forward_gives_the_customers_mail() {
    // Ewa (an agent) forwarded Anna's mail to Jan; Jan forwards that to the helpdesk.
    let raw = format!(
        "{AGENT_HEAD}Subject: Fwd: Fwd: Invoice [#12]\nContent-Type: text/plain; charset=utf-8\n\n\
Jan's note.\n\n---------- Forwarded message ---------\nFrom: Ewa <ewa@acme.pl>\n\
Date: Wed, Mar 5, 2025 at 8:00 AM\nSubject: Fwd: Invoice\nTo: Jan <jan@acme.pl>\n\n\
Ewa's note: yours, I think.\n\n---------- Forwarded message ---------\n\
From: Anna Nowak <anna@customer.example>\nDate: Tue, Mar 4, 2025 at 10:15 AM\nSubject: Invoice\n\
To: Ewa <ewa@acme.pl>\n\nThe invoice total is wrong.\n"
    );
    let f = forwarded(&raw);
    assert_eq!(f.depth, 2);
    assert_eq!(f.from.as_deref(), Some("anna@customer.example"));
    assert_eq!(f.subject, "Invoice");
    assert_eq!(date(&f), "2025-03-04T10:15:00+01:00");
    assert_eq!(f.note, "Jan's note.", "the outer agent's note");
    assert_eq!(posted(&f).text, "The invoice total is wrong.");
}

#[test]
fn a_customers_own_forward_is_the_customers_mail() {
    // Anna forwarded her supplier's mail to Jan with a question; Jan forwards it on.
    let raw = format!(
        "{AGENT_HEAD}Subject: Fwd: [#12] Fwd: Delivery\nContent-Type: text/plain; charset=utf-8\n\n\
---------- Forwarded message ---------\nFrom: Anna Nowak <anna@customer.example>\n\
Date: Tue, Mar 4, 2025 at 10:15 AM\nSubject: Fwd: Delivery\nTo: Jan <jan@acme.pl>\n\n\
Is this delay because of you?\n\n---------- Forwarded message ---------\n\
From: Supplier <orders@supplier.example>\nDate: Mon, Mar 3, 2025 at 9:00 AM\nSubject: Delivery\n\
To: anna@customer.example\n\nYour delivery is late.\n"
    );
    let f = forwarded(&raw);
    assert_eq!(f.depth, 1);
    assert_eq!(f.from.as_deref(), Some("anna@customer.example"));
    assert_eq!(f.note, "");
    let text = posted(&f).text;
    assert!(text.starts_with("Is this delay because of you?"), "{text}");
    assert!(
        text.contains("Your delivery is late."),
        "what she shared stays: {text}"
    );
}

#[test]
fn an_attached_forward_of_an_agents_inline_forward() {
    let ewa = "From: Ewa <ewa@acme.pl>\nTo: jan@acme.pl\nSubject: Fwd: Invoice\n\
Date: Wed, 05 Mar 2025 08:00:00 +0100\nMessage-ID: <ewa@acme.pl>\nContent-Type: text/plain; charset=utf-8\n\n\
Yours.\n\nBegin forwarded message:\n\nFrom: Anna Nowak <anna@customer.example>\n\
Subject: Invoice\nDate: 4 March 2025 at 10:15:00 CET\nTo: ewa@acme.pl\n\nThe invoice total is wrong.\n";
    let f = forwarded(&attached("", ewa));
    assert_eq!(f.depth, 2);
    assert_eq!(f.from.as_deref(), Some("anna@customer.example"));
    assert_eq!(f.note, "Please put this into #12.");
    assert_eq!(posted(&f).text, "The invoice total is wrong.");
}

#[test]
fn a_mail_that_forwards_nothing() {
    let plain = format!(
        "{AGENT_HEAD}Subject: [#12] Invoice\nContent-Type: text/plain\n\nI called the customer.\n"
    );
    assert!(unwrapped(&plain).is_none());
    // A separator without a header block names no sender.
    let bare = format!(
        "{AGENT_HEAD}Subject: Fwd: x\nContent-Type: text/plain\n\n---------- Forwarded message ---------\n\nHello\n"
    );
    assert!(unwrapped(&bare).is_none());
    // Quoted history in a reply: not a forward.
    let quoted = format!(
        "{AGENT_HEAD}Subject: [#12] x\nContent-Type: text/plain\n\nSee below.\n\n\
> ---------- Forwarded message ---------\n> From: Anna <anna@customer.example>\n\
> Date: Tue, Mar 4, 2025 at 10:15 AM\n> Subject: x\n> To: jan@acme.pl\n>\n> Hi\n"
    );
    assert!(unwrapped(&quoted).is_none());
}

#[test]
fn subject_prefixes() {
    for (subject, prefix) in [
        ("Fwd: Re: x", Some("fwd")),
        ("[#12] FW: x", Some("fw")),
        ("AW[2]: x", Some("aw")),
        ("[EXT] [#1] Odp : x", Some("odp")),
        ("[#12] Invoice", None),
        ("", None),
        ("[unclosed Fwd: x", None),
    ] {
        assert_eq!(first_prefix(subject).as_deref(), prefix, "{subject}");
    }
}

#[test]
fn addresses_in_sender_lines() {
    for (value, address) in [
        (
            "Anna Nowak <Anna@Customer.Example>",
            Some("anna@customer.example"),
        ),
        (
            "Anna Nowak [mailto:anna@customer.example]",
            Some("anna@customer.example"),
        ),
        ("anna@customer.example", Some("anna@customer.example")),
        (
            "\"Nowak, Anna\" <anna@customer.example>",
            Some("anna@customer.example"),
        ),
        ("Anna Nowak", None),
        ("Anna <not an address>", None),
    ] {
        assert_eq!(address_in(value).as_deref(), address, "{value}");
    }
}

#[test]
fn dates_without_a_zone_are_the_agents() {
    let written = |t: &str| date::parse_wall_clock(t).expect("a date");
    let at = |s: &str| DateTime::parse_from_rfc3339(s).ok();
    let tz = chrono_tz::Europe::Warsaw;
    // An agent in Warsaw in March forwards a mail of July: Warsaw's summer time.
    let placed = place_in_zone(
        written("Jul 4, 2025 at 10:15 AM"),
        at("2025-03-05T09:00:00+01:00"),
        tz,
    );
    assert_eq!(placed, at("2025-07-04T10:15:00+02:00"));
    // An agent in New York: their own offset.
    let placed = place_in_zone(
        written("Jul 4, 2025 at 10:15 AM"),
        at("2025-03-05T09:00:00-05:00"),
        tz,
    );
    assert_eq!(placed, at("2025-07-04T10:15:00-05:00"));
    // A written zone wins; without the forward's date, the helpdesk's zone.
    let placed = place_in_zone(written("4 March 2025 at 10:15:00 CET"), None, tz);
    assert_eq!(placed, at("2025-03-04T10:15:00+01:00"));
    let placed = place_in_zone(written("Di., 4. März 2025 um 10:15 Uhr"), None, tz);
    assert_eq!(placed, at("2025-03-04T10:15:00+01:00"));
}
