//! Conformance of `classify` against real-world corpora (`corpus::dir()`):
//! bounces, DSNs, ARF reports and auto-replies are recognized; mail that people
//! wrote to people is not.

mod corpus;

use std::collections::BTreeMap;
use std::path::Path;
use thulium_mail_bridge::mail::classify::{auto_reply_reason, bounce_reason};

/// What the bridge would say about this mail: Some(reason) for a bounce or auto-reply.
fn verdict(path: &Path) -> Result<Option<String>, String> {
    let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let raw = corpus::normalize(raw);
    let Some(msg) = mail_parser::MessageParser::default().parse(&raw[..]) else {
        return Ok(None);
    };
    Ok(bounce_reason(&msg).or_else(|| auto_reply_reason(&msg)))
}

fn subject(path: &Path) -> String {
    let raw = corpus::normalize(std::fs::read(path).unwrap_or_default());
    mail_parser::MessageParser::default()
        .parse(&raw[..])
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default()
}

/// Rows of a TSV file, comment lines and the header row skipped.
fn rows(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .skip(1)
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// A reason without the mail's own details (address, subject), to count rules by.
fn rule(reason: &str) -> String {
    match reason
        .find(" sender ")
        .or_else(|| reason.find(" starts with "))
    {
        Some(at) if reason.contains(" sender ") => format!("{} sender <daemon>", &reason[..at]),
        _ => reason.to_string(),
    }
}

/// sisimai's expected automatic mail, by LABELS.tsv category.
fn sisimai_kind(category: &str) -> Option<&'static str> {
    if category.starts_with("bounce") {
        Some("bounce")
    } else if category.starts_with("feedback-report") {
        Some("ARF")
    } else if category.starts_with("auto-reply") {
        Some("auto-reply")
    } else {
        None
    }
}

/// Mails outside sisimai's labelled reports that are automatic, and why. Each must be
/// recognized (so this list cannot go stale); any other recognized mail fails the test.
const AUTOMATIC_AFTER_ALL: &[(&str, &str)] = &[
    (
        "sisimai-set-of-emails/maildir/not/rb-issue-368-bug.eml",
        "a mailbox-full bounce from postmaster@ with Return-Path <> and Auto-Submitted; sisimai \
         files it under not/ only because its own parser could not read it (rb-sisimai issue 368)",
    ),
    (
        "zammad/test/data/mail/mail018.box",
        "bounce sample (corpus README)",
    ),
    (
        "zammad/test/data/mail/mail033-undelivered-mail-returned-to-sender.box",
        "bounce sample (corpus README)",
    ),
    (
        "zammad/test/data/mail/mail052.box",
        "bounce sample (corpus README)",
    ),
    (
        "zammad/test/data/mail/mail053.box",
        "bounce sample (corpus README)",
    ),
    (
        "zammad/test/data/mail/mail055.box",
        "bounce sample (corpus README)",
    ),
    (
        "zammad/test/data/mail/mail063.box",
        "bounce sample (corpus README)",
    ),
    (
        "zammad/test/data/mail/mail078.box",
        "bounce sample (corpus README)",
    ),
    (
        "zammad/test/data/mail/mail092.box",
        "bounce sample (corpus README)",
    ),
    (
        "zammad/test/data/mail/mail043.box",
        "newsletter, Precedence: bulk (corpus README: auto-reply subset)",
    ),
    (
        "zammad/test/data/mail/mail089.box",
        "ServiceNow notification, Auto-Submitted: auto-generated",
    ),
    (
        "zammad/test/data/mail/mail090.box",
        "ServiceNow notification, Auto-Submitted: auto-generated",
    ),
    (
        "zammad/test/data/mail/mail019.box",
        "spam sent with the null sender (Return-Path <>, empty From)",
    ),
    (
        "zammad/test/data/mail/mail035.box",
        "spam sent with the null sender (Return-Path <>)",
    ),
    (
        "stalwart-mail-parser/resources/eml/thirdparty/014.eml",
        "mailing-list post (Precedence: list): SPEC skips list mail by design",
    ),
    (
        "discourse-subset/spec/fixtures/emails/auto_generated_allowlisted.eml",
        "Auto-Submitted: auto-generated fixture",
    ),
    (
        "discourse-subset/spec/fixtures/emails/auto_generated_header.eml",
        "Auto-Submitted: auto-generated fixture",
    ),
    (
        "discourse-subset/spec/fixtures/emails/auto_generated_precedence.eml",
        "Precedence: list fixture",
    ),
    (
        "discourse-subset/spec/fixtures/emails/auto_generated_unblocked.eml",
        "Auto-Submitted: auto-generated fixture",
    ),
    (
        "discourse-subset/spec/fixtures/emails/auto_reply.eml",
        "auto-reply fixture (corpus README)",
    ),
    (
        "discourse-subset/spec/fixtures/emails/bounced_email.eml",
        "Postfix DSN fixture (corpus README)",
    ),
    (
        "request-tracker/t/data/emails/multipart-report",
        "DSN fixture",
    ),
    (
        "request-tracker/t/data/emails/8859-15-message-series/dir",
        "mailing-list digest (Precedence: bulk)",
    ),
    (
        "ruby-mail/spec/fixtures/emails/error_emails/bad_date_header.eml",
        "spam with Precedence: junk",
    ),
    (
        "ruby-mail/spec/fixtures/emails/mime_emails/raw_email_with_mimepart_without_content_type.eml",
        "Sendmail delay DSN (multipart/report delivery-status)",
    ),
    (
        "ruby-mail/spec/fixtures/emails/multipart_report_emails/multi_address_bounce1.eml",
        "Postfix DSN",
    ),
    (
        "ruby-mail/spec/fixtures/emails/multipart_report_emails/multi_address_bounce2.eml",
        "Postfix DSN",
    ),
    (
        "ruby-mail/spec/fixtures/emails/multipart_report_emails/multipart_report_multiple_status.eml",
        "DSN",
    ),
    (
        "ruby-mail/spec/fixtures/emails/multipart_report_emails/report_422.eml",
        "Sendmail delay DSN",
    ),
    (
        "ruby-mail/spec/fixtures/emails/multipart_report_emails/report_530.eml",
        "Sendmail DSN",
    ),
];

/// sisimai's labelled reports that we do not recognize, and why that is acceptable.
const KNOWN_MISSES: &[(&str, &str)] = &[
    (
        "maildir/bsd/lhost-sendmail-14.eml",
        "a person forwarding a bounce inline (\"Fwd: Returned mail\", Apple Mail): a person's mail",
    ),
    (
        "maildir/err/make-test-36.eml",
        "the same inline-forwarded bounce as lhost-sendmail-14",
    ),
    (
        "maildir/bsd/lhost-fml-02.eml",
        "fml list-manager notice (\"not member\"): no header sets it apart from an ordinary list post",
    ),
    (
        "maildir/bsd/lhost-fml-03.eml",
        "fml list-manager notice (\"Loop Alert\"): no header sets it apart from an ordinary list post",
    ),
];

/// Recall floors: what the classifier achieves today, so that a regression fails.
const FLOORS: &[(&str, usize, usize)] =
    &[("ARF", 19, 19), ("auto-reply", 8, 8), ("bounce", 802, 806)];

#[test]
fn sisimai_reports_are_recognized() {
    let corpus = corpus::dir();
    let base = corpus.join("sisimai-set-of-emails");
    let mut found: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut misses = Vec::new();
    let mut not_bounce = (0, 0);
    let mut wrong = Vec::new();
    let mut rules: BTreeMap<String, usize> = BTreeMap::new();
    for row in rows(&base.join("LABELS.tsv")) {
        let (Some(path), Some(category)) = (row.first(), row.get(1)) else {
            continue;
        };
        let file = base.join(path);
        let verdict = verdict(&file).unwrap_or_else(|e| panic!("{e}"));
        match sisimai_kind(category) {
            Some(kind) => {
                let entry = found.entry(kind).or_default();
                entry.1 += 1;
                if let Some(reason) = &verdict {
                    entry.0 += 1;
                    *rules.entry(rule(reason)).or_default() += 1;
                } else if let Some((_, why)) = KNOWN_MISSES.iter().find(|(p, _)| p == path) {
                    println!("known miss: {path}: {why}");
                } else {
                    misses.push(format!("  {path} [{kind}] subject {:?}", subject(&file)));
                }
            }
            None => {
                let key = format!("sisimai-set-of-emails/{path}");
                not_bounce.1 += 1;
                if let Some(reason) = verdict {
                    if AUTOMATIC_AFTER_ALL.iter().any(|(p, _)| *p == key) {
                        not_bounce.0 += 1;
                        println!("accepted: {path}: {reason}");
                    } else {
                        wrong.push(format!("  {path}: {reason}"));
                    }
                }
            }
        }
    }
    for (rule, count) in &rules {
        println!("  {count:4}  {rule}");
    }
    for (kind, (hit, all)) in &found {
        println!("{kind} recall {hit}/{all}");
    }
    println!(
        "maildir/not/ recognized {}/{} (accepted exceptions only)",
        not_bounce.0, not_bounce.1
    );
    assert!(
        wrong.is_empty(),
        "maildir/not/ mail recognized:\n{}",
        wrong.join("\n")
    );
    assert!(
        misses.is_empty(),
        "reports not recognized:\n{}",
        misses.join("\n")
    );
    for (kind, floor, total) in FLOORS {
        let (hit, all) = found.get(kind).copied().unwrap_or_default();
        assert!(
            hit >= *floor && all >= *total,
            "{kind} recall {hit}/{all} is below {floor}/{total}"
        );
    }
}

#[test]
fn person_to_person_mail_is_not_recognized() {
    let corpus = corpus::dir();
    let mut checked = 0;
    let mut false_positives = Vec::new();
    let mut accepted = Vec::new();
    let mut by_corpus: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for row in rows(&corpus.join("INDEX.tsv")) {
        let [name, path, kind, ..] = row.as_slice() else {
            continue;
        };
        if kind != "raw-mail" || name == "sisimai-set-of-emails" {
            continue;
        }
        let key = format!("{name}/{path}");
        let file = corpus.join(name).join(path);
        let verdict = verdict(&file).unwrap_or_else(|e| panic!("{e}"));
        let entry = by_corpus.entry(name.clone()).or_default();
        entry.1 += 1;
        let expected = AUTOMATIC_AFTER_ALL.iter().find(|(p, _)| *p == key);
        match (verdict, expected) {
            (Some(reason), Some((_, why))) => {
                entry.0 += 1;
                println!("accepted: {key}: {reason} ({why})");
                accepted.push(key);
            }
            (Some(reason), None) => {
                entry.0 += 1;
                false_positives.push(format!("  {key}: {reason} (subject {:?})", subject(&file)));
                checked += 1;
            }
            (None, Some(_)) => panic!("{key} is listed as automatic but was not recognized"),
            (None, None) => checked += 1,
        }
    }
    for (name, (hit, all)) in &by_corpus {
        println!("{name}: recognized {hit}/{all}");
    }
    println!(
        "false positives {}/{checked} (besides {} accepted exceptions)",
        false_positives.len(),
        accepted.len()
    );
    assert!(
        false_positives.is_empty(),
        "recognized as automatic:\n{}",
        false_positives.join("\n")
    );
    let sisimai = AUTOMATIC_AFTER_ALL
        .iter()
        .filter(|(p, _)| p.starts_with("sisimai"))
        .count();
    assert_eq!(
        accepted.len() + sisimai,
        AUTOMATIC_AFTER_ALL.len(),
        "an accepted exception is missing from INDEX.tsv"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Any bytes at all: the classifiers answer, they never panic.
    #[test]
    fn classify_never_panics(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000)) {
        if let Some(msg) = mail_parser::MessageParser::default().parse(&raw[..]) {
            let _ = bounce_reason(&msg);
            let _ = auto_reply_reason(&msg);
        }
    }

    /// Header-shaped input with the names the classifiers read.
    #[test]
    fn classify_never_panics_on_headers(
        lines in proptest::collection::vec(
            (
                proptest::sample::select(vec![
                    "From", "Return-Path", "Subject", "Auto-Submitted", "Precedence",
                    "X-Auto-Response-Suppress", "Content-Type", "X-Failed-Recipients", "X-Autoreply",
                ]),
                "[ -~\u{80}-\u{10ffff}\t]{0,80}",
            ),
            0..12,
        ),
        body in "[ -~\r\n]{0,200}",
    ) {
        let mut raw = String::new();
        for (name, value) in &lines {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str("\r\n");
        raw.push_str(&body);
        if let Some(msg) = mail_parser::MessageParser::default().parse(raw.as_bytes()) {
            let _ = bounce_reason(&msg);
            let _ = auto_reply_reason(&msg);
        }
    }
}
