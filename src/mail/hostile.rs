//! Mails built to stall or exhaust the bridge, decided: the results they must get.
//! (How long they take is `benches/hostile.rs`'s business.)

use crate::mail::AuthVerdict;
use crate::mail::decide::{Action, Decision, NoReferences, Rules, SkipKind, decide};
use chrono::{DateTime, FixedOffset};

fn received() -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339("2025-03-04T10:15:30+01:00").ok()
}

fn raw(subject: &str, headers: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "From: anna@customer.example\r\nDate: Tue, 04 Mar 2025 10:15:00 +0100\r\n\
         Subject: {subject}\r\n{headers}Content-Type: {content_type}\r\n\r\n{body}"
    )
    .into_bytes()
}

fn decided(raw: &[u8], rules: &Rules) -> Decision {
    decide(raw, rules, &NoReferences, received())
}

fn posted_body(d: &Decision) -> &str {
    match &d.action {
        Action::Post { request, .. } => &request.body,
        other => panic!("not posted: {other:?}"),
    }
}

fn max_body() -> usize {
    crate::config::ContentConfig::default()
        .max_body_size
        .bytes() as usize
}

fn rules() -> Rules {
    Rules::defaults().expect("default rules")
}

#[test]
fn a_subject_of_200k_tags_is_ambiguous() {
    let tags: String = (1..=200_000).map(|i| format!("[#{i}] ")).collect();
    let d = decided(&raw(&tags, "", "text/plain", "x"), &rules());
    assert_eq!(
        d.action,
        Action::Skip {
            kind: SkipKind::Unmatched,
            reason: "subject names more than one ticket (1, 2)".into()
        }
    );
    assert!(d.subject.len() <= crate::mail::ticket::MAX_SUBJECT);
}

#[test]
fn an_ampersand_flood_gives_a_bounded_whole_body() {
    for piece in ["&amp;", "&", "&#x", "&nbsp;x"] {
        let d = decided(
            &raw(
                "Re: [#1] x",
                "",
                "text/html",
                &piece.repeat((2 << 20) / piece.len()),
            ),
            &rules(),
        );
        let body = posted_body(&d);
        assert!(body.len() <= max_body(), "{piece}: {}", body.len());
        assert!(body.contains("message truncated"), "{piece}");
        assert!(!body.contains("<!--"), "{piece}");
    }
}

#[test]
fn thousands_of_blockquotes_and_cid_images_are_read() {
    let nested = format!(
        "Answer{}old{}",
        "<blockquote>".repeat(10_000),
        "</blockquote>".repeat(10_000)
    );
    let d = decided(&raw("Re: [#1] x", "", "text/html", &nested), &rules());
    assert_eq!(crate::mail::body::html_to_text(posted_body(&d)), "Answer");

    // 5 000 images whose cid: differs in case from the Content-ID: each a hash probe.
    let n = 5_000;
    let mut body: String = "--b\r\nContent-Type: text/html\r\n\r\n".into();
    body.extend((0..n).map(|i| format!("<img src=\"cid:IMG{i}@X\">")));
    body.push_str("\r\n");
    for i in 0..n {
        body.push_str(&format!(
            "--b\r\nContent-Type: image/png; name=\"i{i}.png\"\r\nContent-ID: <img{i}@x>\r\n\r\nx\r\n"
        ));
    }
    body.push_str("--b--\r\n");
    let d = decided(
        &raw("Re: [#1] x", "", "multipart/related; boundary=b", &body),
        &rules(),
    );
    let text = posted_body(&d);
    assert!(text.starts_with("[i0.png][i1.png]"), "{}", &text[..40]);
    assert!(
        !text.contains("Attachments:"),
        "shown images are not listed again"
    );
}

#[test]
fn huge_attributes_and_styles_leave_the_text() {
    // Within the input cap (2 MiB), so the text after them is read.
    let style = "color:red;".repeat(50_000);
    let d = decided(
        &raw(
            "Re: [#1] x",
            "",
            "text/html",
            &format!(
                "<p style=\"{style}\" title=\"{}\">Hello</p>",
                "&".repeat(500_000)
            ),
        ),
        &rules(),
    );
    assert_eq!(posted_body(&d), "<p>Hello</p>");
}

#[test]
fn a_flood_of_references_is_read_as_its_newest() {
    let refs: String = (0..200_000).map(|i| format!(" <r{i}@x>")).collect();
    let d = decided(
        &raw(
            "Re: no tag",
            &format!("References:{refs}\r\n"),
            "text/plain",
            "x",
        ),
        &rules(),
    );
    assert_eq!(d.references.len(), crate::mail::thread::MAX_REFERENCES);
    assert_eq!(d.references[0], "<r199999@x>");
    assert!(matches!(
        d.action,
        Action::Skip {
            kind: SkipKind::Unmatched,
            ..
        }
    ));
}

#[test]
fn thousands_of_authentication_results_give_the_topmost_trusted_verdict() {
    let mut headers = String::new();
    for i in 0..20_000 {
        headers.push_str(&format!(
            "Authentication-Results: mx{i}.example; dmarc=pass header.from=customer.example\r\n"
        ));
    }
    let mut r = rules();
    r.trusted_authserv_id = vec!["mx7.example".into()];
    let d = decided(&raw("Re: [#1] x", &headers, "text/plain", "x"), &r);
    assert_eq!(
        d.authentication,
        AuthVerdict::Pass("dmarc=pass header.from=customer.example".into())
    );
}

#[test]
fn garbage_and_empty_structures_never_post_an_empty_body() {
    let garbage = "!@#$%^&*()_+{}|:\"<>?~`-=[]\\;',./\r\n".repeat(30_000);
    let d = decided(
        &raw(
            "Re: [#1] x",
            "Content-Transfer-Encoding: base64\r\n",
            "text/plain",
            &garbage,
        ),
        &rules(),
    );
    if let Action::Post { request, .. } = &d.action {
        assert!(!request.body.trim().is_empty());
        assert!(request.body.len() <= max_body());
    }
    let mut deep = String::new();
    for i in 0..5_000 {
        deep.push_str(&format!(
            "--b{i}\r\nContent-Type: multipart/mixed; boundary=b{}\r\n\r\n",
            i + 1
        ));
    }
    for html in [
        raw("Re: [#1] x", "", "multipart/mixed; boundary=b0", &deep),
        raw("Re: [#1] x", "", "text/html", &"<a".repeat(100_000)),
        raw("Re: [#1] x", "", "text/html", &"<!--".repeat(100_000)),
    ] {
        let d = decided(&html, &rules());
        match &d.action {
            Action::Post { request, .. } => assert!(!request.body.trim().is_empty()),
            Action::NewTicket { .. } => panic!("no mailbox here opens tickets"),
            Action::Skip { kind, reason } => {
                assert_eq!(*kind, SkipKind::Failed);
                assert!(reason.starts_with("nothing to post"), "{reason}");
            }
        }
    }
}

#[test]
fn bidi_controls_never_reach_the_helpdesk() {
    let body = "\u{202e}a\u{2066}".repeat(100_000);
    for ct in ["text/plain; charset=utf-8", "text/html; charset=utf-8"] {
        let d = decided(&raw("Re: [#1] x", "", ct, &body), &rules());
        let text = posted_body(&d);
        assert!(!text.contains(['\u{202e}', '\u{2066}']), "{ct}");
        assert!(text.starts_with("aaa"), "{ct}");
    }
}
