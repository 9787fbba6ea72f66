//! Which date a reply gets: the Date header, unless the receiving server's
//! INTERNALDATE shows it cannot be true (SPEC "Deciding" 4).
//!
//! A sender's clock can be years off, and a sender can write any Date it likes to put
//! its reply above or below others in the ticket. A mail cannot arrive before it was
//! sent (a day of slack for clocks and zones), and a reply held back for more than 30
//! days is rarer than a wrong clock, so outside that window INTERNALDATE is used.

use chrono::{DateTime, Duration, FixedOffset};

/// How far the Date header may be after INTERNALDATE.
const AFTER: Duration = Duration::days(1);
/// How far the Date header may be before INTERNALDATE.
const BEFORE: Duration = Duration::days(30);

/// Where the date of a decision came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SentSource {
    /// The Date header.
    DateHeader,
    /// INTERNALDATE; why the Date header was not used.
    InternalDate(String),
    /// An agent's forward: its own date, as the forwarded mail's could not be used (why).
    Forward(String),
    /// Neither was there.
    Unknown,
}

/// The date to use, given the Date header (already read) and INTERNALDATE (None in
/// `explain` without `--received`, where the Date header stands alone).
pub(crate) fn choose(
    header: Option<DateTime<FixedOffset>>,
    internal: Option<DateTime<FixedOffset>>,
) -> (Option<DateTime<FixedOffset>>, SentSource) {
    match (header, internal) {
        (Some(date), Some(received)) if date > received + AFTER => (
            Some(received),
            SentSource::InternalDate(format!(
                "the Date header ({}) is {} after the server received the mail ({})",
                date.to_rfc3339(),
                span(date - received),
                received.to_rfc3339()
            )),
        ),
        (Some(date), Some(received)) if date < received - BEFORE => (
            Some(received),
            SentSource::InternalDate(format!(
                "the Date header ({}) is {} before the server received the mail ({})",
                date.to_rfc3339(),
                span(received - date),
                received.to_rfc3339()
            )),
        ),
        (Some(date), _) => (Some(date), SentSource::DateHeader),
        (None, Some(received)) => (
            Some(received),
            SentSource::InternalDate("no usable Date header".into()),
        ),
        (None, None) => (None, SentSource::Unknown),
    }
}

/// "3 days", "5 hours": the gap as people read it.
fn span(d: Duration) -> String {
    match (d.num_days(), d.num_hours()) {
        (days, _) if days >= 2 => format!("{days} days"),
        (_, hours) => format!("{hours} hours"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<FixedOffset> {
        match DateTime::parse_from_rfc3339(s) {
            Ok(d) => d,
            Err(e) => panic!("bad test instant {s}: {e}"),
        }
    }

    #[test]
    fn a_plausible_date_header_is_used() {
        let received = at("2025-03-04T10:00:00+01:00");
        for date in [
            "2025-03-04T09:58:00+01:00",
            "2025-03-05T09:59:00+01:00",
            "2025-02-02T10:01:00+01:00",
            "2025-03-04T12:00:00-05:00",
        ] {
            assert_eq!(
                choose(Some(at(date)), Some(received)),
                (Some(at(date)), SentSource::DateHeader),
                "{date}"
            );
        }
    }

    #[test]
    fn a_date_from_the_future_or_the_distant_past_is_replaced() {
        let received = at("2025-03-04T10:00:00+01:00");
        let (sent, source) = choose(Some(at("2031-01-01T00:00:00Z")), Some(received));
        assert_eq!(sent, Some(received));
        assert!(
            matches!(&source, SentSource::InternalDate(why) if why.contains("days after")),
            "{source:?}"
        );
        let (sent, source) = choose(Some(at("2025-03-05T10:01:00+01:00")), Some(received));
        assert_eq!(sent, Some(received));
        assert!(
            matches!(&source, SentSource::InternalDate(why) if why.contains("24 hours after")),
            "{source:?}"
        );
        let (sent, source) = choose(Some(at("2025-02-02T09:59:00+01:00")), Some(received));
        assert_eq!(sent, Some(received));
        assert!(
            matches!(&source, SentSource::InternalDate(why) if why.contains("30 days before")),
            "{source:?}"
        );
    }

    #[test]
    fn one_alone_is_used_as_it_is() {
        let date = at("2031-01-01T00:00:00Z");
        assert_eq!(
            choose(Some(date), None),
            (Some(date), SentSource::DateHeader)
        );
        assert_eq!(
            choose(None, Some(date)),
            (
                Some(date),
                SentSource::InternalDate("no usable Date header".into())
            )
        );
        assert_eq!(choose(None, None), (None, SentSource::Unknown));
    }
}
