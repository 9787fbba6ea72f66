//! `decide` on mails built to stall or exhaust the bridge, and on the largest mails
//! `max_message_size` lets in (25 MiB of text/plain and of HTML).
//!
//! Every mail must be decided in bounded time: the target is one second each, in a
//! release build on a small machine. Prints a table (median of a few runs per mail,
//! with what was decided) and one JSON line for scripts:
//!
//! `{"bench":"hostile","mails":N,"max_ms":..,"slowest":"name","target_ms":1000,"met":true}`
//!
//! `cargo bench --bench hostile [-- NAME…]` (only the mails whose name contains one
//! of the NAMEs). Without `--bench` (as `cargo test --benches` runs
//! it) every input is built at 1/16 of its size and decided once, untimed.

use chrono::{DateTime, FixedOffset};
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};
use thulium_mail_bridge::config::{MailboxConfig, default_rules};
use thulium_mail_bridge::mail::content::ContentConfig;
use thulium_mail_bridge::mail::decide::{Action, NoReferences, Rules, decide};

/// Timed runs per mail (the median is reported).
const RUNS: usize = 3;
const TARGET_MS: f64 = 1000.0;
/// What `max_message_size` allows by default.
const MAX_MAIL: usize = 25 << 20;

struct Mail {
    name: &'static str,
    raw: Vec<u8>,
    rules: Which,
}

/// The rules a mail is decided with.
#[derive(Clone, Copy)]
enum Which {
    Default,
    /// Trusts an Authentication-Results id.
    Authenticated,
    /// The mailbox opens new tickets.
    NewTickets,
}

const HEAD: &str = "From: Anna Nowak <anna@customer.example>\r\n\
To: support@helpdesk.example\r\n\
Date: Tue, 04 Mar 2025 10:15:00 +0100\r\n\
Message-ID: <hostile@customer.example>\r\n\
MIME-Version: 1.0\r\n";

fn mail(subject: &str, extra_headers: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut raw =
        format!("{HEAD}Subject: {subject}\r\n{extra_headers}Content-Type: {content_type}\r\n\r\n")
            .into_bytes();
    raw.extend_from_slice(body);
    raw
}

fn text(body: &str) -> Vec<u8> {
    mail(
        "Re: [#1] hostile",
        "",
        "text/plain; charset=utf-8",
        body.as_bytes(),
    )
}

fn html(body: &str) -> Vec<u8> {
    mail(
        "Re: [#1] hostile",
        "",
        "text/html; charset=utf-8",
        body.as_bytes(),
    )
}

/// `piece` repeated up to about `size` bytes.
fn fill(piece: &str, size: usize) -> String {
    piece.repeat((size / piece.len().max(1)).max(1))
}

/// A multipart/mixed mail: an HTML part, then `n` small attachments.
fn with_attachments(html_body: &str, n: usize, cid: bool) -> Vec<u8> {
    let mut body = format!("--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html_body}\r\n");
    for i in 0..n {
        let _ = write!(
            body,
            "--b\r\nContent-Type: image/png; name=\"i{i}.png\"\r\n{}Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n",
            if cid {
                format!("Content-ID: <i{i}@x>\r\n")
            } else {
                "Content-Disposition: attachment\r\n".into()
            }
        );
    }
    body.push_str("--b--\r\n");
    mail(
        "Re: [#1] hostile",
        "",
        "multipart/mixed; boundary=b",
        body.as_bytes(),
    )
}

/// ` a0 a1 a2 …`: distinct attribute names, about `size` bytes of them.
fn distinct_attributes(size: usize) -> String {
    let mut out = String::new();
    let mut i = 0;
    while out.len() < size {
        let _ = write!(out, " a{i:x}");
        i += 1;
    }
    out
}

/// `; filename*0*=utf-8''a; filename*1*=b; …`: one RFC 2231 value in `n` pieces.
fn filename_pieces(n: usize) -> String {
    let mut out = String::from("; filename*0*=utf-8''a");
    for i in 1..n {
        let _ = write!(out, ";\r\n filename*{i}*=b");
    }
    out
}

/// `; p0*=utf-8'en'x; p1*=utf-8'en'x; …`: `n` parameters, each with a language.
fn language_parameters(n: usize) -> String {
    (0..n).map(|i| format!(";\r\n p{i}*=utf-8'en'x")).collect()
}

/// A mail whose one attachment has a Content-Disposition of `disposition` and `parameters`.
fn with_parameters(disposition: &str, parameters: &str) -> Vec<u8> {
    let body = format!(
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee attached\r\n\
         --b\r\nContent-Type: application/pdf\r\nContent-Disposition: {disposition}{parameters}\r\n\r\nx\r\n--b--\r\n"
    );
    mail(
        "Re: [#1] hostile",
        "",
        "multipart/mixed; boundary=b",
        body.as_bytes(),
    )
}

/// A mail without a ticket number: a line of text and `n` empty attachments.
fn empty_attachments(n: usize) -> Vec<u8> {
    let mut body = String::from("--b\r\nContent-Type: text/plain\r\n\r\nplease help\r\n");
    for i in 0..n {
        let _ = write!(
            body,
            "--b\r\nContent-Disposition: attachment; filename=f{i}\r\n\r\n"
        );
    }
    body.push_str("--b--\r\n");
    mail(
        "no ticket",
        "",
        "multipart/mixed; boundary=b",
        body.as_bytes(),
    )
}

/// Every hostile mail, `scale` = 1 for the real sizes.
fn mails(scale: usize) -> Vec<Mail> {
    [
        subject_mails(scale),
        html_mails(scale),
        text_mails(scale),
        structure_mails(scale),
        capped_mails(scale),
        largest_replies(scale),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// 2 MiB at `1/scale`: the size of most floods.
fn two_mib(scale: usize) -> usize {
    (2 << 20) / scale
}

/// `count` items at `1/scale`, at least 2.
fn count_at(scale: usize, count: usize) -> usize {
    (count / scale).max(2)
}

/// A mail decided with the default rules.
fn m(name: &'static str, raw: Vec<u8>) -> Mail {
    Mail {
        name,
        raw,
        rules: Which::Default,
    }
}

/// Subjects with many ticket tags, encoded words, or none in 2 MB.
fn subject_mails(scale: usize) -> Vec<Mail> {
    let mb = two_mib(scale);
    let n = |count: usize| count_at(scale, count);
    let tags: String = (1..=n(200_000)).map(|i| format!("[#{i}] ")).collect();
    let encoded: String = (0..n(100_000)).map(|_| "=?utf-8?B?W1RIIzFd?= ").collect();
    vec![
        m(
            "subject: 200k distinct tags",
            mail(&format!("Re: {tags}"), "", "text/plain", b"x"),
        ),
        m(
            "subject: 200k equal tags",
            mail(&fill("[#1] ", 5 * n(200_000)), "", "text/plain", b"x"),
        ),
        m(
            "subject: 100k encoded words",
            mail(&encoded, "", "text/plain", b"x"),
        ),
        m(
            "subject: 2 MB without a tag",
            mail(&fill("Re: ", mb), "", "text/plain", b"x"),
        ),
    ]
}

/// HTML floods of entities, tags, nesting, attributes, cid: images and bidi controls.
fn html_mails(scale: usize) -> Vec<Mail> {
    let mb = two_mib(scale);
    let n = |count: usize| count_at(scale, count);
    let nested_quotes = format!(
        "Hello{}deep{}",
        "<blockquote>".repeat(n(10_000)),
        "</blockquote>".repeat(n(10_000))
    );
    let cids: String = (0..n(20_000))
        .map(|i| format!("<img src=\"cid:i{i}@x\">"))
        .collect();
    vec![
        m("html: &amp; flood (2 MB)", html(&fill("&amp;", mb))),
        m("html: &lt; flood (2 MB)", html(&fill("&lt;", mb))),
        m(
            "html: no-break space flood (2 MB)",
            html(&fill("\u{a0}", mb)),
        ),
        m(
            "html: <xmp> & flood (2 MB)",
            html(&format!("<xmp>{}", fill("&", mb))),
        ),
        m(
            "html: 4 KiB titles of & (2 MB)",
            html(&fill(
                &format!("<p title=\"{}\">x</p>", "&".repeat(4000)),
                mb,
            )),
        ),
        m("html: bare & flood (2 MB)", html(&fill("&", mb))),
        m("html: &#x flood (2 MB)", html(&fill("&#x", mb))),
        m("html: < flood (2 MB)", html(&fill("< ", mb))),
        m("html: <a flood (2 MB)", html(&fill("<a", mb))),
        m("html: <!-- flood (2 MB)", html(&fill("<!--", mb))),
        m("html: one 2 MB line", html(&fill("a", mb))),
        m("html: one 2 MB word per <p>", html(&fill("<p>aaaaaaa", mb))),
        m(
            "html: 100k nested <div>",
            html(&format!(
                "{}deep{}",
                "<div>".repeat(n(100_000)),
                "</div>".repeat(n(100_000))
            )),
        ),
        m("html: 10k nested <blockquote>", html(&nested_quotes)),
        m(
            "html: 50k <blockquote> in text",
            html(&fill("answer<blockquote>question</blockquote>", mb)),
        ),
        m("html: 100k unclosed <b>", html(&"<b>x".repeat(n(100_000)))),
        m(
            "html: 1 MB style attribute",
            html(&format!(
                "<p style=\"{}\">x</p>",
                fill("color:red;", mb / 2)
            )),
        ),
        m(
            "html: 1 MB href of &",
            html(&format!(
                "<a href=\"https://e.example/?{}\">x</a>",
                fill("&", mb / 2)
            )),
        ),
        m(
            "html: 1 MB class on a quote",
            html(&format!(
                "hi<div class=\"gmail_quote {}\">q</div>",
                fill("c ", mb / 2)
            )),
        ),
        m(
            "html: 100k attributes on one tag",
            html(&format!("<p {}>x</p>", fill("a=b ", mb / 2))),
        ),
        m(
            "html: 100k table cells",
            html(&format!(
                "<table><tr>{}</tr></table>",
                "<td>x".repeat(n(100_000))
            )),
        ),
        m(
            "html: 20k cid: images",
            with_attachments(&cids, n(20_000), true),
        ),
        m(
            "html: 20k cid: images, other case",
            with_attachments(&cids.to_uppercase(), n(20_000), true),
        ),
        m(
            "mixed: 20k attachments",
            with_attachments("<p>see attached</p>", n(20_000), false),
        ),
        m(
            "html: 1M bidi controls",
            html(&fill("\u{202e}a\u{2066}", mb)),
        ),
    ]
}

/// Plain text with giant lines, quotes, reply headers, signatures, bidi controls.
fn text_mails(scale: usize) -> Vec<Mail> {
    let mb = two_mib(scale);
    let base64_garbage = mail(
        "Re: [#1] hostile",
        "Content-Transfer-Encoding: base64\r\n",
        "text/plain; charset=utf-8",
        fill("!@#$%^&*()_+{}|:\"<>?~`-=[]\\;',./\r\n", 20 * mb / 2).as_bytes(),
    );
    vec![
        m("text: one 8 MB line", text(&fill("a", 4 * mb))),
        m("text: 200k quote lines", text(&fill("> quoted\n", mb))),
        m("text: 2 MB of one '>' line", text(&fill(">", mb))),
        m(
            "text: 30k reply headers",
            text(&fill(
                "answer\nOn Mon, 1 Jan 2024 at 10:00, X <a@b.example> wrote:\n> q\n",
                mb,
            )),
        ),
        m(
            "text: 50k header blocks",
            text(&fill("From: a\nSent: b\nTo: c\nSubject: d\n", mb)),
        ),
        m("text: 200k signature lines", text(&fill("-- \n", mb))),
        m(
            "text: 300k 'On Monday' lines",
            text(&fill("On Monday\n", 3 * mb / 2)),
        ),
        m(
            "text: 80k reply headers, then a quote",
            text(&format!(
                "answer\n{}> q\n",
                fill("-----Original Message-----\n", mb)
            )),
        ),
        m(
            "text: 1M bidi controls",
            text(&fill("\u{202e}a\u{200f}", mb)),
        ),
        m("text: 10 MB base64 garbage", base64_garbage),
    ]
}

/// Deep MIME nesting and giant or countless headers.
fn structure_mails(scale: usize) -> Vec<Mail> {
    let mb = two_mib(scale);
    let n = |count: usize| count_at(scale, count);
    let deep_multipart = {
        let depth = n(5_000);
        let mut body = String::new();
        for i in 0..depth {
            let _ = write!(
                body,
                "--b{i}\r\nContent-Type: multipart/mixed; boundary=b{}\r\n\r\n",
                i + 1
            );
        }
        let _ = write!(
            body,
            "--b{depth}\r\nContent-Type: text/plain\r\n\r\ndeep\r\n"
        );
        mail(
            "Re: [#1] hostile",
            "",
            "multipart/mixed; boundary=b0",
            body.as_bytes(),
        )
    };
    let references: String = (0..n(200_000)).map(|i| format!(" <r{i}@x>")).collect();
    let received: String = (0..n(100_000))
        .map(|i| {
            format!(
                "Received: from h{i}.example by mx.example; Tue, 04 Mar 2025 10:15:00 +0100\r\n"
            )
        })
        .collect();
    let auth_results: String = (0..n(20_000))
        .map(|i| {
            format!(
                "Authentication-Results: mx{i}.example; dkim=pass (a comment (nested)) header.d=customer.example; spf=fail smtp.mailfrom=x@evil.example\r\n"
            )
        })
        .collect();
    vec![
        m("mime: 5000 nested multiparts", deep_multipart),
        m(
            "headers: 200k references",
            mail(
                "Re: no tag",
                &format!("In-Reply-To: <a@x>\r\nReferences:{references}\r\n"),
                "text/plain",
                b"x",
            ),
        ),
        m(
            "headers: 100k Received",
            mail("Re: [#1] hostile", &received, "text/plain", b"x"),
        ),
        Mail {
            name: "headers: 20k Authentication-Results",
            raw: mail("Re: [#1] hostile", &auth_results, "text/plain", b"x"),
            rules: Which::Authenticated,
        },
        m(
            "headers: one 8 MB Reply-To",
            mail(
                "Re: [#1] hostile",
                &format!("Reply-To: {}\r\n", fill("a", 4 * mb)),
                "text/plain",
                b"x",
            ),
        ),
        m(
            "headers: one 8 MB From",
            String::from_utf8_lossy(&text("x"))
                .replacen(
                    "From: Anna Nowak <anna@customer.example>",
                    &format!("From: {} <anna@customer.example>", fill("Anna ", 4 * mb)),
                    1,
                )
                .into_bytes(),
        ),
        m(
            "headers: one 8 MB Date",
            String::from_utf8_lossy(&text("x"))
                .replacen(
                    "Date: Tue, 04 Mar 2025 10:15:00 +0100",
                    &format!(
                        "Date: Tue, 04 Mar 2025 10:15:00 +0100 {}",
                        fill("(x) ", 4 * mb)
                    ),
                    1,
                )
                .into_bytes(),
        ),
    ]
}

/// What the caps before the parsers bound: attribute names, MIME parameters, attachments,
/// and text agents cannot see.
fn capped_mails(scale: usize) -> Vec<Mail> {
    let mb = two_mib(scale);
    let n = |count: usize| count_at(scale, count);
    vec![
        m(
            "html: 276k distinct attribute names",
            // Within the input cap (2 MiB), so the text after the tag is read.
            html(&format!("<p{}>x</p>", distinct_attributes(mb - 4096))),
        ),
        m(
            "html: 1000 distinct attributes per tag",
            html(&fill(
                &format!("<p{}>x</p>", distinct_attributes(8_000)),
                mb,
            )),
        ),
        m(
            "mime: 800k RFC 2231 filename pieces",
            with_parameters("attachment", &filename_pieces(n(800_000))),
        ),
        m(
            "mime: 100k parameters with a language",
            with_parameters("attachment", &language_parameters(n(100_000))),
        ),
        Mail {
            name: "new ticket: 300k empty attachments",
            raw: empty_attachments(n(300_000)),
            rules: Which::NewTickets,
        },
        m(
            "html: 1M zero-width and tag characters",
            html(&fill("a\u{200b}\u{e0041}\u{2060}\u{feff}", mb)),
        ),
        m(
            "html: 50k white-on-white 1px spans",
            html(&fill(
                "<span style=\"color:#fff;font-size:1px\">hidden</span>seen ",
                mb,
            )),
        ),
        m(
            "html: 300-deep shrinking spans (2 MB)",
            html(&fill(
                &format!(
                    "{}x{}",
                    "<span style=\"font-size:99%;color:#fefefe\">".repeat(300),
                    "</span>".repeat(300)
                ),
                mb,
            )),
        ),
        m(
            "html: 100k <bdo dir=rtl>",
            html(&"<bdo dir=\"rtl\">abc</bdo> ".repeat(n(100_000))),
        ),
    ]
}

/// The largest replies `max_message_size` lets in.
fn largest_replies(scale: usize) -> Vec<Mail> {
    let text_25 = {
        let mut raw = text("");
        let line = "Thanks, the invoice arrived and everything in it is fine.\r\n";
        let body = fill(line, MAX_MAIL / scale - raw.len() - line.len());
        raw.extend_from_slice(body.as_bytes());
        raw
    };
    let html_25 = {
        let mut raw = html("");
        let para = "<p style=\"color:#333\">Thanks, the <b>invoice</b> arrived &amp; everything in it is <a href=\"https://customer.example/x\">fine</a>.</p>\r\n";
        let body = fill(para, MAX_MAIL / scale - raw.len() - para.len());
        raw.extend_from_slice(body.as_bytes());
        raw
    };
    vec![
        m("25 MiB text/plain reply", text_25),
        m("25 MiB HTML reply", html_25),
    ]
}

fn internal_date() -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339("2025-03-04T10:15:30+01:00").ok()
}

/// What was decided, short: `post #1 (12345 B HTML)`, `skip unmatched: …`.
fn outcome(mail: &Mail, rules: &Rules) -> String {
    let d = decide(&mail.raw, rules, &NoReferences, internal_date());
    match d.action {
        Action::Post {
            ticket, request, ..
        } => format!(
            "post #{ticket} ({} B {:?})",
            request.body.len(),
            request.body_type
        ),
        Action::NewTicket {
            request,
            attachments,
        } => format!(
            "new ticket ({} B body, {} attachments)",
            request.body.len(),
            attachments.len()
        ),
        Action::Skip { kind, reason } => {
            let reason: String = reason.chars().take(60).collect();
            format!("skip {kind:?}: {reason}")
        }
    }
}

/// Rules of a mailbox that opens new tickets.
fn new_tickets(rules: &Rules) -> Rules {
    let mailbox: MailboxConfig = toml::from_str(
        "name = \"support\"\nhost = \"imap.example.com\"\nusername = \"support@helpdesk.example\"\n\
         password = \"x\"\non_unmatched = \"new_ticket\"\n[new_ticket]\nto = \"support@helpdesk.example\"\n",
    )
    .expect("a mailbox that opens tickets");
    mailbox.rules(rules)
}

fn main() {
    let rules = default_rules().expect("default rules");
    let mut trusting = rules.clone();
    // An id none of the headers has: every one of them is read.
    trusting.trusted_authserv_id = vec!["mx.nowhere.example".into()];
    let ticketing = new_tickets(&rules);
    let pick = |m: &Mail| match m.rules {
        Which::Default => &rules,
        Which::Authenticated => &trusting,
        Which::NewTickets => &ticketing,
    };
    assert_eq!(
        ContentConfig::default().max_message_size.bytes(),
        MAX_MAIL as u64
    );
    let timing = std::env::args().any(|a| a == "--bench");
    if !timing {
        for mail in mails(16) {
            println!("{:<38} {}", mail.name, outcome(&mail, pick(&mail)));
        }
        return;
    }

    // `cargo bench --bench hostile -- amp`: only the mails whose name has "amp".
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mut rows = Vec::new();
    for mail in mails(1) {
        if !only.is_empty() && !only.iter().any(|o| mail.name.contains(o.as_str())) {
            continue;
        }
        let what = outcome(&mail, pick(&mail));
        let mut times: Vec<Duration> = (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                black_box(decide(
                    black_box(&mail.raw),
                    pick(&mail),
                    &NoReferences,
                    internal_date(),
                ));
                t.elapsed()
            })
            .collect();
        times.sort();
        let ms = times[RUNS / 2].as_secs_f64() * 1e3;
        println!(
            "{:>9.1} ms {:>10} B  {:<38} {what}",
            ms,
            mail.raw.len(),
            mail.name
        );
        rows.push((mail.name, ms));
    }
    let (slowest, max_ms) = rows
        .iter()
        .copied()
        .fold(("", 0.0f64), |a, b| if b.1 > a.1 { b } else { a });
    let met = max_ms <= TARGET_MS;
    println!(
        "slowest: {slowest} {max_ms:.1} ms; target ≤ {TARGET_MS} ms each: {}",
        if met { "met" } else { "MISSED" }
    );
    println!(
        "{{\"bench\":\"hostile\",\"mails\":{},\"max_ms\":{max_ms:.1},\"slowest\":{},\"target_ms\":{TARGET_MS},\"met\":{met}}}",
        rows.len(),
        serde_json::Value::from(slowest),
    );
}
