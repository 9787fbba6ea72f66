//! Bounces and other machine reports: RFC 3464 DSNs, RFC 8098 read receipts,
//! RFC 5965 (ARF) abuse reports, and the non-standard bounces of older MTAs.

use super::{auto_reply, headers};
use mail_parser::{Message, MimeHeaders};
use regex::Regex;
use std::sync::LazyLock;

/// Why this mail is a bounce or delivery report, if it is.
///
/// Read receipts (MDNs) and abuse reports count too: they are written by software,
/// never by the customer, and would only clutter the ticket.
pub fn bounce_reason(msg: &Message<'_>) -> Option<String> {
    // mail-parser's accessors index the root part; a hand-made empty Message has none.
    if msg.parts.is_empty() {
        return None;
    }
    report_reason(msg)
        .or_else(|| failed_recipients_reason(msg))
        .or_else(|| sender_reason(msg))
        .or_else(|| sns_reason(msg))
        .or_else(|| subject_reason(msg))
        .or_else(|| null_sender_reason(msg))
}

/// A `multipart/report` (RFC 6522), or a report part inside the mail's own MIME tree
/// (not inside an attached message: a forwarded bounce is a person's mail).
fn report_reason(msg: &Message<'_>) -> Option<String> {
    if let Some(ct) = msg.root_part().content_type() {
        let is_report = ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"));
        if is_report {
            let report_type = ct
                .attribute("report-type")
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            return Some(match report_kind(&report_type) {
                Some(kind) => format!("{kind}: multipart/report {report_type}"),
                None if report_type.is_empty() => "bounce: multipart/report".into(),
                None => format!("bounce: multipart/report {report_type}"),
            });
        }
    }
    msg.parts.iter().find_map(|part| {
        let ct = part.content_type()?;
        if !ct.ctype().eq_ignore_ascii_case("message") {
            return None;
        }
        let subtype = ct.subtype()?.to_ascii_lowercase();
        let kind = report_kind(&subtype)?;
        Some(format!("{kind}: message/{subtype} part"))
    })
}

/// What a report type (or `message/*` report part subtype) is, in the reason's words.
fn report_kind(report_type: &str) -> Option<&'static str> {
    match report_type {
        "delivery-status" | "global-delivery-status" => Some("bounce"),
        "disposition-notification" | "global-disposition-notification" => Some("read receipt"),
        "feedback-report" => Some("abuse report"),
        _ => None,
    }
}

/// Exim and others name the failed addresses in a header of the bounce.
fn failed_recipients_reason(msg: &Message<'_>) -> Option<String> {
    headers::first(msg, "X-Failed-Recipients").map(|_| "bounce: X-Failed-Recipients".into())
}

/// RFC 5321 section 4.5.1: `postmaster`; and the MTA's own `MAILER-DAEMON`.
fn sender_reason(msg: &Message<'_>) -> Option<String> {
    headers::from_addresses(msg).find_map(|address| {
        let local = headers::local_part(address);
        let local = local.trim_matches('"');
        let daemon = matches!(local, "mailer-daemon" | "mailer_daemon" | "mailerdaemon");
        let postmaster = matches!(local, "postmaster" | "post_master" | "post-master");
        (daemon || postmaster).then(|| format!("bounce: sender {}", address.trim()))
    })
}

/// Amazon SES reports bounces as JSON in SNS notification mails; no person sends those.
fn sns_reason(msg: &Message<'_>) -> Option<String> {
    headers::first(msg, "x-amz-sns-message-id").map(|_| "automatic: Amazon SNS notification".into())
}

/// The fixed subjects of bounces from MTAs that send no DSN. Anchored at the start,
/// so a person's "Re: Undeliverable: ..." or "Fwd: failure notice" does not count;
/// the generic words need the `:` (or the end) that MTAs put after them, so a
/// customer's "Delivery failure of order 123" is not one.
static SUBJECT: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?xi)^\s*(
            undelivered\s+mail\s+returned\s+to\s+sender                 # Postfix
          | delivery\s+status\s+notification                            # Gmail, Exchange, Sendmail
          | mail\s+delivery\s+failed                                    # Exim
          | failure\s+notice                                             # qmail
          | returned\s+mail\s*:                                         # Sendmail
          | undeliver(able|ed)(\s+mail|\s+message)?\s*(:|,|$)           # Exchange, Domino
          | delivery\s+failure\s*(:|$)                                  # Domino
          | unzustellbar\s*:                                            # de Exchange
          | niedostarczalne\s*:                                         # pl Exchange
          | non\s+remis\s*:                                             # fr Exchange
          | メールエラー通知                                            # KDDI (au one net)
        )",
    )
    .ok()
});

/// Hotmail's feedback loop (JMRP) sends complaints without ARF, under this fixed subject.
static ABUSE_SUBJECT: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)^\s*complaint\s+about\s+message\s+from\s").ok());

fn subject_reason(msg: &Message<'_>) -> Option<String> {
    let subject = msg.subject()?;
    let prefix = |found: regex::Match<'_>| {
        found
            .as_str()
            .trim()
            .trim_end_matches(':')
            .trim_end()
            .to_string()
    };
    if let Some(found) = SUBJECT.as_ref().and_then(|re| re.find(subject)) {
        return Some(format!("bounce: subject starts with \"{}\"", prefix(found)));
    }
    let found = ABUSE_SUBJECT.as_ref()?.find(subject)?;
    Some(format!(
        "abuse report: subject starts with \"{}\"",
        prefix(found)
    ))
}

/// `Return-Path: <>` is the null sender of RFC 5321: only bounces and automatic
/// replies use it. An auto-reply with a null sender is left to [`auto_reply`], whose
/// reason says more and whose switch (`skip_auto_replies`) governs it.
fn null_sender_reason(msg: &Message<'_>) -> Option<String> {
    let return_path = headers::first(msg, "Return-Path")?;
    let inner: String = return_path.chars().filter(|c| !c.is_whitespace()).collect();
    if inner != "<>" {
        return None;
    }
    if auto_reply::auto_reply_reason(msg).is_some() {
        return None;
    }
    Some("bounce: empty Return-Path <>".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn reason(raw: &str) -> Option<String> {
        let msg = MessageParser::default().parse(raw.as_bytes())?;
        bounce_reason(&msg)
    }

    fn plain(headers: &str) -> Option<String> {
        reason(&format!(
            "From: Anna <anna@customer.example>\r\n{headers}\r\n\r\nHello\r\n"
        ))
    }

    const DSN: &str = "From: Mail Delivery System <mailer@mx.example>\r\n\
        Subject: Notice\r\n\
        Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
        --b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n\
        --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n\
        Final-Recipient: rfc822; x@y.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
        --b--\r\n";

    #[test]
    fn multipart_report_kinds() {
        assert_eq!(
            reason(DSN).as_deref(),
            Some("bounce: multipart/report delivery-status")
        );
        let mdn = DSN.replace("delivery-status", "disposition-notification");
        assert_eq!(
            reason(&mdn).as_deref(),
            Some("read receipt: multipart/report disposition-notification")
        );
        let arf = DSN.replace("delivery-status", "feedback-report");
        assert_eq!(
            reason(&arf).as_deref(),
            Some("abuse report: multipart/report feedback-report")
        );
        let odd = DSN.replace("report-type=delivery-status; ", "");
        assert_eq!(reason(&odd).as_deref(), Some("bounce: multipart/report"));
    }

    #[test]
    fn delivery_status_part_without_multipart_report() {
        let mixed = DSN.replace(
            "multipart/report; report-type=delivery-status",
            "multipart/mixed",
        );
        assert_eq!(
            reason(&mixed).as_deref(),
            Some("bounce: message/delivery-status part")
        );
    }

    #[test]
    fn forwarded_bounce_is_not_a_bounce() {
        let forwarded = format!(
            "From: Anna <anna@customer.example>\r\nSubject: Fwd: Notice\r\n\
             Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
             --outer\r\nContent-Type: text/plain\r\n\r\nSee below, why?\r\n\
             --outer\r\nContent-Type: message/rfc822\r\n\r\n{DSN}\r\n--outer--\r\n"
        );
        assert_eq!(reason(&forwarded), None);
    }

    #[test]
    fn senders() {
        assert_eq!(
            reason("From: MAILER-DAEMON@mx.example\r\n\r\nx").as_deref(),
            Some("bounce: sender MAILER-DAEMON@mx.example")
        );
        assert!(
            reason("From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\n\r\nx")
                .is_some()
        );
        assert!(reason("From: PostMaster@example.com\r\n\r\nx").is_some());
        assert!(reason("From: post_master@vtext.example.com\r\n\r\nx").is_some());
        assert_eq!(reason("From: postmaster.anna@example.com\r\n\r\nx"), None);
        assert_eq!(reason("From: anna@postmaster.example\r\n\r\nx"), None);
    }

    #[test]
    fn null_sender() {
        assert_eq!(
            plain("Return-Path: <>").as_deref(),
            Some("bounce: empty Return-Path <>")
        );
        assert!(plain("Return-Path: < >").is_some());
        assert_eq!(plain("Return-Path: <anna@customer.example>"), None);
        // Left to auto_reply_reason, which names the better reason.
        assert_eq!(
            plain("Return-Path: <>\r\nAuto-Submitted: auto-replied"),
            None
        );
    }

    #[test]
    fn failed_recipients_header() {
        assert_eq!(
            plain("X-Failed-Recipients: x@y.example").as_deref(),
            Some("bounce: X-Failed-Recipients")
        );
    }

    #[test]
    fn bounce_subjects() {
        for subject in [
            "Undelivered Mail Returned to Sender",
            "Delivery Status Notification (Failure)",
            "Mail delivery failed: returning message to sender",
            "failure notice",
            "Returned mail: see transcript for details",
            "Undeliverable: [#123] Printer",
            "DELIVERY FAILURE: User x not listed",
            "Undeliverable mail, MTA-BLOCKED",
            "Undeliverable Message",
            "Delivery failure",
            "Unzustellbar: Ihre Anfrage",
            "Niedostarczalne: [#123] Drukarka",
            "complaint about message from 192.0.2.1",
        ] {
            assert!(plain(&format!("Subject: {subject}")).is_some(), "{subject}");
        }
        for subject in [
            "Re: Undeliverable: [#123] Printer",
            "Fwd: failure notice",
            "Delivery of the printer [#123]",
            "Delivery failure of order 123 [#123]",
            "Undeliverable parcel [#123]",
            "Returned goods",
        ] {
            assert_eq!(plain(&format!("Subject: {subject}")), None, "{subject}");
        }
    }

    #[test]
    fn amazon_sns_notification() {
        assert_eq!(
            plain("x-amz-sns-message-id: ad6bdf42").as_deref(),
            Some("automatic: Amazon SNS notification")
        );
    }

    #[test]
    fn empty_message_is_nothing() {
        let empty = Message::default();
        assert_eq!(bounce_reason(&empty), None);
        assert_eq!(auto_reply::auto_reply_reason(&empty), None);
    }

    #[test]
    fn ordinary_mail() {
        assert_eq!(
            plain("Subject: [#123] Hello\r\nReturn-Path: <anna@customer.example>"),
            None
        );
        assert_eq!(reason(""), None);
    }
}
