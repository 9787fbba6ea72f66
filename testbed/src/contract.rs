//! The documented Thulium API contract: request validation, the error
//! shape, and the `YYYY-MM-DD HH:MM` date form.

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A valid `customer_response` body.
pub(crate) struct Payload {
    pub body: String,
    pub body_type: String,
    pub date: Option<String>,
}

/// Status and message of a rejected request.
pub(crate) type Rejection = (StatusCode, String);

/// Validation as a Laravel-style API would do it: `body` required and not
/// empty, `body_type` in HTML|PLAIN, `date` in `Y-m-d H:i`.
pub(crate) fn validate(raw: &Bytes) -> Result<Payload, Rejection> {
    let value: Value = serde_json::from_slice(raw)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("Malformed JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(invalid("The request body must be a JSON object."));
    };
    let body = match map.get("body") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(invalid("The body field is required."));
        }
        Some(_) => return Err(invalid("The body must be a string.")),
    };
    let body_type = match map.get("body_type") {
        None | Some(Value::Null) => "HTML".to_string(),
        Some(Value::String(s)) if s == "HTML" || s == "PLAIN" => s.clone(),
        Some(_) => return Err(invalid("The selected body type is invalid.")),
    };
    let date = match map.get("date") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if valid_date(s) => Some(s.clone()),
        Some(_) => {
            return Err(invalid("The date does not match the format Y-m-d H:i."));
        }
    };
    Ok(Payload {
        body,
        body_type,
        date,
    })
}

/// `YYYY-MM-DD HH:MM` with a real calendar date.
fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 16 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (Some(y), Some(m), Some(d), Some(h), Some(min)) =
        (num(0..4), num(5..7), num(8..10), num(11..13), num(14..16))
    else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d) && h < 24 && min < 60
}

pub(crate) fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The documented error shape.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "request_id": format!("{:016x}", rand::random::<u64>()),
        "errors": [{"message": message, "code": status.as_u16()}],
    });
    (status, axum::Json(body)).into_response()
}

pub(crate) fn unauthorized() -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, "Unauthorized");
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Thulium API\""),
    );
    r
}

fn invalid(message: &str) -> Rejection {
    (StatusCode::UNPROCESSABLE_ENTITY, message.to_string())
}

/// `YYYY-MM-DD HH:MM` in UTC (civil-from-days, Howard Hinnant's algorithm).
pub(crate) fn format_minutes(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert!(valid_date("2024-02-29 23:59"));
        assert!(!valid_date("2023-02-29 10:00"));
        assert!(!valid_date("2024-01-01T10:00"));
        assert!(!valid_date("2024-01-01 24:00"));
        assert!(!valid_date("2024-1-01 10:00"));
        assert_eq!(format_minutes(0), "1970-01-01 00:00");
        assert_eq!(format_minutes(1_709_251_199_000), "2024-02-29 23:59");
    }
}
