//! Sorting an HTTP answer into success or an [`ApiError`] class: one pure function.
//!
//! SPEC "The Thulium API": 400/404/409/422 reject the mail, 401/403 are a credentials
//! problem, 408/429/5xx are transient. Unknown 4xx are taken as rejections, like vector's
//! `retries.rs`: retrying a request the server calls wrong only repeats the answer.

use super::ApiError;
use serde::Deserialize;
use std::time::{Duration, SystemTime};

/// Longest excerpt of a non-JSON error body put into a message.
const EXCERPT_CHARS: usize = 200;

/// Classifies one answer. `retry_after` is the raw header; `now` resolves its HTTP-date form.
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: SystemTime,
) -> Result<(), ApiError> {
    let message = || error_message(status, body);
    match status {
        200..=299 => Ok(()),
        401 | 403 => Err(ApiError::Credentials {
            status,
            message: message(),
        }),
        // The server answered without acting on the request: not sent.
        408 | 429 => Err(ApiError::Transient {
            reason: format!("HTTP {status} {}: {}", reason_phrase(status), message()),
            retry_after: retry_after.and_then(|v| parse_retry_after(v, now)),
            sent: false,
        }),
        400..=499 => Err(ApiError::Permanent {
            status,
            message: message(),
        }),
        // A 5xx may come after the server (or the backend behind a gateway) acted: unknown.
        500..=599 => Err(ApiError::Transient {
            reason: format!("HTTP {status} {}: {}", reason_phrase(status), message()),
            retry_after: retry_after.and_then(|v| parse_retry_after(v, now)),
            sent: true,
        }),
        // Redirects are not followed (a POST must not turn into a GET): a wrong `thulium.url`.
        300..=399 => Err(ApiError::Transient {
            reason: format!("HTTP {status}: unexpected redirect; check thulium.url"),
            retry_after: None,
            sent: false,
        }),
        _ => Err(ApiError::Transient {
            reason: format!("unexpected HTTP status {status}"),
            retry_after: None,
            sent: true,
        }),
    }
}

/// The longest `Retry-After` honoured: a server asking for days (or a broken header)
/// must not park replies that long, nor overflow a deadline.
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3); a past date is
/// zero, anything beyond [`MAX_RETRY_AFTER`] is cut to it.
pub(super) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() {
        // Digits too many for u64 are a huge wait, not a missing one.
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// `{"request_id": "...", "errors": [{"message": "...", "code": N}]}`
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct ErrorItem {
    #[serde(default)]
    message: Option<String>,
}

/// The API's own words, else a short excerpt of the body, else the status's reason phrase.
pub(crate) fn error_message(status: u16, body: &[u8]) -> String {
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
        let messages: Vec<String> = parsed
            .errors
            .into_iter()
            .filter_map(|e| e.message)
            .chain(parsed.message)
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        if !messages.is_empty() {
            return messages.join("; ");
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return reason_phrase(status).to_string();
    }
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn reason_phrase(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("(no reason phrase)")
}

#[cfg(test)]
mod tests {
    use super::*;

    const API_404: &str =
        r#"{"request_id":"r-1","errors":[{"message":"Ticket not found","code":404}]}"#;

    #[derive(Debug, PartialEq)]
    enum Class {
        Ok,
        Transient {
            retry_after: Option<u64>,
            sent: bool,
        },
        Permanent,
        Credentials,
    }

    fn class(r: Result<(), ApiError>) -> Class {
        match r {
            Ok(()) => Class::Ok,
            Err(ApiError::Transient {
                retry_after, sent, ..
            }) => Class::Transient {
                retry_after: retry_after.map(|d| d.as_secs()),
                sent,
            },
            Err(ApiError::Permanent { .. }) => Class::Permanent,
            Err(ApiError::Credentials { .. }) => Class::Credentials,
        }
    }

    #[test]
    fn every_status_lands_in_its_class() {
        // 1994-11-06 08:49:37 GMT, and a Retry-After date 120 s later.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let date = "Sun, 06 Nov 1994 08:51:37 GMT";
        let t = |retry_after, sent| Class::Transient { retry_after, sent };
        let table: &[(u16, Option<&str>, Class)] = &[
            (200, None, Class::Ok),
            (201, None, Class::Ok),
            (204, None, Class::Ok),
            (299, None, Class::Ok),
            (400, None, Class::Permanent),
            (401, None, Class::Credentials),
            (403, None, Class::Credentials),
            (404, None, Class::Permanent),
            (405, None, Class::Permanent),
            (408, None, t(None, false)),
            (409, None, Class::Permanent),
            (410, None, Class::Permanent),
            (413, None, Class::Permanent),
            (422, None, Class::Permanent),
            (429, None, t(None, false)),
            (429, Some("3"), t(Some(3), false)),
            (429, Some(date), t(Some(120), false)),
            (
                429,
                Some("Sun, 06 Nov 1994 08:00:00 GMT"),
                t(Some(0), false),
            ),
            (429, Some("soon"), t(None, false)),
            // Clamped to an hour: a huge number, one beyond u64, a date years ahead.
            (429, Some("18446744073709551615"), t(Some(3600), false)),
            (429, Some("99999999999999999999999"), t(Some(3600), false)),
            (
                503,
                Some("Fri, 06 Nov 2099 08:49:37 GMT"),
                t(Some(3600), true),
            ),
            (451, None, Class::Permanent),
            (500, None, t(None, true)),
            (502, None, t(None, true)),
            (503, None, t(None, true)),
            (503, Some("120"), t(Some(120), true)),
            (503, Some(date), t(Some(120), true)),
            (504, None, t(None, true)),
            (599, None, t(None, true)),
            (301, None, t(None, false)),
            (302, Some("5"), t(None, false)),
        ];
        for (status, retry_after, want) in table {
            let got = class(classify(*status, *retry_after, API_404.as_bytes(), now));
            assert_eq!(&got, want, "HTTP {status} Retry-After {retry_after:?}");
        }
    }

    #[test]
    fn permanent_and_credentials_carry_the_api_message() {
        let now = SystemTime::now();
        assert_eq!(
            classify(404, None, API_404.as_bytes(), now),
            Err(ApiError::Permanent {
                status: 404,
                message: "Ticket not found".into()
            })
        );
        let two = r#"{"request_id":"x","errors":[{"message":"body is required","code":1},{"message":"bad date","code":2}]}"#;
        assert_eq!(
            classify(422, None, two.as_bytes(), now),
            Err(ApiError::Permanent {
                status: 422,
                message: "body is required; bad date".into()
            })
        );
        assert_eq!(
            classify(401, None, b"", now),
            Err(ApiError::Credentials {
                status: 401,
                message: "Unauthorized".into()
            })
        );
    }

    #[test]
    fn a_non_json_body_gives_a_short_one_line_excerpt() {
        assert_eq!(
            error_message(400, b"<html>\n  <b>Bad</b>\n</html>"),
            "<html> <b>Bad</b> </html>"
        );
        let long = "x".repeat(5000);
        let msg = error_message(400, long.as_bytes());
        assert_eq!(msg.chars().count(), EXCERPT_CHARS + 1);
        assert!(msg.ends_with('…'));
        assert_eq!(error_message(409, b"  "), "Conflict");
        assert_eq!(error_message(404, br#"{"errors":[]}"#), r#"{"errors":[]}"#);
        assert_eq!(error_message(400, "zażółć".as_bytes()), "zażółć");
    }

    #[test]
    fn transient_reasons_name_the_status_and_message() {
        let e = classify(
            503,
            Some("7"),
            br#"{"errors":[{"message":"maintenance"}]}"#,
            SystemTime::now(),
        );
        assert_eq!(
            e.map_err(|e| e.to_string()),
            Err("HTTP 503 Service Unavailable: maintenance (retry after 7s)".to_string())
        );
    }
}
