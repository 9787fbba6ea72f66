//! Forward into a ticket: an agent (`[thulium] agents`, authenticated by the receiving
//! server) forwards a customer's mail to the helpdesk, and the forwarded mail is what
//! reaches the ticket — its text, its date, its attachments — not the agent's note. Real
//! Dovecot, a second IMAP client moving mails, the documented-shape fake API.

mod support;

use support::*;

/// The receiving server's Authentication-Results id (the mailbox trusts it).
const MX: &str = "mx.acme.example";
const AGENTS: &str = "agents = [\"*@acme.pl\", \"jan@partner.example\"]";

/// The mailbox trusts `MX`; `extra` goes after that.
fn mailbox(extra: &str) -> MailboxOpts {
    MailboxOpts {
        extra: format!("trusted_authserv_id = [{MX:?}]\n{extra}"),
        ..MailboxOpts::default()
    }
}

/// The forward's own Date: now, in Warsaw's current offset, as an agent's client in the
/// helpdesk's zone writes it (so INTERNALDATE never replaces it, and a forwarded date
/// written without a zone is read in Warsaw's).
fn now_in_warsaw() -> String {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Warsaw)
        .to_rfc2822()
}

/// Jan's mail, `dmarc` the receiving server's verdict on acme.pl.
fn from_jan(dmarc: &str, message_id: &str, subject: &str, rest: &str) -> Vec<u8> {
    format!(
        "Authentication-Results: {MX}; dmarc={dmarc} header.from=acme.pl\r\n\
         From: Jan Agent <jan@acme.pl>\r\nTo: support@acme.example\r\nSubject: {subject}\r\n\
         Date: {}\r\nMessage-ID: <{message_id}>\r\nMIME-Version: 1.0\r\n{rest}",
        now_in_warsaw()
    )
    .into_bytes()
}

/// Gmail's inline forward of Anna's mail of 1 December, 16:05 (written without a zone).
fn gmail_inline(dmarc: &str, message_id: &str, ticket: u64, text: &str) -> Vec<u8> {
    from_jan(
        dmarc,
        message_id,
        &format!("Fwd: Re: [#{ticket}] Printer"),
        &format!(
            "Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n\
             --alt\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n\
             Anna wrote to me directly, sorry.\r\n\r\n\
             ---------- Forwarded message ---------\r\n\
             From: Anna Nowak <{CUSTOMER}>\r\nDate: Tue, Dec 1, 2026 at 4:05 PM\r\n\
             Subject: Re: [#{ticket}] Printer\r\nTo: Jan Agent <jan@acme.pl>\r\n\r\n\r\n\
             {text}\r\n\r\nAnna\r\n\r\n\
             --alt\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n\
             <div dir=\"ltr\">Anna wrote to me directly, sorry.<br><br><div class=\"gmail_quote\">\
             <div dir=\"ltr\" class=\"gmail_attr\">---------- Forwarded message ---------<br>\
             From: <strong class=\"gmail_sendername\">Anna Nowak</strong> &lt;{CUSTOMER}&gt;<br>\
             Date: Tue, Dec 1, 2026 at 4:05 PM<br>Subject: Re: [#{ticket}] Printer<br>\
             To: Jan Agent &lt;jan@acme.pl&gt;<br></div><br><br>\
             <div dir=\"ltr\">{text}<div><br></div><div>Anna</div></div></div></div>\r\n\
             --alt--\r\n"
        ),
    )
}

/// Anna's own mail, with a PDF, as it arrived at Jan's address.
fn annas_mail(message_id: &str, subject: &str, text: &str) -> String {
    format!(
        "From: Anna Nowak <{CUSTOMER}>\r\nTo: jan@acme.pl\r\nSubject: {subject}\r\n\
         Date: Tue, 01 Dec 2026 16:30:00 +0100\r\nMessage-ID: <{message_id}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"inner\"\r\n\r\n\
         --inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\
         --inner\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"scan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         JVBERi0xLjQKJcOkw7zDtsOfCg==\r\n--inner--\r\n"
    )
}

/// Outlook's "forward as attachment" of Anna's mail, with Jan's note.
fn attached(message_id: &str, subject: &str, note: &str, anna: &str) -> Vec<u8> {
    from_jan(
        "pass",
        message_id,
        subject,
        &format!(
            "Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
             --outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{note}\r\n\
             --outer\r\nContent-Type: message/rfc822\r\n\
             Content-Disposition: attachment; filename=\"Printer.eml\"\r\n\r\n{anna}\r\n--outer--\r\n"
        ),
    )
}

/// Moves every mail of `from` into `to`, as a person's mail client would.
fn move_all(w: &World, from: &str, to: &str) {
    w.move_as_a_person(from, "MOVE 1:*", to);
}

/// The customer's mail, with her date and text; not Jan's note, nor the forgery.
fn the_customers_mails_are_posted(w: &World) {
    let inline = &w.api.posted(12)[0];
    assert!(
        inline.body.contains("The printer is on fire."),
        "{}",
        inline.body
    );
    assert!(!inline.body.contains("sorry"), "the note: {}", inline.body);
    assert!(
        !inline.body.contains("Forwarded message"),
        "{}",
        inline.body
    );
    assert_eq!(inline.date.as_deref(), Some("2026-12-01 16:05"));
    assert!(
        w.api
            .all_posted()
            .iter()
            .all(|p| !p.body.contains("Refund"))
    );
    let attached_post = &w.api.posted(13)[0];
    assert_eq!(attached_post.body_type, "PLAIN");
    assert_eq!(
        attached_post.body,
        "The invoice is wrong.\n\nAttachments: scan.pdf (19 B)"
    );
    assert_eq!(attached_post.date.as_deref(), Some("2026-12-01 16:30"));
}

/// The forgery is held as any stranger's mail; the agent's note is logged.
fn the_forgery_is_held_and_the_note_logged(w: &World) {
    let log = w.log();
    assert!(
        log.lines().any(|l| has_field(l, "outcome", "unverified")
            && l.contains("jan@acme.pl is not authenticated")),
        "the forgery is held as any stranger's mail: {log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("an agent's forward") && l.contains("Anna wrote to me directly")),
        "the note is logged: {log}"
    );
}

/// Two forwards and one unverified mail, in the mail counter.
async fn the_forwards_are_counted(port: u16) {
    let m = metrics(port).await;
    let count = |outcome| {
        metric(
            &m,
            "thulium_bridge_mails_total",
            &[("mailbox", "support"), ("outcome", outcome)],
        )
    };
    assert_eq!(count("forwarded"), Some(2.0), "{m}");
    assert_eq!(count("unverified"), Some(1.0), "{m}");
}

/// Forwarded again later (another note, another Message-ID), and moved in again by
/// mistake: the ledger knows the customer's mail was posted. Stops the daemon.
async fn forwarded_again_or_moved_back_it_is_not_posted_twice(
    w: &World,
    anna: &str,
    child: &mut Daemon,
) {
    w.append(&attached(
        "fwd-3@acme.pl",
        "FW: Invoice [#13]",
        "Did this arrive?",
        anna,
    ));
    let again = eventually(WAIT, || {
        w.folder("INBOX").is_empty() && w.folder("Processed").len() == 3
    })
    .await;
    assert!(again, "{}", w.log());
    move_all(w, "Processed", "INBOX");
    let moved = eventually(WAIT, || {
        w.folder("INBOX").is_empty() && w.folder("Processed").len() == 3
    })
    .await;
    terminate_ok(child, &w.log_path()).await;
    assert!(moved, "{}", w.log());
    assert_eq!(w.api.posted(12).len(), 1, "not posted twice:\n{}", w.log());
    assert_eq!(w.api.posted(13).len(), 1, "not posted twice:\n{}", w.log());
    let duplicates = w
        .log()
        .lines()
        .filter(|l| l.contains("mail handled") && has_field(l, "outcome", "duplicate"))
        .count();
    assert_eq!(duplicates, 4, "{}", w.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agents_forward_posts_the_customers_mail_once_and_a_forged_agent_is_a_stranger() {
    let w = World::start().await;
    w.api.add_ticket(12, CUSTOMER);
    w.api.add_ticket(13, CUSTOMER);
    w.append(&gmail_inline(
        "pass",
        "fwd-1@acme.pl",
        12,
        "The printer is on fire.",
    ));
    // Anyone can write From: jan@acme.pl; the receiving server says it is not his.
    w.append(&gmail_inline(
        "fail",
        "forged@evil.example",
        12,
        "Refund me twice.",
    ));
    let anna = annas_mail(
        "invoice@customer.example",
        "Invoice",
        "The invoice is wrong.",
    );
    w.append(&attached(
        "fwd-2@acme.pl",
        "FW: Invoice [#13]",
        "For 13, please.",
        &anna,
    ));
    let port = free_port();
    let config = w.config_with(
        &[mailbox("")],
        AGENTS,
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut child = w.spawn_run(&config);
    let handled = eventually(WAIT, || {
        w.api.posted(12).len() == 1
            && w.api.posted(13).len() == 1
            && w.folder("Processed").len() == 2
            && w.folder("Unverified").len() == 1
    })
    .await;
    assert!(handled, "{}", w.log());

    the_customers_mails_are_posted(&w);
    the_forgery_is_held_and_the_note_logged(&w);
    the_forwards_are_counted(port).await;
    forwarded_again_or_moved_back_it_is_not_posted_twice(&w, &anna, &mut child).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forward_without_a_ticket_opens_one_for_the_customer_whose_follow_ups_reach_it() {
    let w = World::start().await;
    let anna = annas_mail("first@customer.example", "Printer on fire", "It burns.");
    w.append(&attached(
        "fwd-4@acme.pl",
        "Fwd: Printer on fire",
        "Anna wrote to me, new case.",
        &anna,
    ));
    let mb = mailbox(
        "on_unmatched = \"new_ticket\"\n[mailbox.new_ticket]\nto = \"help@acme.example\"\n",
    );
    let config = w.config_with(&[mb], AGENTS, "");
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let created = w.api.created_tickets();
    assert_eq!(created.len(), 1, "{}", text(&out));
    let t = &created[0];
    assert_eq!(t.from.as_deref(), Some(CUSTOMER), "the customer's ticket");
    assert_eq!(t.subject, "Printer on fire");
    assert!(t.body.contains("It burns."), "{}", t.body);
    assert!(!t.body.contains("new case"), "the note: {}", t.body);
    let files = w.api.ticket_files(t.ticket);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].filename, "scan.pdf");
    assert_eq!(
        &files[0].bytes[..],
        b"%PDF-1.4\n%\xc3\xa4\xc3\xbc\xc3\xb6\xc3\x9f\n"
    );
    assert_eq!(w.folder("Processed").len(), 1, "{}", text(&out));

    // Anna answers the helpdesk's reply (its tag), and answers her own first mail.
    let auth = format!("Authentication-Results: {MX}; dmarc=pass header.from=customer.example\r\n");
    let tagged = String::from_utf8(reply(t.ticket, 1, "It still burns.")).expect("utf-8");
    w.append(format!("{auth}{tagged}").as_bytes());
    w.append(
        format!(
            "{auth}From: Anna Nowak <{CUSTOMER}>\r\nTo: support@acme.example\r\nSubject: Re: Printer on fire\r\n\
             Date: Thu, 03 Dec 2026 09:00:00 +0100\r\nMessage-ID: <second@customer.example>\r\n\
             In-Reply-To: <first@customer.example>\r\n\r\nAnd now it smokes.\r\n"
        )
        .as_bytes(),
    );
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let posted: Vec<String> = w
        .api
        .posted(t.ticket)
        .iter()
        .map(|p| p.body.trim().to_string())
        .collect();
    assert_eq!(
        posted,
        ["It still burns.", "And now it smokes."],
        "{}",
        text(&out)
    );
    assert_eq!(w.api.total_created(), 1, "one ticket: {}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_without_an_authenticating_server_are_refused_at_start() {
    let w = World::start().await;
    let config = w.config_with(&[MailboxOpts::default()], AGENTS, "");
    let out = once(&config, &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("thulium.agents: needs trusted_authserv_id on every mailbox"),
        "{}",
        text(&out)
    );
}
