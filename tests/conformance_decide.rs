//! `decide` and `explain` over every real-world mail of `corpus::dir()`: never a panic,
//! always a decision that names its reason or its request.

mod corpus;

use thulium_mail_bridge::commands::explain;
use thulium_mail_bridge::config::default_rules;
use thulium_mail_bridge::mail::decide::{Action, NoReferences, decide};

/// The subject rewritten to carry a ticket tag, as a customer's reply would.
fn tagged(raw: &[u8]) -> Vec<u8> {
    let mut out = b"Subject: Re: [TH#4242] tagged for the test\r\n".to_vec();
    let mut in_subject = false;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with(b"subject:") {
            in_subject = true;
            continue;
        }
        if in_subject && (line.starts_with(b" ") || line.starts_with(b"\t")) {
            continue;
        }
        in_subject = false;
        out.extend_from_slice(line);
    }
    out
}

#[test]
fn every_corpus_mail_gets_a_decision_and_an_explanation() {
    let dir = corpus::dir();
    let rules = default_rules().unwrap();
    let mails = corpus::raw_mails(&dir);
    let (mut post, mut skip) = (0, 0);
    for path in &mails {
        let raw = std::fs::read(path).unwrap();
        for (input, is_tagged) in [(raw.clone(), false), (tagged(&raw), true)] {
            let d = decide(&input, &rules, &NoReferences, None);
            match &d.action {
                Action::Post {
                    ticket, request, ..
                } => {
                    post += 1;
                    if is_tagged {
                        assert_eq!(*ticket, 4242, "{}", path.display());
                    }
                    assert_eq!(
                        request.date.len(),
                        16,
                        "{}: {:?}",
                        path.display(),
                        request.date
                    );
                    assert!(!request.body.contains("<script"), "{}", path.display());
                }
                Action::Skip { reason, .. } => {
                    skip += 1;
                    assert!(!reason.is_empty(), "{}", path.display());
                }
                Action::NewTicket { .. } => {
                    panic!("the default rules open no tickets: {}", path.display())
                }
            }
            let json = explain::to_json(&d);
            assert!(json["action"] == "post" || json["action"] == "skip");
            assert!(!explain::to_text(&d).is_empty());
        }
    }
    println!(
        "decide over {} corpus mails (as sent and tagged): {post} posts, {skip} skips",
        mails.len()
    );
    assert!(mails.len() > 1000, "the corpus is there: {}", mails.len());
}

#[test]
fn the_explain_command_prints_json_for_corpus_mails() {
    let samples = [
        "zammad/test/data/mail/mail001.box",
        "talon/tests/fixtures/standard_replies/apple_mail.eml",
    ];
    for sample in samples {
        let path = corpus::file(sample);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_thulium-mail-bridge"))
            .args(["--config", "/nonexistent/config.toml"])
            .arg("explain")
            .arg(&path)
            .arg("--json")
            .output()
            .unwrap();
        // An explicit config that does not exist is a config error (exit 2) ...
        assert_eq!(out.status.code(), Some(2));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_thulium-mail-bridge"))
            .env("THULIUM_MAIL_BRIDGE_CONFIG", "")
            .arg("explain")
            .arg(&path)
            .arg("--json")
            .output()
            .unwrap();
        // ... while without one, explain uses the default rules.
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            v["action"] == "skip" && v["disposition"] == "unmatched",
            "{v}"
        );
    }
}

/// Found by fuzz/: a nested empty message/rfc822 tripped a debug assertion inside mail-parser.
#[test]
fn a_nested_empty_rfc822_part_is_decided() {
    let raw = b"From: a@b.example\r\nSubject: Re: [#1] x\r\nDate: Tue, 04 Mar 2025 10:15:00 +0100\r\n\
        Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n\
        Content-Type: message/rfc822\r\n\r\n\r\n--b--\r\n";
    let d = decide(raw, &default_rules().unwrap(), &NoReferences, None);
    assert!(matches!(d.action, Action::Post { ticket: 1, .. }), "{d:?}");
}
