//! The date a reply was sent, as Thulium wants it.
//! (Interface fixed; implementation to be filled in.)

use chrono::{DateTime, FixedOffset};
use mail_parser::Message;

/// The Date header, tolerant of the broken forms mail clients send; None when unusable.
pub fn sent_at(_msg: &Message<'_>) -> Option<DateTime<FixedOffset>> {
    None
}

/// `YYYY-MM-DD HH:MM` in the Thulium account's zone (the API's `date` has no zone).
pub fn thulium_date(at: DateTime<FixedOffset>, tz: chrono_tz::Tz) -> String {
    at.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
}
