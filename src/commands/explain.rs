//! `explain`: the pure core with a printer on top.

use crate::mail::date::SentSource;
use crate::mail::decide::{Action, Decision, SkipKind};
use crate::mail::forward::Forwarded;
use crate::thulium::new_ticket::NewTicketRequest;
use serde_json::json;

/// The one JSON object of `explain --json`.
pub fn to_json(d: &Decision) -> serde_json::Value {
    let (action, ticket, matched_by, disposition, reason, request) = match &d.action {
        Action::Post {
            ticket,
            matched_by,
            request,
        } => (
            "post",
            Some(*ticket),
            Some(matched_by.as_str()),
            "posted",
            None,
            serde_json::to_value(request).ok(),
        ),
        Action::NewTicket {
            request,
            attachments,
        } => (
            "new_ticket",
            None,
            None,
            "posted",
            None,
            serde_json::to_value(NewTicketRequest::from(request.clone()))
                .ok()
                .map(|mut r| {
                    r["attachments"] = attachments
                        .iter()
                        .map(|a| json!({"name": a.name, "size": a.size}))
                        .collect();
                    r
                }),
        ),
        Action::Skip { kind, reason } => (
            "skip",
            None,
            None,
            skip_name(*kind),
            Some(reason.as_str()),
            None,
        ),
    };
    let (sent_from, date_note) = sent_from(&d.sent_source);
    json!({
        "action": action,
        "ticket": ticket,
        "matched_by": matched_by,
        "disposition": disposition,
        "reason": reason,
        "request": request,
        "message_id": d.message_id,
        "from": d.from,
        "subject": d.subject,
        "sent": d.sent.map(|t| t.to_rfc3339()),
        "sent_from": sent_from,
        "date_note": date_note,
        "authentication": {
            "verdict": d.authentication.name(),
            "detail": d.authentication.detail(),
        },
        "references": d.references,
        "content_sha256": d.id.content,
        "forward": d.forward.as_deref().map(forward_json),
    })
}

/// The forwarded mail an agent's forward carries, and the note that is not posted.
fn forward_json(f: &Forwarded) -> serde_json::Value {
    json!({
        "shape": f.shape.to_string(),
        "depth": f.depth,
        "sender": f.sender,
        "from": f.from,
        "date_written": f.date_text,
        "date": f.date.map(|t| t.to_rfc3339()),
        "subject": f.subject,
        "message_id": f.message_id,
        "note_not_posted": f.note,
    })
}

/// `date_header`, `internal_date` or `unknown`, and why the Date header was not used.
fn sent_from(source: &SentSource) -> (&'static str, Option<&str>) {
    match source {
        SentSource::DateHeader => ("date_header", None),
        SentSource::InternalDate(why) => ("internal_date", Some(why.as_str())),
        SentSource::Forward(why) => ("forward", Some(why.as_str())),
        SentSource::Unknown => ("unknown", None),
    }
}

/// A short human summary, then the exact body.
pub fn to_text(d: &Decision) -> String {
    let mut out = String::new();
    line(
        &mut out,
        "message-id:",
        d.message_id.as_deref().unwrap_or("(none)"),
    );
    line(&mut out, "from:", d.from.as_deref().unwrap_or("(none)"));
    line(&mut out, "subject:", &d.subject);
    if let Some(f) = &d.forward {
        forward_text(&mut out, f);
    }
    let sent = d
        .sent
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| "(unknown)".into());
    match &d.sent_source {
        SentSource::InternalDate(why) => {
            line(&mut out, "sent:", &format!("{sent} (INTERNALDATE)"));
            line(
                &mut out,
                "date note:",
                &format!("Date header not used: {why}"),
            );
        }
        SentSource::Forward(why) => {
            line(&mut out, "sent:", &format!("{sent} (the forward's)"));
            line(&mut out, "date note:", why);
        }
        _ => line(&mut out, "sent:", &sent),
    }
    let auth = &d.authentication;
    match auth.detail() {
        "" => line(&mut out, "auth:", auth.name()),
        detail => line(&mut out, "auth:", &format!("{}: {detail}", auth.name())),
    }
    action_text(&mut out, &d.action);
    out
}

/// One `key value` line of the summary.
fn line(out: &mut String, k: &str, v: &str) {
    out.push_str(&format!("{k:<11} {v}\n"));
}

/// The forwarded mail an agent's forward carries, indented under `forwards:`.
fn forward_text(out: &mut String, f: &Forwarded) {
    let levels = match f.depth {
        1 => String::new(),
        n => format!(", {n} forwards deep"),
    };
    line(out, "forwards:", &format!("{}{levels}", f.shape));
    line(out, "  sender:", &f.sender);
    let date = f.date.map(|t| format!(" ({})", t.to_rfc3339()));
    line(
        out,
        "  date:",
        &format!("{}{}", f.date_text, date.unwrap_or_default()),
    );
    line(out, "  subject:", &f.subject);
    if let Some(id) = &f.message_id {
        line(out, "  msg-id:", id);
    }
    let note = match f.note.as_str() {
        "" => "(none)".to_string(),
        note => format!("{:?} (the agent's; not posted)", excerpt(note)),
    };
    line(out, "  note:", &note);
}

/// What would be done, and for a post the exact body.
fn action_text(out: &mut String, action: &Action) {
    match action {
        Action::Post {
            ticket,
            matched_by,
            request,
        } => {
            line(
                out,
                "action:",
                &format!("post to ticket {ticket} (found by {matched_by})"),
            );
            line(out, "date:", &request.date);
            line(
                out,
                "body_type:",
                if request.body_type == crate::mail::body::BodyType::Html {
                    "HTML"
                } else {
                    "PLAIN"
                },
            );
            body_text(out, &request.body);
        }
        Action::NewTicket {
            request,
            attachments,
        } => {
            line(
                out,
                "action:",
                &format!("new ticket in {} from {}", request.to, request.from),
            );
            line(out, "subject:", &request.subject);
            if !request.cc.is_empty() {
                line(out, "cc:", &request.cc.join(", "));
            }
            for a in attachments {
                line(
                    out,
                    "attach:",
                    &format!("{} ({})", a.name, crate::mail::body::human_size(a.size)),
                );
            }
            line(out, "body_type:", "HTML");
            body_text(out, &request.body);
        }
        Action::Skip { kind, reason } => {
            line(out, "action:", &format!("skip -> on_{}", skip_name(*kind)));
            line(out, "reason:", reason);
        }
    }
}

/// The body's size, then the body itself between `----` lines.
fn body_text(out: &mut String, body: &str) {
    line(out, "body:", &format!("{} bytes", body.len()));
    out.push_str("----\n");
    out.push_str(body);
    if !body.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("----\n");
}

/// The first 200 characters of a note, on one line.
fn excerpt(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}

fn skip_name(kind: SkipKind) -> &'static str {
    match kind {
        SkipKind::Unmatched => "unmatched",
        SkipKind::Ignored => "ignored",
        SkipKind::Failed => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_rules;
    use crate::mail::decide::{NoReferences, decide};
    use chrono::DateTime;

    const MAIL: &[u8] =
        b"Authentication-Results: mx.example.com; dmarc=pass header.from=customer.example\r\n\
From: Anna <anna@customer.example>\r\nSubject: Re: [#7] x\r\n\
Date: Mon, 01 Jan 2035 10:00:00 +0100\r\nIn-Reply-To: <t@helpdesk.example>\r\n\r\nThanks\r\n";

    fn explained() -> Decision {
        let mut rules = default_rules().expect("default rules");
        rules.trusted_authserv_id = vec!["mx.example.com".into()];
        let received = DateTime::parse_from_rfc3339("2025-03-04T10:00:00+01:00").ok();
        decide(MAIL, &rules, &NoReferences, received)
    }

    #[test]
    fn json_shows_the_verdict_the_date_source_and_the_thread() {
        let v = to_json(&explained());
        assert_eq!(v["action"], "post");
        assert_eq!(v["authentication"]["verdict"], "pass");
        assert_eq!(
            v["authentication"]["detail"],
            "dmarc=pass header.from=customer.example"
        );
        assert_eq!(v["sent_from"], "internal_date");
        assert!(
            v["date_note"]
                .as_str()
                .is_some_and(|n| n.contains("after the server received")),
            "{v}"
        );
        assert_eq!(v["sent"], "2025-03-04T10:00:00+01:00");
        assert_eq!(v["references"], json!(["<t@helpdesk.example>"]));
    }

    /// Jan, an authenticated agent, forwards Anna's mail inline into ticket 12.
    fn forward() -> Decision {
        let raw = b"Authentication-Results: mx.example.com; dmarc=pass header.from=acme.pl\r\n\
From: Jan <jan@acme.pl>\r\nSubject: Fwd: [#12] Printer\r\nDate: Wed, 05 Mar 2025 09:00:00 +0100\r\n\r\n\
Anna called me about this.\r\n\r\n---------- Forwarded message ---------\r\n\
From: Anna Nowak <anna@customer.example>\r\nDate: Tue, Mar 4, 2025 at 10:15 AM\r\n\
Subject: Printer\r\nTo: <jan@acme.pl>\r\n\r\nThe printer is on fire.\r\n";
        let mut rules = default_rules().expect("default rules");
        rules.trusted_authserv_id = vec!["mx.example.com".into()];
        rules.agents = crate::mail::classify::PatternList::new("agents", &["*@acme.pl".into()])
            .expect("a glob");
        decide(raw, &rules, &NoReferences, None)
    }

    #[test]
    fn a_forward_shows_the_forwarded_mail_and_the_note_left_out() {
        let text = to_text(&forward());
        for expected in [
            "forwards:   inline, below \"---------- Forwarded message ---------\"\n",
            "  sender:   Anna Nowak <anna@customer.example>\n",
            "  date:     Tue, Mar 4, 2025 at 10:15 AM (2025-03-04T10:15:00+01:00)\n",
            "  subject:  Printer\n",
            "  note:     \"Anna called me about this.\" (the agent's; not posted)\n",
            "action:     post to ticket 12 (found by subject_patterns[0], an agent's forward)\n",
            "date:       2025-03-04 10:15\n",
            "----\nThe printer is on fire.\n----\n",
        ] {
            assert!(text.contains(expected), "{expected:?} in:\n{text}");
        }
        let v = to_json(&forward());
        assert_eq!(v["forward"]["from"], "anna@customer.example");
        assert_eq!(
            v["forward"]["note_not_posted"],
            "Anna called me about this."
        );
        assert_eq!(v["request"]["body"], "The printer is on fire.");
        assert_eq!(to_json(&explained())["forward"], serde_json::Value::Null);
    }

    #[test]
    fn text_shows_them_too() {
        let text = to_text(&explained());
        assert!(
            text.contains("auth:       pass: dmarc=pass header.from=customer.example"),
            "{text}"
        );
        assert!(
            text.contains("date note:  Date header not used: the Date header"),
            "{text}"
        );
        let plain = decide(
            MAIL,
            &default_rules().expect("default rules"),
            &NoReferences,
            None,
        );
        let text = to_text(&plain);
        assert!(text.contains("auth:       not_checked\n"), "{text}");
        assert!(!text.contains("date note"), "{text}");
        assert_eq!(to_json(&plain)["sent_from"], "date_header");
    }
}
