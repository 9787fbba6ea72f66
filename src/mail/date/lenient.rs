//! A forgiving reader for `Date` header text.
//!
//! Accepts RFC 5322 and its obsolete forms (section 4.3: two- and three-digit years,
//! named zones, comments anywhere) and what clients write instead: no weekday, no
//! seconds, no zone, `AM`/`PM`, `GMT+02:00`, `29-04-2017`, ISO 8601, extra blanks and
//! commas, any case, garbage after the zone. Linear in the (capped) input, never panics.

use super::{in_range, zones};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};

/// Longer header text is garbage; the cap keeps the work bounded.
const MAX_CHARS: usize = 256;

/// Reads a `Date` header value; None when it is not a possible date between 1970 and 2100.
///
/// A missing or unknown zone name counts as `-0000` (UTC, RFC 5322 section 4.3); a
/// missing time makes the date unusable (midnight would be a guess).
pub fn parse_date(text: &str) -> Option<DateTime<FixedOffset>> {
    let (local, zone) = parse_wall_clock(text)?;
    let zone = zone.or_else(|| FixedOffset::east_opt(0))?;
    in_range(zone.from_local_datetime(&local).single()?)
}

/// The date and time as written, and its zone when the text names one this reader
/// knows; for dates a mail client writes without a zone (the header block of an inline
/// forward), which the caller places in a zone it has reasons for.
pub fn parse_wall_clock(text: &str) -> Option<(NaiveDateTime, Option<FixedOffset>)> {
    let text: String = text.chars().take(MAX_CHARS).collect();
    let text = join_time_parts(&strip_comments(&text));
    let mut fields = Fields::default();
    for token in text.split(|c: char| c.is_whitespace() || c == ',') {
        if token.is_empty() {
            continue;
        }
        if !fields.take(token)? {
            break;
        }
    }
    fields.finish()
}

/// What the tokens said so far.
#[derive(Default)]
struct Fields {
    month: Option<u32>,
    /// Day and year from a single token such as `2017-04-29` or `29.04.2017`.
    ymd: Option<(i32, u32, u32)>,
    /// Bare numbers before the time (day, year), as (value, digits).
    numbers: Vec<(u32, usize)>,
    time: Option<(u32, u32, u32)>,
    pm: Option<bool>,
    /// Seconds east of UTC.
    zone: Option<i32>,
    /// The zone was a name this reader does not know (counted as `-0000`).
    zone_unknown: bool,
}

impl Fields {
    /// Takes one token: Some(true) to go on, Some(false) when done, None when impossible.
    fn take(&mut self, token: &str) -> Option<bool> {
        let lower = token.to_lowercase();
        let lower = lower.as_str();
        if self.time.is_none() {
            if let Some((date, time)) = split_iso(lower) {
                self.take(date)?;
                return self.take(time);
            }
            let starts_digit = lower.starts_with(|c: char| c.is_ascii_digit());
            if starts_digit
                && (lower.contains(':') || (self.date_complete() && lower.contains('.')))
            {
                let (time, rest) = parse_time(lower)?;
                self.time = Some(time);
                return if rest.is_empty() {
                    Some(true)
                } else {
                    self.take(rest)
                };
            }
            if starts_digit
                && self.ymd.is_none()
                && let Some(ymd) = parse_triple(lower)
            {
                self.ymd = Some(ymd);
                return Some(true);
            }
            // `6.` as in the German `6. Jan 2025`.
            if let Some(n) = number(lower.trim_end_matches('.')) {
                if self.numbers.len() < 3 {
                    self.numbers.push(n);
                }
            } else if let Some(m) = zones::month_number(lower) {
                self.month.get_or_insert(m);
            }
            // Anything else before the time: weekdays, `at`, noise.
            return Some(true);
        }
        if self.zone.is_some() {
            // Unix `date`: `Mon Jan  6 10:00:00 CET 2025` has the year after the zone.
            return match number(lower) {
                Some(n) if self.ymd.is_none() && self.numbers.len() < 2 => {
                    self.numbers.push(n);
                    Some(true)
                }
                _ => Some(false),
            };
        }
        match lower {
            "am" | "a.m." => self.pm = Some(false),
            "pm" | "p.m." => self.pm = Some(true),
            _ if lower.starts_with(['+', '-']) => {
                if lower
                    .get(1..)
                    .is_some_and(|d| d.starts_with(|c: char| c.is_ascii_digit()))
                {
                    self.zone = Some(numeric_zone(lower)?.0);
                }
            }
            _ if lower.starts_with(|c: char| c.is_alphabetic()) => {
                let zone = named_zone(lower)?;
                self.zone_unknown = zone.is_none();
                self.zone = Some(zone.unwrap_or(0));
            }
            // asctime: `Thu Apr  9 23:34:45 2006` has the year after the time.
            _ => match number(lower) {
                Some(n) if self.numbers.len() < 3 => self.numbers.push(n),
                _ => return Some(false),
            },
        }
        Some(true)
    }

    /// Day, month and year are all known (so a dotted token is a time, not a date).
    fn date_complete(&self) -> bool {
        self.ymd.is_some() || (self.month.is_some() && self.numbers.len() >= 2)
    }

    fn finish(self) -> Option<(NaiveDateTime, Option<FixedOffset>)> {
        let (year, month, day) = match self.ymd {
            Some(ymd) => ymd,
            None => {
                let month = self.month?;
                let (day, year) = day_and_year(&self.numbers)?;
                (year, month, day)
            }
        };
        let (mut hour, minute, second) = self.time?;
        match self.pm {
            Some(_) if hour == 0 || hour > 12 => return None,
            Some(true) if hour < 12 => hour += 12,
            Some(false) if hour == 12 => hour = 0,
            _ => {}
        }
        let local =
            NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(hour, minute, second.min(59))?;
        let zone = match self.zone {
            Some(_) if self.zone_unknown => None,
            Some(seconds) => Some(FixedOffset::east_opt(seconds)?),
            None => None,
        };
        Some((local, zone))
    }
}

/// The day and the year among the bare numbers: a number of 3+ digits or over 31 is
/// the year, else the first is the day (`21 Nov 97`, `Nov 21 97`, `1 Jan 21`).
fn day_and_year(numbers: &[(u32, usize)]) -> Option<(u32, i32)> {
    let is_year = |&(value, digits): &(u32, usize)| digits >= 4 || value > 31;
    let (year_at, year) = match numbers.iter().position(is_year) {
        Some(i) => (i, numbers[i]),
        None => (1, *numbers.get(1)?),
    };
    let day = numbers
        .iter()
        .enumerate()
        .find(|&(i, _)| i != year_at)
        .map(|(_, &(v, _))| v)?;
    Some((day, full_year(year)?))
}

/// RFC 5322 section 4.3: `00`-`49` are 2000-2049, `50`-`99` and three digits add 1900.
fn full_year((value, digits): (u32, usize)) -> Option<i32> {
    let value = i32::try_from(value).ok()?;
    Some(match (digits, value) {
        (..=2, 0..=49) => value + 2000,
        (..=2, _) => value + 1900,
        (3, _) => value + 1900,
        _ => value,
    })
}

/// A run of ASCII digits as (value, digit count); None for anything else or absurd lengths.
fn number(token: &str) -> Option<(u32, usize)> {
    if token.is_empty() || token.len() > 4 || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((token.parse().ok()?, token.len()))
}

/// `2017-04-29`, `29-04-2017`, `29.04.2017`, `04/29/2017`, `1-Jan-2020`.
fn parse_triple(token: &str) -> Option<(i32, u32, u32)> {
    let sep = token.chars().find(|c| matches!(c, '-' | '/' | '.'))?;
    let parts: Vec<&str> = token.split(sep).collect();
    let [a, b, c] = parts.as_slice() else {
        return None;
    };
    if let Some(month) = zones::month_number(b) {
        let (day, year) = day_and_year(&[number(a)?, number(c)?])?;
        return Some((year, month, day));
    }
    let (a, b, c) = (number(a)?, number(b)?, number(c)?);
    if a.1 == 4 {
        return Some((full_year(a)?, b.0, c.0));
    }
    let year = full_year(c)?;
    // Slashes are the US order unless the first number cannot be a month.
    if sep == '/' && a.0 <= 12 {
        Some((year, a.0, b.0))
    } else {
        Some((year, b.0, a.0))
    }
}

/// `2020-01-01t12:00:00+02:00` as its date and time tokens.
fn split_iso(token: &str) -> Option<(&str, &str)> {
    let at = token.find('t')?;
    let (date, time) = (token.get(..at)?, token.get(at + 1..)?);
    let looks_iso = date.len() == 10 && date.as_bytes().get(4) == Some(&b'-');
    let time_starts = time.starts_with(|c: char| c.is_ascii_digit());
    (looks_iso && time_starts).then_some((date, time))
}

/// `H:MM`, `HH:MM:SS`, `HH:MM:SS.fff`, `HH.MM.SS`, with whatever follows (`+0200`,
/// `z`, `pm`) returned as the rest. None when the time cannot exist (25:00, 10:61).
fn parse_time(token: &str) -> Option<((u32, u32, u32), &str)> {
    let sep = if token.contains(':') { ':' } else { '.' };
    let mut rest = token;
    let mut fields = [0u32; 3];
    let mut count = 0;
    while count < 3 {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 2 {
            break;
        }
        fields[count] = rest.get(..digits)?.parse().ok()?;
        count += 1;
        rest = rest.get(digits..)?;
        match rest.strip_prefix(sep) {
            Some(after) if count < 3 && after.starts_with(|c: char| c.is_ascii_digit()) => {
                rest = after
            }
            _ => break,
        }
    }
    if count < 2 {
        return None;
    }
    // A fraction of a second is dropped.
    if count == 3
        && let Some(after) = rest.strip_prefix(['.', ','])
    {
        rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let [hour, minute, second] = fields;
    (hour <= 23 && minute <= 59 && second <= 60).then_some(((hour, minute, second), rest))
}

/// `+0200`, `-04:00`, `+2`, `-0330`; returns the offset in seconds and what follows.
fn numeric_zone(token: &str) -> Option<(i32, &str)> {
    let sign = if token.starts_with('-') { -1 } else { 1 };
    let body = token.get(1..)?;
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    let (hours, minutes, rest) = match digits {
        1 | 2 => {
            let hours: i32 = body.get(..digits)?.parse().ok()?;
            let after = body.get(digits..)?;
            match after.strip_prefix(':') {
                Some(m)
                    if m.get(..2)
                        .is_some_and(|mm| mm.bytes().all(|b| b.is_ascii_digit())) =>
                {
                    (hours, m.get(..2)?.parse().ok()?, m.get(2..)?)
                }
                _ => (hours, 0, after),
            }
        }
        3 | 4 => {
            let split = digits - 2;
            (
                body.get(..split)?.parse().ok()?,
                body.get(split..digits)?.parse().ok()?,
                body.get(digits..)?,
            )
        }
        // More digits than a zone can have (the zone and the next field run together):
        // the first four are the zone.
        5.. => (
            body.get(..2)?.parse().ok()?,
            body.get(2..4)?.parse().ok()?,
            body.get(4..)?,
        ),
        _ => return None,
    };
    (hours <= 23 && minutes <= 59).then_some((sign * (hours * 3600 + minutes * 60), rest))
}

/// `CEST`, `GMT+02:00`, `UTC+2`: `Some(offset)`; `Some(None)` for any other name
/// (which a Date header counts as `-0000`, RFC 5322 4.3); `None` when impossible.
fn named_zone(token: &str) -> Option<Option<i32>> {
    let letters = token.chars().take_while(|c| c.is_alphabetic()).count();
    let (name, rest) = token.split_at(
        token
            .char_indices()
            .nth(letters)
            .map_or(token.len(), |(i, _)| i),
    );
    match zones::zone_offset(name) {
        Some(base) if rest.starts_with(['+', '-']) && base == 0 => {
            Some(Some(numeric_zone(rest)?.0))
        }
        Some(base) => Some(Some(base)),
        None => Some(None),
    }
}

/// Comments `( ... )`, nested and with `\)` escapes, become a blank.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0u32;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '(' => depth = depth.saturating_add(1),
            ')' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push(' ');
                }
            }
            '\\' if depth > 0 => {
                chars.next();
            }
            _ if depth > 0 => {}
            ')' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// `09 :  55 : 06` (legal with folding whitespace) as `09:55:06`.
fn join_time_parts(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut after_colon = false;
    for c in text.chars() {
        if c == ':' {
            let kept = out.trim_end().len();
            out.truncate(kept);
            out.push(':');
            after_colon = true;
        } else if after_colon && c.is_whitespace() {
            continue;
        } else {
            after_colon = false;
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Option<String> {
        parse_date(text).map(|d| d.to_rfc3339())
    }

    #[test]
    fn wall_clock_says_whether_a_zone_was_written() {
        let w = |t: &str| parse_wall_clock(t).map(|(at, zone)| (at.to_string(), zone));
        let cet = FixedOffset::east_opt(3600);
        assert_eq!(
            w("4 March 2025 at 10:15:00 CET"),
            Some(("2025-03-04 10:15:00".into(), cet))
        );
        assert_eq!(
            w("Tue, Mar 4, 2025 at 10:15 AM"),
            Some(("2025-03-04 10:15:00".into(), None))
        );
        // An unknown name after the time is no zone ("Uhr"), though a Date header
        // counts it as -0000.
        assert_eq!(
            w("Di., 4. März 2025 um 10:15 Uhr"),
            Some(("2025-03-04 10:15:00".into(), None))
        );
        assert_eq!(
            p("4 Mar 2025 10:15 Uhr").as_deref(),
            Some("2025-03-04T10:15:00+00:00")
        );
        assert_eq!(
            w("wtorek, 4 marca 2025 10:15"),
            Some(("2025-03-04 10:15:00".into(), None))
        );
    }

    #[test]
    fn rfc5322_forms() {
        assert_eq!(
            p("Tue, 1 Jul 2003 10:52:37 +0200").as_deref(),
            Some("2003-07-01T10:52:37+02:00")
        );
        assert_eq!(
            p("1 Jul 2003 10:52:37 +0200").as_deref(),
            Some("2003-07-01T10:52:37+02:00")
        );
        assert_eq!(
            p("Fri, 21 Nov 1997 09(comment):   55  :  06 -0600").as_deref(),
            Some("1997-11-21T09:55:06-06:00")
        );
        assert_eq!(
            p("21 Nov 97 09:55:06 GMT").as_deref(),
            Some("1997-11-21T09:55:06+00:00")
        );
        assert_eq!(
            p("Tue, 22 Jan 2002 14:35:28 UT").as_deref(),
            Some("2002-01-22T14:35:28+00:00")
        );
        assert_eq!(
            p("Wed, 9 Jan 2002 19:47:50 MST").as_deref(),
            Some("2002-01-09T19:47:50-07:00")
        );
        assert_eq!(
            p(" Mon, 15 Jul 2013 13:16:38 -0700 (PDT)\r\n").as_deref(),
            Some("2013-07-15T13:16:38-07:00")
        );
    }

    #[test]
    fn years_by_rfc5322_section_4_3() {
        assert_eq!(
            p("1 Jan 49 10:00 +0000").as_deref(),
            Some("2049-01-01T10:00:00+00:00")
        );
        assert_eq!(p("1 Jan 50 10:00 +0000"), None); // 1950: before 1970
        assert_eq!(
            p("1 Jan 99 10:00 +0000").as_deref(),
            Some("1999-01-01T10:00:00+00:00")
        );
        assert_eq!(
            p("1 Jan 103 10:00 +0000").as_deref(),
            Some("2003-01-01T10:00:00+00:00")
        );
        assert_eq!(
            p("Jan 21 21 10:00 +0000").as_deref(),
            Some("2021-01-21T10:00:00+00:00")
        );
    }

    #[test]
    fn broken_forms_from_the_corpora() {
        for (text, want) in [
            (
                "Mon, 20 Sep 2021 21:32:59 +0200 (GMT+02:00)",
                "2021-09-20T21:32:59+02:00",
            ),
            (
                "Fri, 19 May 2000 09:55:48 -0400 (GMT-04:00)",
                "2000-05-19T09:55:48-04:00",
            ),
            ("Thu, 9 Apr 2006 23:34:45 JST", "2006-04-09T23:34:45+09:00"),
            (
                "Thu,29 Apr 2012 23:34:45 +0900",
                "2012-04-29T23:34:45+09:00",
            ),
            (
                "Thu 29 Apr 2010 23:34:45 +0900",
                "2010-04-29T23:34:45+09:00",
            ),
            (
                "Tue, 029 Apr 2019 23:34:45 -0800 (PST)",
                "2019-04-29T23:34:45-08:00",
            ),
            ("Wed, 3 May 2007 23:34:45", "2007-05-03T23:34:45+00:00"),
            (
                "Thursday, April 09, 2003 9:00 AM",
                "2003-04-09T09:00:00+00:00",
            ),
            ("29-04-2017 23:34", "2017-04-29T23:34:00+00:00"),
            (
                "Pn, 29 paX 2007 21:13:00 +0100",
                "2007-10-29T21:13:00+01:00",
            ),
            (
                "Tue, 12 Oct 2010 16:21:05 H0500",
                "2010-10-12T16:21:05+00:00",
            ),
            (
                "Thu, 29 Apr 1995 23:34:45 -0800 From: Mail Delivery Subsystem <MAILER-DAEMON@X>",
                "1995-04-29T23:34:45-08:00",
            ),
            (
                "Fri, 07 Apr 2023 17:30:44 +0200Received: from m241-41.example.com; Tue, 21 Mar 2023 17:30:35 +0000",
                "2023-04-07T17:30:44+02:00",
            ),
        ] {
            assert_eq!(p(text).as_deref(), Some(want), "{text}");
        }
    }

    #[test]
    fn other_tolerated_forms() {
        for (text, want) in [
            (
                "mon, 6 jan 2025 10:00:00 +0100",
                "2025-01-06T10:00:00+01:00",
            ),
            ("Mon, 6 JAN 2025 10:00 CET", "2025-01-06T10:00:00+01:00"),
            (
                "Mon, 30 Jun 2025 10:00:00 CEST",
                "2025-06-30T10:00:00+02:00",
            ),
            ("Mon, 30 Jun 2025 10:00:00 MET", "2025-06-30T10:00:00+01:00"),
            (
                "Mon,, 30  Jun,  2025   10:00:00   +0200",
                "2025-06-30T10:00:00+02:00",
            ),
            ("30 Jun 2025 10.00.00 +0200", "2025-06-30T10:00:00+02:00"),
            ("30 Jun 2025 10:00:00 GMT+2", "2025-06-30T10:00:00+02:00"),
            (
                "30 Jun 2025 10:00:00 UTC-04:00",
                "2025-06-30T10:00:00-04:00",
            ),
            ("30 Jun 2025 10:00:00 +02:00", "2025-06-30T10:00:00+02:00"),
            (
                "30 Jun 2025 10:00:00.123 +0200",
                "2025-06-30T10:00:00+02:00",
            ),
            ("30 Jun 2025 10:00:00+0200", "2025-06-30T10:00:00+02:00"),
            ("2025-06-30T10:00:00+02:00", "2025-06-30T10:00:00+02:00"),
            ("2025-06-30 10:00:00 +0200", "2025-06-30T10:00:00+02:00"),
            ("29.04.2017 23:34 +0200", "2017-04-29T23:34:00+02:00"),
            ("Sun Jun 29 23:34:45 2025", "2025-06-29T23:34:45+00:00"),
            ("Mon Jan  6 10:00:00 CET 2025", "2025-01-06T10:00:00+01:00"),
            (
                "Mon, 30 Jun 2025 12:00:00 PM +0000",
                "2025-06-30T12:00:00+00:00",
            ),
            (
                "Mon, 30 Jun 2025 12:30 AM +0000",
                "2025-06-30T00:30:00+00:00",
            ),
            (
                "Mon, 30 Jun 2025 23:59:60 +0000",
                "2025-06-30T23:59:59+00:00",
            ),
            ("Pt, 4 lip 2025 08:15:00 +0200", "2025-07-04T08:15:00+02:00"),
            ("Do, 4 Dez 2025 08:15:00 +0100", "2025-12-04T08:15:00+01:00"),
            (
                "Mon, 6 Sept 2025 10:00:00 +0000",
                "2025-09-06T10:00:00+00:00",
            ),
            ("Mo, 6. Jan. 2025 10:00 +0100", "2025-01-06T10:00:00+01:00"),
            (
                "Mon, 6 Jan 2025 10:00:00 - +0100",
                "2025-01-06T10:00:00+01:00",
            ),
        ] {
            assert_eq!(p(text).as_deref(), Some(want), "{text}");
        }
    }

    #[test]
    fn impossible_dates() {
        for text in [
            "",
            "Whenever",
            "<HR>",
            "Wed, 15 Dec 2010    59:10 -0500",
            "Mon, 30 Feb 2025 10:00:00 +0000",
            "Mon, 32 Jan 2025 10:00:00 +0000",
            "2025-13-01 10:00:00 +0000",
            "Mon, 6 Jan 2025 24:00:00 +0000",
            "Mon, 6 Jan 2025 10:61:00 +0000",
            "Mon, 6 Jan 2025 10:00:00 +9999",
            "Thu, 13 Feb 1969 23:32 -0330",
            "Mon, 6 Jan 2101 10:00:00 +0000",
            "Mon, 6 Jan 9999 10:00:00 +0000",
            "Mon, 6 Jan 2025",
            "Mon, 6 2025 10:00:00 +0000",
            "Mon, 30 Jun 2025 13:00 PM +0000",
        ] {
            assert_eq!(p(text), None, "{text}");
        }
    }

    #[test]
    fn edges_of_the_range() {
        assert_eq!(
            p("1 Jan 1970 00:00:00 +0000").as_deref(),
            Some("1970-01-01T00:00:00+00:00")
        );
        assert_eq!(p("1 Jan 1970 00:30:00 +0100"), None);
        assert_eq!(
            p("31 Dec 2100 23:59:59 +0000").as_deref(),
            Some("2100-12-31T23:59:59+00:00")
        );
    }

    #[test]
    fn hostile_input_is_bounded() {
        let long = "((((".repeat(100_000) + &"9:".repeat(100_000);
        assert_eq!(p(&long), None);
        assert_eq!(p(&"1 ".repeat(100_000)), None);
        assert_eq!(p("\u{0}\u{ffff}é(ł)\\"), None);
    }
}
