//! `ledger list`: the mails the bridge did not place, one line each with why, from the
//! ledger's `decisions` (the latest decision about each mail). An aligned table for
//! people, JSON Lines (one object a line, `jq`-friendly, streamable) for scripts.

use crate::daemon::outcome::NOT_PLACED;
use crate::ledger::{DecisionQuery, DecisionRecord, Ledger, LedgerError, unix_now};
use std::time::{Duration, UNIX_EPOCH};

/// What to list: outcome names (none: the mails not placed), how far back, which mailbox.
pub(crate) struct ListFilter<'a> {
    pub states: &'a [String],
    pub since: Duration,
    pub mailbox: Option<&'a str>,
}

/// The table (or the JSON Lines) of the decisions `filter` asks for.
pub(crate) fn list(
    ledger: &Ledger,
    filter: &ListFilter<'_>,
    json: bool,
) -> Result<String, LedgerError> {
    let outcomes: Vec<String> = if filter.states.is_empty() {
        NOT_PLACED.iter().map(|s| s.to_string()).collect()
    } else {
        filter.states.to_vec()
    };
    let rows = futures::executor::block_on(ledger.decisions(&DecisionQuery {
        since: unix_now().saturating_sub(filter.since.as_secs()),
        mailbox: filter.mailbox.map(str::to_string),
        outcomes: outcomes.clone(),
    }))?;
    Ok(if json {
        json_lines(&rows)
    } else if rows.is_empty() {
        let mailbox = filter
            .mailbox
            .map(|m| format!(" in mailbox {m}"))
            .unwrap_or_default();
        format!(
            "no mail {} in the last {}{mailbox}\n",
            either(&outcomes),
            humantime::format_duration(filter.since)
        )
    } else {
        table(&rows)
    })
}

const HEADERS: [&str; 8] = [
    "WHEN", "MAILBOX", "FOLDER", "STATE", "TICKET", "SENDER", "SUBJECT", "REASON",
];
/// The widest a column gets (the last one, the reason, is never cut).
const WIDEST: [usize; 7] = [20, 20, 24, 10, 10, 40, 50];

/// An aligned table: a header line, then one line a mail.
pub(crate) fn table(rows: &[DecisionRecord]) -> String {
    let lines: Vec<[String; 8]> = rows
        .iter()
        .map(|d| {
            [
                when(d.decided),
                d.place.mailbox.clone(),
                d.place.folder.clone(),
                d.outcome.clone(),
                d.ticket.map_or_else(|| "-".into(), |t| t.to_string()),
                d.sender.clone().unwrap_or_else(|| "-".into()),
                d.subject.clone(),
                d.reason.clone(),
            ]
            .map(|cell| printable(&cell))
        })
        .collect();
    let mut widths = [0usize; 7];
    for (i, width) in widths.iter_mut().enumerate() {
        let widest = lines.iter().map(|l| l[i].chars().count());
        *width = widest
            .chain([HEADERS[i].len()])
            .max()
            .unwrap_or(0)
            .min(WIDEST[i]);
    }
    let mut out = String::new();
    let headers = HEADERS.map(str::to_string);
    for line in std::iter::once(&headers).chain(&lines) {
        for (i, width) in widths.iter().enumerate() {
            out.push_str(&padded(&line[i], *width));
            out.push_str("  ");
        }
        out.push_str(&line[7]);
        let end = out.trim_end_matches(' ').len();
        out.truncate(end);
        out.push('\n');
    }
    out
}

/// One JSON object a line, every field present (`null` when unknown).
pub(crate) fn json_lines(rows: &[DecisionRecord]) -> String {
    rows.iter()
        .map(|d| {
            let line = serde_json::json!({
                "when": when(d.decided),
                "mailbox": d.place.mailbox,
                "folder": d.place.folder,
                "uid_validity": d.place.uid_validity,
                "uid": d.place.uid,
                "message_id": d.mail.as_ref().and_then(|m| m.message_id.as_deref()),
                "sender": d.sender,
                "subject": d.subject,
                "ticket": d.ticket,
                "state": d.outcome,
                "reason": d.reason,
            });
            format!("{line}\n")
        })
        .collect()
}

fn when(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// `a, b or c`.
fn either(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// `text` cut to `width` characters (marked with `…`), then padded to it.
fn padded(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count > width {
        let cut: String = text.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        format!("{text}{}", " ".repeat(width - count))
    }
}

/// Control characters (an encoded-word can carry a newline or a terminal escape, an API
/// message anything) as spaces: a mail is one line on the screen, and only text.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Location;
    use crate::mail::MailId;

    fn row(
        sender: Option<&str>,
        subject: &str,
        ticket: Option<u64>,
        reason: &str,
    ) -> DecisionRecord {
        DecisionRecord {
            decided: 1_795_000_000,
            place: Location {
                mailbox: "support".into(),
                folder: "INBOX".into(),
                uid_validity: 7,
                uid: 3,
            },
            mail: Some(MailId {
                message_id: Some("<a@x>".into()),
                content: "c".into(),
                legacy: None,
            }),
            sender: sender.map(str::to_string),
            subject: subject.into(),
            ticket,
            outcome: "unverified".into(),
            reason: reason.into(),
            replaces: true,
        }
    }

    #[test]
    fn columns_line_up_whatever_the_lengths_and_a_long_subject_is_cut() {
        let rows = [
            row(
                Some("piotr@customer.example"),
                "Re: [TH#1] Hi",
                Some(1),
                "stranger",
            ),
            row(None, &"Zażółć gęślą jaźń ".repeat(5), None, "too big"),
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let reason_at =
            |l: &str| l.chars().count() - l.rsplit("  ").next().unwrap().chars().count();
        assert_eq!(reason_at(lines[0]), reason_at(lines[1]), "{text}");
        assert_eq!(reason_at(lines[1]), reason_at(lines[2]), "{text}");
        assert!(
            lines[2].contains("Zażółć") && lines[2].contains('…'),
            "{text}"
        );
        assert!(lines[2].contains("  -  "), "no sender, no ticket: {text}");
    }

    #[test]
    fn a_hostile_subject_cannot_break_a_line_or_reach_the_terminal() {
        let text = table(&[row(
            Some("a@x"),
            "Re: [TH#1]\r\nFAKE LINE\u{1b}[2J",
            Some(1),
            "x\ny",
        )]);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains('\u{1b}'), "{text:?}");
        let json = json_lines(&[row(Some("a@x"), "a\nb", None, "r")]);
        assert_eq!(json.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(v["subject"], "a\nb");
        assert_eq!(v["ticket"], serde_json::Value::Null);
        assert_eq!(v["message_id"], "<a@x>");
    }
}
