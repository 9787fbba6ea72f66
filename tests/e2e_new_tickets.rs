//! New tickets from mails without a ticket number (`on_unmatched = "new_ticket"`), end to
//! end on a real Dovecot against the fake API's `POST tickets`, `POST temporary_files`
//! and `GET tickets`: the request and the files as sent, exactly once under lost answers
//! and kill -9, follow-ups to the new ticket, the sender limit, mails that must never
//! become tickets, and a refusal that leaves the mail in the fallback.

#[macro_use]
mod support;

use base64::Engine as _;
use std::time::Duration;
use support::*;
use testbed::{BodyStorage, Endpoint, Fault, Reading};

const HELPDESK: &str = "help@acme.example";
/// The keys the POST tickets page documents.
const DOCUMENTED_KEYS: &[&str] = &[
    "to",
    "from",
    "subject",
    "body",
    "body_type",
    "comment",
    "cc",
    "attachments",
    "source",
    "direction",
    "user_login",
    "customer_id",
    "tags",
    "status_id",
    "substatus_id",
    "category_id",
    "ticket_queue_id",
    "custom_fields",
];

/// The mailbox's `on_unmatched = "new_ticket"` with its table; `extra` goes into it.
fn new_ticket_mailbox(extra: &str) -> MailboxOpts {
    MailboxOpts {
        extra: format!(
            "on_unmatched = \"new_ticket\"\n[mailbox.new_ticket]\nto = {HELPDESK:?}\nticket_queue_id = 3\ntags = [\"e-mail\"]\n{extra}\n"
        ),
        ..MailboxOpts::default()
    }
}

fn config(w: &World, extra: &str) -> std::path::PathBuf {
    w.config_with(&[new_ticket_mailbox(extra)], "", "")
}

/// Deterministic bytes that are not text.
fn binary(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

fn base64_lines(data: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    encoded
        .as_bytes()
        .chunks(76)
        .map(|l| format!("{}\r\n", String::from_utf8_lossy(l)))
        .collect()
}

const CSV: &str = "nr;produkt;ilo\u{15b}\u{107}\r\n1;drukarka;2\r\n";

/// A first mail: HTML with an inline `cid:` logo (multipart/related), a PDF and a CSV
/// whose name is RFC 2231-encoded, an RFC 2047 subject, a display name and two Cc.
fn first_mail(pdf: &[u8], logo: &[u8]) -> Vec<u8> {
    format!(
        "From: \"Anna Kowalska\" <{CUSTOMER}>\r\nTo: {HELPDESK}\r\n\
         Cc: Boss <boss@customer.example>, \"Jan\" <JAN@Customer.example>\r\n\
         Subject: =?UTF-8?Q?Zam=C3=B3wienie_17_=E2=80=93_drukarka_si=C4=99_zacina?=\r\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0100\r\nMessage-ID: <first-17@customer.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n\
         --mix\r\nContent-Type: multipart/related; boundary=\"rel\"\r\n\r\n\
         --rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <html><body><p>Dzie\u{144} dobry,</p><p>drukarka <b>si\u{119} zacina</b>.</p>\
         <p><img src=\"cid:logo@customer.example\" alt=\"Logo firmy\"></p>\
         <script>alert(1)</script></body></html>\r\n\
         --rel\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\
         Content-ID: <logo@customer.example>\r\nContent-Disposition: inline; filename=\"logo.png\"\r\n\r\n{}\
         --rel--\r\n\
         --mix\r\nContent-Type: application/pdf; name=\"faktura.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"faktura.pdf\"\r\n\r\n{}\
         --mix\r\nContent-Type: text/csv; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename*=UTF-8''zam%C3%B3wienie%2017.csv\r\n\r\n{}\
         --mix--\r\n",
        base64_lines(logo),
        base64_lines(pdf),
        base64_lines(CSV.as_bytes()),
    )
    .into_bytes()
}

/// A plain mail without a ticket number, optionally with one attachment.
fn plain_mail(from: &str, n: u32, subject: &str, attachment: Option<&[u8]>) -> Vec<u8> {
    let head = format!(
        "From: Customer <{from}>\r\nTo: {HELPDESK}\r\nSubject: {subject}\r\n\
         Date: Thu, 26 Nov 2026 11:{:02}:00 +0100\r\nMessage-ID: <mail-{n}@customer.example>\r\nMIME-Version: 1.0\r\n",
        n % 60
    );
    let text = format!("Question number {n}: the printer jams.");
    match attachment {
        None => format!("{head}Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"),
        Some(data) => format!(
            "{head}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\
             --b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"scan-{n}.bin\"\r\n\r\n{}--b--\r\n",
            base64_lines(data)
        ),
    }
    .into_bytes()
}

/// Log lines of handled mails with this outcome.
fn handled<'a>(log: &'a str, outcome: &str) -> Vec<&'a str> {
    log.lines()
        .filter(|l| l.contains("mail handled") && has_field(l, "outcome", outcome))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_mail_becomes_one_ticket_with_its_two_attachments() {
    let w = World::start().await;
    w.api.set_body_storage(BodyStorage::AsSent);
    let pdf = binary(300_000, 7);
    let logo = binary(2_000, 9);
    w.append(&first_mail(&pdf, &logo));
    let config = config(&w, "");

    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));

    let created = w.api.created_tickets();
    assert_eq!(created.len(), 1, "{}", text(&out));
    let t = &created[0];
    assert_eq!(t.to, HELPDESK);
    assert_eq!(t.from.as_deref(), Some(CUSTOMER), "the address only");
    assert_eq!(
        t.subject,
        "Zam\u{f3}wienie 17 \u{2013} drukarka si\u{119} zacina"
    );
    assert_eq!(t.cc, ["boss@customer.example", "jan@customer.example"]);
    assert_eq!(t.body_type, "HTML");
    assert!(
        t.body.contains("Dzie\u{144} dobry") && t.body.contains("<b>si\u{119} zacina</b>"),
        "{}",
        t.body
    );
    assert!(!t.body.contains("<script"), "sanitized: {}", t.body);
    assert!(
        !t.body.contains("cid:") && t.body.contains("Logo firmy"),
        "the inline image becomes its alt text: {}",
        t.body
    );
    assert!(
        !t.body.contains("faktura.pdf"),
        "attached files are not named in the body: {}",
        t.body
    );
    assert_eq!(t.ticket_queue_id, Some(3));
    assert_eq!(t.tags, ["e-mail"]);
    let keys: Vec<&String> = t.request.as_object().expect("object").keys().collect();
    assert!(
        keys.iter().all(|k| DOCUMENTED_KEYS.contains(&k.as_str())),
        "only documented fields: {keys:?}"
    );

    // Exactly the two attachments, byte for byte; the inline logo is not uploaded.
    let uploads = w.api.uploads();
    assert_eq!(uploads.len(), 2, "{uploads:?}");
    let files = w.api.ticket_files(t.ticket);
    let names: Vec<&str> = files.iter().map(|f| f.filename.as_str()).collect();
    assert_eq!(names, ["faktura.pdf", "zam\u{f3}wienie 17.csv"]);
    assert!(files[0].bytes == pdf, "the PDF arrives unchanged");
    assert_eq!(&files[1].bytes[..], CSV.as_bytes());
    assert!(
        files
            .iter()
            .all(|f| f.content_type.as_deref() == Some("application/octet-stream"))
    );

    // The ticket as the helpdesk shows it: the customer's MAIL with the body sent.
    let requests = w.api.requests();
    assert!(
        requests.iter().all(|r| r.status == Some(200)),
        "{requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.method == "GET"),
        "nothing read back when every answer came"
    );

    assert_eq!(w.folder("INBOX").len(), 0);
    assert_eq!(w.folder("Processed").len(), 1, "disposed by on_posted");
    assert!(w.folder("Unmatched").is_empty());
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines = handled(&log, "new_ticket");
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        has_field(lines[0], "ticket", &t.ticket.to_string()),
        "{}",
        lines[0]
    );
    assert!(!log.contains(w.api.password()), "no secret in the log");

    let again = once(&config, &[]).await;
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(w.api.total_created(), 1);
    assert_eq!(w.api.uploads().len(), 2);
}

/// `max_attachment_size` bounds each file and `max_attachments_total` all of one mail
/// (inclusive); what does not fit is named in the body instead of uploaded.
#[tokio::test(flavor = "multi_thread")]
async fn the_attachment_limits_hold_and_what_is_left_out_is_named() {
    let w = World::start().await;
    let files = [
        ("a.bin", binary(40_000, 1)),
        ("b.bin", binary(40_000, 2)),
        ("past-the-total.bin", binary(40_000, 3)),
        ("over-each.bin", binary(60_000, 4)),
    ];
    let mut raw = format!(
        "From: Customer <{CUSTOMER}>\r\nTo: {HELPDESK}\r\nSubject: Four scans\r\n\
         Date: Thu, 26 Nov 2026 11:00:00 +0100\r\nMessage-ID: <four@customer.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nFour scans attached.\r\n"
    );
    for (name, data) in &files {
        raw.push_str(&format!(
            "--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n{}",
            base64_lines(data)
        ));
    }
    raw.push_str("--b--\r\n");
    w.append(raw.as_bytes());
    let config = w.config_with(
        &[new_ticket_mailbox("")],
        "",
        "[content]\nmax_attachment_size = \"50000\"\nmax_attachments_total = \"80000\"\n",
    );

    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let created = w.api.created_tickets();
    assert_eq!(created.len(), 1, "{}", text(&out));
    let uploaded = w.api.ticket_files(created[0].ticket);
    let names: Vec<&str> = uploaded.iter().map(|f| f.filename.as_str()).collect();
    assert_eq!(names, ["a.bin", "b.bin"], "{}", created[0].body);
    assert!(uploaded[0].bytes == files[0].1 && uploaded[1].bytes == files[1].1);
    let total: usize = w.api.uploads().iter().map(|f| f.bytes.len()).sum();
    assert!(total <= 80_000, "{total} bytes uploaded");
    let body = &created[0].body;
    assert!(
        body.contains("Not attached, over the limits")
            && body.contains("past-the-total.bin")
            && body.contains("over-each.bin")
            && !body.contains("a.bin"),
        "{body}"
    );
}

/// The answer to `POST tickets` is lost once: the next pass reads the list back and finds
/// the ticket. `per_sender_per_hour = 1`: the retry must not count the mail against itself.
/// Opens `count` tickets in the same queue from other customers, the way an agent's
/// tool would: through `POST tickets`.
async fn crowd_the_queue(w: &World, count: usize) {
    let http = reqwest::Client::new();
    for n in 0..count {
        let answer = http
            .post(format!("{}/tickets", w.api.url()))
            .basic_auth(w.api.user(), Some(w.api.password()))
            .json(&serde_json::json!({
                "to": HELPDESK,
                "from": format!("other{n}@elsewhere.example"),
                "subject": format!("Other matter {n}"),
                "body": "Something else entirely.",
                "ticket_queue_id": 3,
            }))
            .send()
            .await
            .expect("the fake answers");
        assert!(answer.status().is_success(), "{}", answer.status());
    }
}

/// The create's answer is lost; `crowd` other tickets open in the queue before the
/// next pass reads back.
async fn lost_create_answer(reading: Reading, crowd: usize) {
    let w = World::under(reading).await;
    let scan = binary(50_000, 3);
    w.append(&plain_mail(CUSTOMER, 1, "Printer jams", Some(&scan)));
    w.api
        .fail_next_on(Endpoint::CreateTicket, 1, Fault::AcceptThenDrop);
    let config = config(&w, "per_sender_per_hour = 1");

    let first = once(&config, &[]).await;
    assert_eq!(w.api.total_created(), 1, "{}", text(&first));
    assert_eq!(
        w.folder("INBOX").len(),
        1,
        "outcome unknown: the mail waits\n{}",
        text(&first)
    );
    crowd_the_queue(&w, crowd).await;
    let second = once(&config, &[]).await;
    assert!(second.status.success(), "{}", text(&second));

    let ours: Vec<_> = w
        .api
        .created_tickets()
        .into_iter()
        .filter(|t| t.from.as_deref() == Some(CUSTOMER))
        .collect();
    assert_eq!(ours.len(), 1, "{}\n{}", text(&first), text(&second));
    let t = &ours[0];
    let files = w.api.ticket_files(t.ticket);
    assert_eq!(files.len(), 1);
    assert!(files[0].bytes == scan);
    assert_eq!(w.api.uploads().len(), 1, "found before uploading again");
    let lists: Vec<String> = w
        .api
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/api/tickets")
        .filter_map(|r| r.query.clone())
        .collect();
    assert_eq!(
        lists.len(),
        crowd / 100 + 1,
        "a page of 100 per list read back: {lists:?}\n{}",
        text(&second)
    );
    for (page, list) in lists.iter().enumerate() {
        assert!(
            list.contains("create_date_from=")
                && list.contains("ticket_queue_id=3")
                && list.contains(&format!("offset={}", page * 100)),
            "{list}"
        );
    }
    assert_eq!(w.folder("Processed").len(), 1, "{}", text(&second));
    assert!(w.folder("INBOX").is_empty());
    assert!(w.folder("Unmatched").is_empty(), "{}", text(&second));
    let log = String::from_utf8_lossy(&second.stderr).into_owned();
    assert!(log.contains("read back, not opened again"), "{log}");
}

under_every_reading!(a_lost_answer_to_the_create_still_makes_one_ticket);
async fn a_lost_answer_to_the_create_still_makes_one_ticket(reading: Reading) {
    lost_create_answer(reading, 0).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_create_is_read_back_past_the_first_page_of_a_busy_queue() {
    lost_create_answer(Reading::named("date_sent").expect("a reading"), 150).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_to_an_upload_uploads_again_and_opens_one_ticket() {
    let w = World::start().await;
    let scan = binary(40_000, 5);
    w.append(&plain_mail(CUSTOMER, 2, "Scan attached", Some(&scan)));
    w.api
        .fail_next_on(Endpoint::TemporaryFiles, 1, Fault::AcceptThenDrop);
    let config = config(&w, "");

    let first = once(&config, &[]).await;
    assert_eq!(w.api.total_created(), 0, "{}", text(&first));
    assert_eq!(w.folder("INBOX").len(), 1);
    let second = once(&config, &[]).await;
    assert!(second.status.success(), "{}", text(&second));

    assert_eq!(w.api.total_created(), 1, "{}", text(&second));
    let t = &w.api.created_tickets()[0];
    let files = w.api.ticket_files(t.ticket);
    assert_eq!(files.len(), 1, "only the second upload is attached");
    assert!(files[0].bytes == scan);
    assert_eq!(w.api.uploads().len(), 2, "the first one is left to expire");
    assert_eq!(w.folder("Processed").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mail_with_cr_only_line_ends_opens_a_ticket_with_its_attachment() {
    let w = World::start().await;
    let scan = binary(20_000, 23);
    let raw: Vec<u8> = plain_mail(CUSTOMER, 14, "Old Mac scan", Some(&scan))
        .into_iter()
        .filter(|b| *b != b'\n')
        .collect();
    w.append(&raw);
    assert!(
        !w.folder("INBOX")[0].raw.contains(&b'\n'),
        "the server keeps the CR-only line ends"
    );
    let out = once(&config(&w, ""), &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.total_created(), 1, "{}", text(&out));
    let t = &w.api.created_tickets()[0];
    let files = w.api.ticket_files(t.ticket);
    assert_eq!(files.len(), 1, "{}", text(&out));
    assert!(files[0].bytes == scan);
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_refusals_leave_the_mail_for_the_next_pass_and_open_one_ticket() {
    let w = World::start().await;
    let scan = binary(10_000, 17);
    w.append(&plain_mail(CUSTOMER, 6, "Scan, second try", Some(&scan)));
    w.api
        .fail_next_on(Endpoint::TemporaryFiles, 1, Fault::Status(503));
    w.api.fail_next_on(
        Endpoint::CreateTicket,
        1,
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
    );
    let config = config(&w, "");
    let mut passes = 0;
    while !w.folder("INBOX").is_empty() && passes < 5 {
        let out = once(&config, &[]).await;
        assert!(
            w.folder("Unmatched").is_empty(),
            "a transient refusal is not a refusal:\n{}",
            text(&out)
        );
        passes += 1;
    }
    assert_eq!(passes, 3, "503 on the upload, 429 on the create, then done");
    assert_eq!(w.api.total_created(), 1);
    let t = &w.api.created_tickets()[0];
    let files = w.api.ticket_files(t.ticket);
    assert_eq!(files.len(), 1);
    assert!(files[0].bytes == scan);
    assert_eq!(w.api.pending_faults(), 0);
    assert_eq!(w.folder("Processed").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_uploads_and_opens_nothing() {
    let w = World::start().await;
    w.append(&plain_mail(
        CUSTOMER,
        7,
        "Just looking",
        Some(&binary(1_000, 1)),
    ));
    let out = once(&config(&w, ""), &["--dry-run"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(w.api.requests().is_empty(), "{:?}", w.api.requests());
    assert_eq!(w.folder("INBOX").len(), 1);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(log.contains("dry run: would open a ticket"), "{log}");
}

/// kill -9 while `POST tickets` is at the API: before it was handled (the create never
/// happened) or after (it happened, the answer never came). Either way, one ticket.
async fn kill_during_create(reading: Reading, fault: Fault, created_before_restart: usize) {
    let w = World::under(reading).await;
    let scan = binary(30_000, 11);
    w.append(&plain_mail(CUSTOMER, 3, "Printer jams again", Some(&scan)));
    w.api.fail_next_on(Endpoint::CreateTicket, 1, fault);
    let config = w.config_with(&[new_ticket_mailbox("")], "timeout = \"30s\"", "");
    let log = w.log_path();

    let mut child = w.spawn_run(&config);
    // The create has taken its fault (it arrived after the upload), and was handled or not.
    let at_the_api = eventually(WAIT, || {
        w.api.pending_faults() == 0 && w.api.total_created() == created_before_restart
    })
    .await;
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    assert!(at_the_api, "never reached the create:\n{}", w.log());
    assert_eq!(w.api.uploads().len(), 1);
    // Let the API finish (or drop) what it had in hand, so the restart sees a settled state.
    assert!(eventually(WAIT, || w.api.in_flight() == 0).await);
    assert_eq!(w.api.total_created(), created_before_restart);

    let mut child = w.spawn_run(&config);
    let done = eventually(WAIT, || w.folder("Processed").len() == 1).await;
    terminate_ok(&mut child, &log).await;
    assert!(done, "not disposed:\n{}", w.log());
    assert_eq!(w.api.total_created(), 1, "{}", w.log());
    let t = &w.api.created_tickets()[0];
    let files = w.api.ticket_files(t.ticket);
    assert_eq!(files.len(), 1);
    assert!(files[0].bytes == scan);
    assert!(w.folder("INBOX").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_finishes_the_ticket_being_opened_and_leaves_the_next_for_the_next_start() {
    let w = World::start().await;
    w.append(&plain_mail(CUSTOMER, 12, "Printer jams", None));
    w.append(&plain_mail(
        "piotr@customer.example",
        13,
        "Scanner too",
        None,
    ));
    w.api.fail_next_on(
        Endpoint::CreateTicket,
        1,
        Fault::Latency(Duration::from_secs(2)),
    );
    let config = w.config_with(&[new_ticket_mailbox("")], "timeout = \"30s\"", "");
    let log = w.log_path();

    let mut child = w.spawn_run(&config);
    let at_the_api = eventually(WAIT, || w.api.pending_faults() == 0).await;
    terminate_ok(&mut child, &log).await;
    assert!(at_the_api, "never reached the create:\n{}", w.log());
    assert_eq!(
        w.api.total_created(),
        1,
        "the first one finished:\n{}",
        w.log()
    );
    assert_eq!(w.folder("Processed").len(), 1, "{}", w.log());
    assert_eq!(w.folder("INBOX").len(), 1, "the second waits:\n{}", w.log());

    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.total_created(), 2, "{}", text(&out));
    assert!(w.folder("INBOX").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_before_the_create_is_handled_opens_one_ticket() {
    // The API sits on the request for 20 s; the kill drops it unhandled.
    let reading = Reading::named("date_sent").expect("a reading");
    kill_during_create(reading, Fault::Latency(Duration::from_secs(20)), 0).await
}

under_every_reading!(kill_9_after_the_create_before_its_answer_opens_one_ticket);
async fn kill_9_after_the_create_before_its_answer_opens_one_ticket(reading: Reading) {
    kill_during_create(reading, Fault::AcceptThenDelay(Duration::from_secs(20)), 1).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_customers_follow_ups_go_to_the_new_ticket() {
    let w = World::start().await;
    w.append(&plain_mail(CUSTOMER, 4, "Printer jams", None));
    let config = config(&w, "");
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.total_created(), 1, "{}", text(&out));
    let ticket = w.api.created_tickets()[0].ticket;

    // A reply to the first mail (no tag: found by References), then one with the tag.
    w.append(
        format!(
            "From: Customer <{CUSTOMER}>\r\nTo: {HELPDESK}\r\nSubject: Re: Printer jams\r\n\
             Date: Thu, 26 Nov 2026 12:00:00 +0100\r\nMessage-ID: <follow-1@customer.example>\r\n\
             References: <mail-4@customer.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
             It jams on every second page.\r\n"
        )
        .as_bytes(),
    );
    w.append(
        format!(
            "From: Customer <{CUSTOMER}>\r\nTo: {HELPDESK}\r\nSubject: Re: [TH#{ticket}] Printer jams\r\n\
             Date: Thu, 26 Nov 2026 12:05:00 +0100\r\nMessage-ID: <follow-2@customer.example>\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\nNow it works.\r\n"
        )
        .as_bytes(),
    );
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));

    assert_eq!(w.api.total_created(), 1, "no second ticket\n{}", text(&out));
    let posted = w.api.posted(ticket);
    let bodies: Vec<&str> = posted.iter().map(|r| r.body.trim()).collect();
    assert_eq!(
        bodies,
        ["It jams on every second page.", "Now it works."],
        "{}",
        text(&out)
    );
    assert_eq!(w.api.total_posted(), 2);
    assert_eq!(w.folder("Processed").len(), 3);
    assert!(w.folder("INBOX").is_empty());
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(handled(&log, "posted").len(), 2, "{log}");
}

/// The customer writes again before the bridge saw the first mail: both arrive in one
/// pass. The follow-up waits for the first to become a ticket, then goes to it.
#[tokio::test(flavor = "multi_thread")]
async fn a_follow_up_in_the_same_pass_waits_for_the_new_ticket() {
    let w = World::start().await;
    w.append(&plain_mail(CUSTOMER, 5, "Printer jams", None));
    w.append(
        format!(
            "From: Customer <{CUSTOMER}>\r\nTo: {HELPDESK}\r\nSubject: Re: Printer jams\r\n\
             Date: Thu, 26 Nov 2026 11:10:00 +0100\r\nMessage-ID: <follow-5@customer.example>\r\n\
             In-Reply-To: <mail-5@customer.example>\r\nReferences: <mail-5@customer.example>\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\nI forgot: it is the HP one.\r\n"
        )
        .as_bytes(),
    );
    let config = config(&w, "");
    for _ in 0..2 {
        let out = once(&config, &[]).await;
        assert!(out.status.success(), "{}", text(&out));
    }
    let created = w.api.created_tickets();
    assert_eq!(
        created
            .iter()
            .map(|t| t.subject.as_str())
            .collect::<Vec<_>>(),
        ["Printer jams"],
        "one ticket"
    );
    let posted = w.api.posted(created[0].ticket);
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].body.trim(), "I forgot: it is the HP one.");
    assert_eq!(w.folder("Processed").len(), 2);
    assert!(w.folder("INBOX").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_from_one_sender_is_capped_and_the_rest_go_to_the_fallback() {
    let w = World::start().await;
    let flooder = "flood@customer.example";
    for n in 0..5 {
        w.append(&plain_mail(flooder, 10 + n, &format!("Flood {n}"), None));
    }
    w.append(&plain_mail(CUSTOMER, 20, "Someone else", None));
    let config = config(&w, "per_sender_per_hour = 3\nfallback = \"move:Held\"");

    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));

    let mut subjects: Vec<String> = w
        .api
        .created_tickets()
        .iter()
        .map(|t| t.subject.clone())
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        ["Flood 0", "Flood 1", "Flood 2", "Someone else"],
        "{}",
        text(&out)
    );
    assert_eq!(w.subjects("Held"), ["Flood 3", "Flood 4"]);
    assert_eq!(w.folder("Processed").len(), 4);
    assert!(w.folder("Unmatched").is_empty());
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let capped: Vec<&str> = handled(&log, "unmatched")
        .into_iter()
        .filter(|l| l.contains("per_sender_per_hour = 3") && l.contains(flooder))
        .collect();
    assert_eq!(capped.len(), 2, "the reason is logged for each:\n{log}");

    // The limit holds across runs: a sixth mail within the hour is held too.
    w.append(&plain_mail(flooder, 15, "Flood 5", None));
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.total_created(), 4);
    assert_eq!(w.subjects("Held"), ["Flood 3", "Flood 4", "Flood 5"]);
}

/// The receiving server's verdict (trusted_authserv_id = mx.acme.example).
fn verdict(result: &str) -> String {
    format!(
        "Authentication-Results: mx.acme.example; dmarc={result} header.from=customer.example\r\n"
    )
}

/// Three mails from the customer's address that the receiving server did not
/// authenticate (forged, no verdict, a pass another host wrote), and a genuine one.
fn append_unauthenticated_and_genuine(w: &World) {
    let unauthenticated = [
        ("Forged", verdict("fail")),
        ("No verdict", String::new()),
        (
            "Passed elsewhere",
            "Authentication-Results: evil.example; dmarc=pass header.from=customer.example\r\n"
                .to_string(),
        ),
    ];
    for (n, (subject, headers)) in unauthenticated.iter().enumerate() {
        let raw =
            String::from_utf8(plain_mail(CUSTOMER, 40 + n as u32, subject, None)).expect("utf-8");
        w.append(format!("{headers}{raw}").as_bytes());
    }
    let genuine = String::from_utf8(plain_mail(CUSTOMER, 50, "Genuine", None)).expect("utf-8");
    w.append(format!("{}{genuine}", verdict("pass")).as_bytes());
}

/// An auto-reply, a bulk mail, a bounce, the mailbox's own mail and a denied sender's.
fn append_auto_bulk_bounce_own_and_denied(w: &World) {
    let mails = [
        format!(
            "From: {CUSTOMER}\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n\
             Date: Thu, 26 Nov 2026 10:00:00 +0100\r\nMessage-ID: <ooo@x>\r\n\r\nI am away.\r\n"
        ),
        format!(
            "From: {CUSTOMER}\r\nSubject: Newsletter\r\nPrecedence: bulk\r\n\
             Date: Thu, 26 Nov 2026 10:00:00 +0100\r\nMessage-ID: <bulk@x>\r\n\r\nNews.\r\n"
        ),
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.example>\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0100\r\nMessage-ID: <dsn@x>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n\
         --r\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n\
         --r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.example\r\n\r\n\
         Final-Recipient: rfc822; nobody@customer.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--r--\r\n"
            .to_string(),
        format!(
            "From: Support <{USER}@acme.example>\r\nSubject: Our own mail\r\nX-Loop: {USER}@acme.example\r\n\
             Date: Thu, 26 Nov 2026 10:00:00 +0100\r\nMessage-ID: <loop@x>\r\n\r\nOwn.\r\n"
        ),
        "From: Spammer <offers@spam.example>\r\nSubject: Cheap printers\r\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0100\r\nMessage-ID: <spam@x>\r\n\r\nBuy.\r\n"
            .to_string(),
    ];
    for m in &mails {
        w.append(m.as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_replies_bounces_loops_denied_and_unauthenticated_senders_never_become_tickets() {
    let w = World::start().await;
    append_unauthenticated_and_genuine(&w);
    append_auto_bulk_bounce_own_and_denied(&w);
    let mut mailbox = new_ticket_mailbox("");
    mailbox.extra = format!(
        "trusted_authserv_id = [\"mx.acme.example\"]\n{}",
        mailbox.extra
    );
    let config = w.config_with(
        &[mailbox],
        "",
        &format!(
            "[filters]\ndeny_senders = [\"*@spam.example\"]\nown_addresses = [\"{USER}@acme.example\"]\n"
        ),
    );

    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let created: Vec<String> = w
        .api
        .created_tickets()
        .iter()
        .map(|t| t.subject.clone())
        .collect();
    assert_eq!(
        created,
        ["Genuine"],
        "only the authenticated one: {}",
        text(&out)
    );
    assert!(w.api.uploads().is_empty());
    assert_eq!(
        w.subjects("Ignored"),
        [
            "Cheap printers",
            "Newsletter",
            "Our own mail",
            "Out of office",
            "Undelivered Mail Returned to Sender"
        ],
        "{}",
        text(&out)
    );
    assert!(w.folder("INBOX").is_empty());
    assert_eq!(w.subjects("Processed"), ["Genuine"]);
    assert_eq!(
        w.subjects("Unmatched"),
        ["Forged", "No verdict", "Passed elsewhere"],
        "the fallback holds the unauthenticated: {}",
        text(&out)
    );
    assert_eq!(
        stderr_of(&out)
            .matches("not opened as a ticket: From anna@customer.example is not authenticated")
            .count(),
        3,
        "{}",
        text(&out)
    );
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_to_that_is_no_helpdesk_mailbox_sends_the_mail_to_the_fallback_with_the_apis_words() {
    let w = World::start().await;
    let raw = plain_mail(CUSTOMER, 31, "A question", None);
    w.append(&raw);
    let wrong = MailboxOpts {
        extra:
            "on_unmatched = \"new_ticket\"\n[mailbox.new_ticket]\nto = \"nobody@acme.example\"\n"
                .into(),
        ..MailboxOpts::default()
    };
    let out = once(&w.config_with(&[wrong], "", ""), &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.total_created(), 0);
    assert_eq!(w.folder("Unmatched").len(), 1, "{}", text(&out));
    assert!(
        w.folder("Unmatched")[0].raw == raw,
        "the mail is kept whole"
    );
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines = handled(&log, "unmatched");
    assert!(
        lines.len() == 1 && lines[0].contains("The selected to is invalid."),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_sends_the_mail_to_the_fallback_whole() {
    let w = World::start().await;
    let scan = binary(20_000, 13);
    let raw = plain_mail(CUSTOMER, 30, "Scan of the invoice", Some(&scan));
    w.append(&raw);
    // Every token has expired by the time POST tickets names it.
    w.api.set_token_lifetime(Duration::ZERO);
    let config = config(&w, "");

    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.total_created(), 0);
    let creates: Vec<Option<u16>> = w
        .api
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/tickets")
        .map(|r| r.status)
        .collect();
    assert_eq!(creates, [Some(422)], "tried once, refused");
    let held = w.folder("Unmatched");
    assert_eq!(held.len(), 1, "{}", text(&out));
    assert_eq!(held[0].raw, raw, "the mail is kept whole");
    assert!(w.folder("INBOX").is_empty());
    assert!(w.folder("Processed").is_empty());
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines = handled(&log, "unmatched");
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("HTTP 422") && lines[0].contains("has expired"),
        "the API's words in the log: {}",
        lines[0]
    );
    let (ok, stats) = ledger(&config, &["stats"]).await;
    assert!(ok, "{stats}");
    let failed = stats
        .lines()
        .find_map(|l| l.strip_prefix("failed"))
        .map(str::trim);
    assert_eq!(failed, Some("1"), "recorded as failed: {stats}");

    // Not retried on the next pass: the mail left the candidate set.
    let again = once(&config, &[]).await;
    assert!(again.status.success());
    assert_eq!(w.api.uploads().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_refused_while_replies_pass_gives_up_into_the_fallback_but_an_outage_does_not() {
    let w = World::start().await;
    w.api.add_ticket(1, CUSTOMER);
    w.append(&plain_mail(
        CUSTOMER,
        8,
        "A ticket the API will not open",
        None,
    ));
    let config = w.config_with(
        &[new_ticket_mailbox("")],
        "",
        "[delivery]\nmax_attempts = 2\n",
    );

    // Everything fails: nobody's failure is the mail's own, so nothing counts.
    w.api.fail_next(1000, Fault::Status(503));
    for n in 1..=4 {
        w.append(&reply(1, n, "during the outage"));
        let out = once(&config, &[]).await;
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    }
    assert_eq!(w.folder("Unmatched").len(), 0, "an outage gives nothing up");
    assert!(w.api.posted(1).is_empty());

    // The API works for replies but keeps refusing the create: those failures count.
    w.api.clear_faults();
    w.api
        .fail_next_on(Endpoint::CreateTicket, 1000, Fault::Status(503));
    let mut passes: u32 = 0;
    while w.folder("Unmatched").is_empty() && passes < 8 {
        passes += 1;
        w.append(&reply(1, 10 + passes, "while the API works"));
        let out = once(&config, &[]).await;
        assert!(out.status.success(), "replies pass: {}", text(&out));
    }
    assert_eq!(w.api.total_created(), 0);
    assert_eq!(w.subjects("Unmatched"), ["A ticket the API will not open"]);
    assert_eq!(w.api.posted(1).len(), 4 + passes as usize);
    println!("given up after {passes} passes");
    let out = ledger(&config, &["show", "<mail-8@customer.example>"]).await;
    assert!(
        out.1.contains("gave up after 2 failed attempts")
            && out.1.contains("read back: none of them opened one"),
        "{}",
        out.1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_shows_the_ticket_a_mailbox_would_open_with_its_attachments() {
    let w = World::start().await;
    let sales = MailboxOpts {
        name: "sales".into(),
        ..new_ticket_mailbox("")
    };
    let config = w.config_with(&[MailboxOpts::default(), sales], "", "");
    let scan = binary(3_000, 5);
    let eml = w.dir.path().join("new.eml");
    std::fs::write(
        &eml,
        plain_mail(CUSTOMER, 9, "Printer jams again", Some(&scan)),
    )
    .expect("eml");
    let eml = eml.to_str().expect("a temp path is UTF-8");

    let out = command(&config, &["explain", eml, "--mailbox", "sales", "--json"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["action"], "new_ticket", "{json}");
    assert_eq!(json["request"]["to"], HELPDESK);
    assert_eq!(json["request"]["from"], CUSTOMER);
    assert_eq!(json["request"]["subject"], "Printer jams again");
    assert_eq!(
        json["request"]["attachments"],
        serde_json::json!([{"name": "scan-9.bin", "size": 3000}])
    );

    // The first mailbox by default: no new tickets there.
    let out = command(&config, &["explain", eml, "--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (json["action"].as_str(), json["disposition"].as_str()),
        (Some("skip"), Some("unmatched")),
        "{json}"
    );

    let out = command(&config, &["explain", eml, "--mailbox", "nope"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("nope"), "{}", text(&out));
    assert!(w.api.requests().is_empty(), "explain is offline");
}
