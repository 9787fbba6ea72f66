//! Conformance of `date` against the real-world corpora (`corpus::dir()`), and
//! properties of `sent_at` / `thulium_date` for any instant.

mod corpus;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use proptest::prelude::*;
use thulium_mail_bridge::mail::date::{parse_date, sent_at, thulium_date};

/// Header texts (blanks collapsed) in the corpora that are no date at all, or an
/// impossible one; the bridge then falls back to INTERNALDATE.
const UNREADABLE: &[(&str, &str)] = &[
    ("Whenever", "not a date (RFC example)"),
    ("<HR>", "not a date"),
    ("Wed, 15 Dec 2010 59:10 -0500", "hour 59"),
    ("Wed, 05 Sep 2018 29:24:05 +0700", "hour 29"),
    ("Mon, 30 Jun 3609 15:33:50 +0600", "year 3609"),
    (
        "Thu, 13 Feb 1969 ",
        "1969, before 1970 (RFC 2822 appendix A examples)",
    ),
];

/// Dates read: what `sent_at` achieves today, so that a regression fails.
const FLOOR: usize = 1145;

#[test]
fn corpus_dates_are_read() {
    let corpus = corpus::dir();
    let index = std::fs::read_to_string(corpus.join("INDEX.tsv")).unwrap_or_default();
    let (mut with_date, mut parsed) = (0, 0);
    let mut failures = Vec::new();
    let mut unexpected = Vec::new();
    let mut disagreements = Vec::new();
    for line in index.lines().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, path, "raw-mail", ..] = fields.as_slice() else {
            continue;
        };
        let file = corpus.join(name).join(path);
        let raw = corpus::normalize(
            std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())),
        );
        let Some(msg) = mail_parser::MessageParser::default().parse(&raw[..]) else {
            continue;
        };
        let Some(header) = msg
            .headers()
            .iter()
            .find(|h| h.name().eq_ignore_ascii_case("Date"))
            .and_then(|h| raw.get(h.offset_start() as usize..h.offset_end() as usize))
            .map(|b| {
                String::from_utf8_lossy(b)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        else {
            continue;
        };
        with_date += 1;
        match sent_at(&msg) {
            Some(ours) => {
                parsed += 1;
                // Where mail-parser reads a valid date too, say where we differ (and why it matters).
                if let Some(theirs) = msg.date().filter(|d| d.is_valid())
                    && theirs.to_timestamp() != ours.timestamp()
                {
                    disagreements.push(format!(
                        "  {name}/{path}: {header:?}: ours {} mail-parser {}",
                        ours.to_rfc3339(),
                        theirs.to_rfc3339()
                    ));
                }
            }
            None => {
                if let Some(theirs) = msg.date().filter(|d| d.is_valid()) {
                    disagreements.push(format!(
                        "  {name}/{path}: {header:?}: ours none, mail-parser {}",
                        theirs.to_rfc3339()
                    ));
                }
                failures.push(format!("  {name}/{path}: {header:?}"));
                if !UNREADABLE.iter().any(|(text, _)| header.starts_with(text)) {
                    unexpected.push(header);
                }
            }
        }
    }
    println!("dates read {parsed}/{with_date}");
    if !failures.is_empty() {
        println!("unread Date headers:\n{}", failures.join("\n"));
    }
    if !disagreements.is_empty() {
        println!(
            "mail-parser reads these differently:\n{}",
            disagreements.join("\n")
        );
    }
    assert!(
        unexpected.is_empty(),
        "unexpected unread dates: {unexpected:#?}"
    );
    assert!(
        parsed >= FLOOR,
        "dates read {parsed}/{with_date}, below the floor {FLOOR}"
    );
}

/// The zones a Thulium account is likely to use, and a few awkward ones.
const ZONES: &[chrono_tz::Tz] = &[
    chrono_tz::Europe::Warsaw,
    chrono_tz::Europe::London,
    chrono_tz::UTC,
    chrono_tz::America::New_York,
    chrono_tz::America::St_Johns,
    chrono_tz::Asia::Kathmandu,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Pacific::Kiritimati,
];

/// Seconds of 1970-01-01T00:00:00Z and 2099-12-31T23:59:59Z.
const FIRST: i64 = 0;
const LAST: i64 = 4_102_444_799;

fn instant(seconds: i64, offset_minutes: i32) -> Option<DateTime<FixedOffset>> {
    let zone = FixedOffset::east_opt(offset_minutes * 60)?;
    Utc.timestamp_opt(seconds, 0)
        .single()
        .map(|t| t.with_timezone(&zone))
}

proptest! {
    // Integration tests have no lib.rs beside them to persist failures next to.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn thulium_date_has_the_api_form(
        seconds in FIRST..=LAST,
        offset in -(23 * 60 + 59)..=(23 * 60 + 59),
        zone in 0..ZONES.len(),
    ) {
        let at = instant(seconds, offset);
        prop_assume!(at.is_some());
        let (Some(at), Some(tz)) = (at, ZONES.get(zone)) else { return Ok(()) };
        let text = thulium_date(at, *tz);
        let shape = regex::Regex::new(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$").ok();
        prop_assert!(shape.is_some_and(|re| re.is_match(&text)), "{text}");
    }

    #[test]
    fn sent_at_reads_what_rfc2822_writes(
        seconds in FIRST..=LAST,
        offset in -(14 * 60)..=(14 * 60),
    ) {
        let at = instant(seconds, offset);
        prop_assume!(at.is_some());
        let Some(at) = at else { return Ok(()) };
        let raw = format!("From: a@b.example\r\nDate: {}\r\nSubject: x\r\n\r\nbody\r\n", at.to_rfc2822());
        let msg = mail_parser::MessageParser::default().parse(raw.as_bytes());
        let read = msg.as_ref().and_then(sent_at);
        prop_assert_eq!(read, Some(at));
        prop_assert_eq!(read.map(|d| d.offset().local_minus_utc()), Some(at.offset().local_minus_utc()));
    }

    #[test]
    fn parse_date_never_panics(text in ".{0,300}") {
        let _ = parse_date(&text);
    }

    #[test]
    fn parse_date_never_panics_on_date_like_text(
        text in r"[A-Za-z]{0,4},? ?[0-9]{0,4} ?[A-Za-z]{0,9} [0-9]{0,5} [0-9:.]{0,9} ?[-+A-Za-z0-9:()]{0,12}"
    ) {
        if let Some(at) = parse_date(&text) {
            let utc = at.naive_utc();
            prop_assert!((1970..=2100).contains(&chrono::Datelike::year(&utc)), "{text} -> {at}");
        }
    }

    #[test]
    fn sent_at_never_panics_on_any_header(value in "[ -~\t\r\n\u{80}-\u{10ffff}]{0,200}") {
        let raw = format!("Date: {value}\r\n\r\nx");
        if let Some(msg) = mail_parser::MessageParser::default().parse(raw.as_bytes()) {
            let _ = sent_at(&msg);
        }
    }
}
