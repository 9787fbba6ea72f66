//! Did the helpdesk already store this reply? Used whenever a POST's outcome is unknown.
//!
//! The rule: a ticket message of type MAIL with the same date (to the minute) and the
//! same body once both are reduced to text with whitespace collapsed, since the helpdesk
//! may re-render the HTML we sent.

use crate::decide::CustomerResponse;

/// True when `message` (from `GET tickets/{id}`) is the reply we tried to post.
pub fn is_same_reply(
    msg_type: Option<&str>,
    date: Option<&str>,
    body: Option<&str>,
    sent: &CustomerResponse,
) -> bool {
    let is_mail = msg_type.is_none_or(|t| t.eq_ignore_ascii_case("MAIL"));
    let same_minute = date.is_some_and(|d| d.get(..16) == sent.date.get(..16));
    is_mail && same_minute && body.is_some_and(|b| normalize(b) == normalize(&sent.body))
}

/// Visible text of an HTML or plain body, whitespace collapsed.
pub fn normalize(body: &str) -> String {
    let mut text = String::with_capacity(body.len());
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::body::BodyType;

    fn sent(body: &str) -> CustomerResponse {
        CustomerResponse {
            body: body.into(),
            body_type: BodyType::Html,
            date: "2025-03-01 10:15".into(),
        }
    }

    #[test]
    fn re_rendered_html_is_the_same_reply() {
        let s = sent("<div>Hello&nbsp;there,<br>thanks</div>");
        assert!(is_same_reply(
            Some("MAIL"),
            Some("2025-03-01 10:15:42"),
            Some("<p>Hello there, thanks</p>"),
            &s
        ));
        assert!(!is_same_reply(
            Some("MAIL"),
            Some("2025-03-01 10:16"),
            Some("Hello there, thanks"),
            &s
        ));
        assert!(!is_same_reply(
            Some("NOTE"),
            Some("2025-03-01 10:15"),
            Some("Hello there, thanks"),
            &s
        ));
        assert!(!is_same_reply(
            Some("MAIL"),
            Some("2025-03-01 10:15"),
            Some("Hello there"),
            &s
        ));
    }
}
