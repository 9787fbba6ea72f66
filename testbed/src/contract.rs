//! The documented Thulium API contract (request validation, the error shape,
//! local `YYYY-MM-DD HH:MM` dates) and switches for what it leaves open.

use std::borrow::Cow;
use std::str::FromStr;

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::render;

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
pub(crate) fn valid_date(s: &str) -> bool {
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

/// The documented error shape. `code` is Thulium's own error number (the page's
/// example shows 111111) whose values are not documented: the HTTP status stands in,
/// and the bridge reads only `message`.
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

pub(crate) fn invalid(message: &str) -> Rejection {
    (StatusCode::UNPROCESSABLE_ENTITY, message.to_string())
}

/// The account's time zone: the API's dates are local time without a zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountTimezone {
    /// An IANA zone, daylight saving time included.
    Named(Tz),
    /// A fixed offset east of UTC, in minutes.
    FixedMinutes(i32),
}

impl Default for AccountTimezone {
    /// Europe/Warsaw, as the bridge's test configurations say.
    fn default() -> Self {
        AccountTimezone::Named(chrono_tz::Europe::Warsaw)
    }
}

impl FromStr for AccountTimezone {
    type Err = String;

    /// An IANA name (`Europe/Warsaw`) or an offset (`+02:00`, `-0530`).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some((sign, rest)) = s
            .strip_prefix('+')
            .map(|r| (1, r))
            .or_else(|| s.strip_prefix('-').map(|r| (-1, r)))
        {
            let digits = rest.replace(':', "");
            let parsed = (digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| {
                    Some((
                        digits.get(..2)?.parse::<i32>().ok()?,
                        digits.get(2..)?.parse::<i32>().ok()?,
                    ))
                })
                .flatten();
            return match parsed {
                Some((h, m)) if h < 24 && m < 60 => {
                    Ok(AccountTimezone::FixedMinutes(sign * (h * 60 + m)))
                }
                _ => Err(format!("bad UTC offset {s:?}, want +HH:MM")),
            };
        }
        s.parse::<Tz>()
            .map(AccountTimezone::Named)
            .map_err(|e| format!("unknown time zone {s:?}: {e}"))
    }
}

impl AccountTimezone {
    /// `YYYY-MM-DD HH:MM` in this zone, the API's form for dates.
    pub fn format_minutes(&self, unix_ms: u64) -> String {
        let utc = i64::try_from(unix_ms)
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .unwrap_or_default();
        match self {
            AccountTimezone::Named(tz) => utc.with_timezone(tz).format(MINUTES).to_string(),
            AccountTimezone::FixedMinutes(minutes) => match FixedOffset::east_opt(minutes * 60) {
                Some(offset) => utc.with_timezone(&offset).format(MINUTES).to_string(),
                None => utc.format(MINUTES).to_string(),
            },
        }
    }
}

impl AccountTimezone {
    /// Unix milliseconds of a `YYYY-MM-DD HH:MM` read in this zone (the earlier of two
    /// when DST ends).
    pub fn parse_minutes(&self, local: &str) -> Option<u64> {
        let naive = chrono::NaiveDateTime::parse_from_str(local.get(..16)?, MINUTES).ok()?;
        let utc = match self {
            AccountTimezone::Named(tz) => tz
                .from_local_datetime(&naive)
                .earliest()?
                .with_timezone(&Utc),
            AccountTimezone::FixedMinutes(m) => FixedOffset::east_opt(m * 60)?
                .from_local_datetime(&naive)
                .earliest()?
                .with_timezone(&Utc),
        };
        u64::try_from(utc.timestamp_millis()).ok()
    }
}

const MINUTES: &str = "%Y-%m-%d %H:%M";

/// What a stored customer response's `created_at` is; undocumented.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CreatedAt {
    /// The `date` the client sent, else the storage time.
    #[default]
    DateSent,
    /// The storage time, whatever was sent.
    StorageTime,
}

impl CreatedAt {
    /// The name `TESTBED_CREATED_AT` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            CreatedAt::DateSent => "date_sent",
            CreatedAt::StorageTime => "storage_time",
        }
    }
}

impl FromStr for CreatedAt {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "date_sent" => Ok(CreatedAt::DateSent),
            "storage_time" => Ok(CreatedAt::StorageTime),
            other => Err(format!("{other:?} is not date_sent or storage_time")),
        }
    }
}

/// One reading of all the documentation leaves open about a stored customer response,
/// so a suite can run under each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    pub created_at: CreatedAt,
    pub body_storage: BodyStorage,
    /// The zone of the API's clock; the account's when `None`.
    pub clock_zone: Option<AccountTimezone>,
}

impl Reading {
    /// The readings every exactly-once suite runs under: both meanings of `created_at`,
    /// both ways of storing a body, and clocks in other zones than the account's
    /// (Europe/Warsaw): UTC, +05:30 and America/New_York (DST on other dates).
    pub fn every() -> [(&'static str, Reading); 7] {
        use BodyStorage::{AsSent, RenderedHtml};
        use CreatedAt::{DateSent, StorageTime};
        let at = |created_at, body_storage, zone: Option<AccountTimezone>| Reading {
            created_at,
            body_storage,
            clock_zone: zone,
        };
        let new_york = AccountTimezone::Named(chrono_tz::America::New_York);
        let utc = AccountTimezone::Named(chrono_tz::UTC);
        let kolkata = AccountTimezone::FixedMinutes(330);
        [
            ("date_sent", at(DateSent, AsSent, None)),
            ("date_sent_re_rendered", at(DateSent, RenderedHtml, None)),
            (
                "date_sent_in_new_york",
                at(DateSent, AsSent, Some(new_york)),
            ),
            ("storage_time", at(StorageTime, AsSent, None)),
            (
                "storage_time_re_rendered",
                at(StorageTime, RenderedHtml, None),
            ),
            (
                "storage_time_in_utc",
                at(StorageTime, RenderedHtml, Some(utc)),
            ),
            (
                "storage_time_at_plus_05_30",
                at(StorageTime, AsSent, Some(kolkata)),
            ),
        ]
    }

    /// The reading called `name` in [`Reading::every`].
    pub fn named(name: &str) -> Option<Reading> {
        Reading::every()
            .into_iter()
            .find_map(|(n, r)| (n == name).then_some(r))
    }
}

/// How a posted body is stored; undocumented.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BodyStorage {
    /// Byte for byte as sent.
    #[default]
    AsSent,
    /// Re-rendered as HTML: PLAIN turned into paragraphs, HTML rewritten.
    RenderedHtml,
}

impl BodyStorage {
    /// The name `TESTBED_BODY_STORAGE` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyStorage::AsSent => "as_sent",
            BodyStorage::RenderedHtml => "rendered_html",
        }
    }

    /// The body as the fake stores it (and `GET tickets/{id}` shows it), so
    /// other tests can produce the same bytes.
    pub fn store<'a>(self, body: &'a str, body_type: &str) -> Cow<'a, str> {
        match self {
            BodyStorage::AsSent => Cow::Borrowed(body),
            BodyStorage::RenderedHtml if body_type == "PLAIN" => {
                Cow::Owned(render::plain_to_html(body))
            }
            BodyStorage::RenderedHtml => Cow::Owned(render::rerender_html(body)),
        }
    }
}

impl FromStr for BodyStorage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "as_sent" => Ok(BodyStorage::AsSent),
            "rendered_html" => Ok(BodyStorage::RenderedHtml),
            other => Err(format!("{other:?} is not as_sent or rendered_html")),
        }
    }
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
    }

    #[test]
    fn warsaw_local_time_follows_dst() {
        let warsaw = AccountTimezone::default();
        // Winter (CET, +1), summer (CEST, +2), and both sides of the spring jump.
        assert_eq!(warsaw.format_minutes(1_705_320_000_000), "2024-01-15 13:00");
        assert_eq!(warsaw.format_minutes(1_719_835_200_000), "2024-07-01 14:00");
        assert_eq!(warsaw.format_minutes(1_711_846_740_000), "2024-03-31 01:59");
        assert_eq!(warsaw.format_minutes(1_711_846_800_000), "2024-03-31 03:00");
        // Autumn: 02:30 local happens twice.
        assert_eq!(warsaw.format_minutes(1_729_989_000_000), "2024-10-27 02:30");
        assert_eq!(warsaw.format_minutes(1_729_992_600_000), "2024-10-27 02:30");
    }

    #[test]
    fn zones_parse() {
        assert_eq!("Europe/Warsaw".parse(), Ok(AccountTimezone::default()));
        assert_eq!("+02:00".parse(), Ok(AccountTimezone::FixedMinutes(120)));
        assert_eq!("-0530".parse(), Ok(AccountTimezone::FixedMinutes(-330)));
        assert!("Mars/Olympus".parse::<AccountTimezone>().is_err());
        assert!("+25:00".parse::<AccountTimezone>().is_err());
        let utc_plus_2 = AccountTimezone::FixedMinutes(120);
        assert_eq!(utc_plus_2.format_minutes(0), "1970-01-01 02:00");
        assert_eq!(
            AccountTimezone::FixedMinutes(0).format_minutes(1_709_251_199_000),
            "2024-02-29 23:59"
        );
    }

    #[test]
    fn switches_parse() {
        for c in [CreatedAt::DateSent, CreatedAt::StorageTime] {
            assert_eq!(c.as_str().parse(), Ok(c));
        }
        for b in [BodyStorage::AsSent, BodyStorage::RenderedHtml] {
            assert_eq!(b.as_str().parse(), Ok(b));
        }
        assert!("date".parse::<CreatedAt>().is_err());
        assert!("html".parse::<BodyStorage>().is_err());
        assert_eq!(BodyStorage::AsSent.store("a\nb", "PLAIN"), "a\nb");
        assert_eq!(
            BodyStorage::RenderedHtml.store("a\nb", "PLAIN"),
            "<div class=\"thulium-message\"><p>a<br />b</p></div>"
        );
    }
}
