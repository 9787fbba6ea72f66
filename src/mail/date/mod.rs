//! The date a reply was sent, as Thulium wants it.
//!
//! Mail clients write remarkably broken `Date` headers. We read the raw header text
//! ourselves ([`parse_date`]) instead of taking mail-parser's value: that reader maps
//! zone names it does not know to `+0000` (`CET`, `JST`), misreads a comment inside
//! the time, `029` as the 2nd, and takes a later `Received` date when a header runs
//! into the next line. What we cannot read is left to the caller's fallback, the
//! IMAP INTERNALDATE, which is closer to the truth than any guess.

mod lenient;
mod plausible;
mod zones;

use chrono::{DateTime, Datelike, FixedOffset};
use mail_parser::Message;

pub use lenient::{parse_date, parse_wall_clock};
pub use plausible::SentSource;
pub(crate) use plausible::choose;

/// The first year we accept: older dates are clock errors (or RFC examples).
pub const MIN_YEAR: i32 = 1970;
/// The last year we accept: later dates are clock errors.
pub const MAX_YEAR: i32 = 2100;

/// The Date header, tolerant of the broken forms mail clients send; None when unusable.
///
/// Unusable means: absent, unreadable, or impossible (month 13, Feb 30, hour 25,
/// a year before 1970 or after 2100). The caller then falls back to INTERNALDATE.
pub fn sent_at(msg: &Message<'_>) -> Option<DateTime<FixedOffset>> {
    // mail-parser's accessors index the root part; a hand-made empty Message has none.
    if msg.parts.is_empty() {
        return None;
    }
    date_fields(msg).find_map(|text| parse_date(&text))
}

/// The raw text of every top-level `Date` field, lossy UTF-8 (a stray 8-bit byte in
/// a comment such as `(Jerusalem Daylight Time)` must not cost us the date).
fn date_fields<'a>(msg: &'a Message<'_>) -> impl Iterator<Item = String> + 'a {
    msg.headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case("Date"))
        .filter_map(|h| {
            let bytes = msg
                .raw_message
                .get(h.offset_start() as usize..h.offset_end() as usize)?;
            Some(String::from_utf8_lossy(bytes).into_owned())
        })
}

/// The instant, if its year (in UTC) is one we believe.
pub(crate) fn in_range(at: DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
    let year = at.naive_utc().year();
    (MIN_YEAR..=MAX_YEAR).contains(&year).then_some(at)
}

/// `YYYY-MM-DD HH:MM` in the Thulium account's zone (the API's `date` has no zone).
///
/// The input is an instant, so the conversion is unambiguous even in the repeated
/// hour of a DST change; the output then repeats a wall-clock time, as the account
/// itself would show it.
pub fn thulium_date(at: DateTime<FixedOffset>, tz: chrono_tz::Tz) -> String {
    at.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Warsaw;
    use mail_parser::MessageParser;

    fn utc(s: &str) -> DateTime<FixedOffset> {
        match DateTime::parse_from_rfc3339(s) {
            Ok(d) => d,
            Err(e) => panic!("bad test instant {s}: {e}"),
        }
    }

    fn sent(raw: &str) -> Option<String> {
        let msg = MessageParser::default().parse(raw.as_bytes())?;
        sent_at(&msg).map(|d| d.to_rfc3339())
    }

    #[test]
    fn warsaw_spring_forward() {
        // 2025-03-30: 02:00 CET becomes 03:00 CEST; 02:xx never appears on a Warsaw clock.
        assert_eq!(
            thulium_date(utc("2025-03-30T00:59:00Z"), Warsaw),
            "2025-03-30 01:59"
        );
        assert_eq!(
            thulium_date(utc("2025-03-30T01:00:00Z"), Warsaw),
            "2025-03-30 03:00"
        );
        assert_eq!(
            thulium_date(utc("2025-03-30T01:30:00+00:00"), Warsaw),
            "2025-03-30 03:30"
        );
    }

    #[test]
    fn warsaw_fall_back_repeats_the_hour() {
        // 2025-10-26: 03:00 CEST becomes 02:00 CET; both instants read 02:30 locally.
        assert_eq!(
            thulium_date(utc("2025-10-26T00:30:00Z"), Warsaw),
            "2025-10-26 02:30"
        );
        assert_eq!(
            thulium_date(utc("2025-10-26T01:30:00Z"), Warsaw),
            "2025-10-26 02:30"
        );
        assert_eq!(
            thulium_date(utc("2025-10-26T00:59:00Z"), Warsaw),
            "2025-10-26 02:59"
        );
        assert_eq!(
            thulium_date(utc("2025-10-26T01:00:00Z"), Warsaw),
            "2025-10-26 02:00"
        );
        assert_eq!(
            thulium_date(utc("2025-10-26T02:00:00Z"), Warsaw),
            "2025-10-26 03:00"
        );
    }

    #[test]
    fn offsets_of_the_sender_do_not_matter() {
        let a = utc("2025-06-01T12:00:00+02:00");
        let b = utc("2025-06-01T06:00:00-04:00");
        assert_eq!(thulium_date(a, Warsaw), "2025-06-01 12:00");
        assert_eq!(thulium_date(b, Warsaw), "2025-06-01 12:00");
        assert_eq!(thulium_date(a, chrono_tz::UTC), "2025-06-01 10:00");
        assert_eq!(
            thulium_date(a, chrono_tz::America::New_York),
            "2025-06-01 06:00"
        );
    }

    #[test]
    fn sent_at_reads_the_header() {
        assert_eq!(
            sent("Date: Tue, 1 Jul 2025 10:00:00 +0200\r\n\r\nx").as_deref(),
            Some("2025-07-01T10:00:00+02:00")
        );
        assert_eq!(
            sent("Date: Thu, 9 Apr 2006 23:34:45 JST\r\n\r\nx").as_deref(),
            Some("2006-04-09T23:34:45+09:00")
        );
        assert_eq!(
            sent("Date: Sat, 20 Sep 2008 20:04:30 +0300 (\u{fa}\u{f2})\r\n\r\nx").as_deref(),
            Some("2008-09-20T20:04:30+03:00")
        );
        assert_eq!(sent("Subject: no date\r\n\r\nx"), None);
        assert_eq!(sent("Date: Whenever\r\n\r\nx"), None);
        assert_eq!(sent("Date: Thu, 13 Feb 1969 23:32 -0330\r\n\r\nx"), None);
    }

    #[test]
    fn empty_message_has_no_date() {
        assert_eq!(sent_at(&Message::default()), None);
    }

    #[test]
    fn sent_at_reads_8bit_header_bytes() {
        let mut raw = b"Date: Sat, 20 Sep 2008 20:04:30 +0300 (".to_vec();
        raw.extend_from_slice(&[0xf9, 0xf2, 0xe5]);
        raw.extend_from_slice(b")\r\n\r\nx");
        let sent = MessageParser::default()
            .parse(&raw[..])
            .and_then(|m| sent_at(&m))
            .map(|d| d.to_rfc3339());
        assert_eq!(sent.as_deref(), Some("2008-09-20T20:04:30+03:00"));
    }
}
