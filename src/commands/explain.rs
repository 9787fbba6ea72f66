//! `explain`: the pure core with a printer on top.

use crate::mail::decide::{Action, Decision, SkipKind};
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
        Action::Skip { kind, reason } => (
            "skip",
            None,
            None,
            skip_name(*kind),
            Some(reason.as_str()),
            None,
        ),
    };
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
        "content_sha256": d.id.content,
    })
}

/// A short human summary, then the exact body.
pub fn to_text(d: &Decision) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: &str| out.push_str(&format!("{k:<11} {v}\n"));
    line("message-id:", d.message_id.as_deref().unwrap_or("(none)"));
    line("from:", d.from.as_deref().unwrap_or("(none)"));
    line("subject:", &d.subject);
    line(
        "sent:",
        &d.sent
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "(unknown)".into()),
    );
    match &d.action {
        Action::Post {
            ticket,
            matched_by,
            request,
        } => {
            line(
                "action:",
                &format!("post to ticket {ticket} (found by {matched_by})"),
            );
            line("date:", &request.date);
            line(
                "body_type:",
                if request.body_type == crate::mail::body::BodyType::Html {
                    "HTML"
                } else {
                    "PLAIN"
                },
            );
            line("body:", &format!("{} bytes", request.body.len()));
            out.push_str("----\n");
            out.push_str(&request.body);
            if !request.body.ends_with('\n') {
                out.push('\n');
            }
            out.push_str("----\n");
        }
        Action::Skip { kind, reason } => {
            line("action:", &format!("skip -> on_{}", skip_name(*kind)));
            line("reason:", reason);
        }
    }
    out
}

fn skip_name(kind: SkipKind) -> &'static str {
    match kind {
        SkipKind::Unmatched => "unmatched",
        SkipKind::Ignored => "ignored",
        SkipKind::Failed => "failed",
    }
}
