//! Did the helpdesk already store this reply? Asked whenever a POST's outcome is unknown.
//!
//! The documentation leaves two things open (SPEC "The Thulium API"): whether a
//! message's `created_at` is the `date` we sent or the time it was stored, and whether a
//! body is stored as sent or re-rendered. So a message is this reply when it is a MAIL
//! (never a REPLY or COMMENT), its visible text equals ours (white space ignored, so
//! markup and line breaks may differ), and its `created_at` is the date we sent to the
//! minute or falls between our first attempt and now, as the API's clock writes them
//! ([`ApiClock`]: learned, else any clock). Replies with the same text that other posted
//! mails account for are not ours: each such mail accounts for a matching message only
//! if that message could be its own (its date sent, or its own posting window), so a
//! customer who writes "Thanks!" twice keeps both.

use crate::mail::body::BodyType;
use crate::mail::decide::CustomerResponse;
use sha2::{Digest, Sha256};

use super::api_clock::{ApiClock, Posting};
use super::{Ticket, TicketMessage};

/// What a read-back compares a ticket's messages with.
pub struct Sent<'a> {
    pub request: &'a CustomerResponse,
    /// Unix seconds of this mail's first POST attempt.
    pub first_attempt: u64,
    /// Unix seconds now.
    pub now: u64,
    /// How the API writes `created_at`, as far as it is known.
    pub clock: &'a ApiClock,
}

/// Another posted mail of the ledger with the same text on the same ticket: when its
/// message may have been stored.
pub struct OtherPost {
    pub date_sent: String,
    /// Unix seconds: first seen, and recorded as posted.
    pub first_seen: u64,
    pub posted: u64,
}

/// How many of the ticket's messages could be this reply.
pub fn matching_messages(ticket: &Ticket, sent: &Sent<'_>) -> u32 {
    count(candidates(ticket, sent).len())
}

/// `(matching, accounted_for)`: the messages that could be this reply, and how many of
/// `others` could have left one of them. The reply is stored when matching > accounted.
pub fn stored(ticket: &Ticket, sent: &Sent<'_>, others: &[OtherPost]) -> (u32, u32) {
    let candidates = candidates(ticket, sent);
    let accounted = others
        .iter()
        .filter(|o| {
            let theirs = Posting {
                date_sent: &o.date_sent,
                from: o.first_seen,
                to: o.posted,
            };
            candidates
                .iter()
                .any(|m| m.time().is_some_and(|t| sent.clock.could_show(t, theirs)))
        })
        .count();
    (count(candidates.len()), count(accounted))
}

fn candidates<'t>(ticket: &'t Ticket, sent: &Sent<'_>) -> Vec<&'t TicketMessage> {
    let ours = fingerprint(&sent.request.body, sent.request.body_type);
    let posting = Posting {
        date_sent: &sent.request.date,
        from: sent.first_attempt,
        to: sent.now,
    };
    ticket
        .messages
        .iter()
        .filter(|m| m.is_mail())
        .filter(|m| m.body.as_deref().is_some_and(|b| same_text(b, &ours)))
        .filter(|m| m.time().is_some_and(|t| sent.clock.could_show(t, posting)))
        .collect()
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Whether a stored body shows the same text as ours (any markup, any spacing).
pub fn same_body(stored: &str, ours: &str, ours_type: BodyType) -> bool {
    same_text(stored, &fingerprint(ours, ours_type))
}

/// Hex SHA-256 of the reply's visible text, recorded so that posted replies with the
/// same text on a ticket can be counted.
pub fn text_hash(req: &CustomerResponse) -> String {
    text_hash_of(&req.body, req.body_type)
}

/// [`text_hash`] of any body.
pub fn text_hash_of(body: &str, body_type: BodyType) -> String {
    hex::encode(Sha256::digest(fingerprint(body, body_type).as_bytes()))
}

/// Our body's visible text without white space. Our HTML comes from the sanitizer, so
/// tags are well formed and the only entities are the ones its serializer writes.
fn fingerprint(body: &str, body_type: BodyType) -> String {
    match body_type {
        BodyType::Plain => squeeze(body),
        BodyType::Html => squeeze(&decode_basic(&strip_tags(body))),
    }
}

/// The [`text_hash`]es a stored body may have: read as plain text and as HTML.
pub fn stored_text_hashes(stored: &str) -> [String; 2] {
    [squeeze(stored), stored_as_html(stored)].map(|t| hex::encode(Sha256::digest(t.as_bytes())))
}

fn stored_as_html(stored: &str) -> String {
    let text = ammonia::Builder::empty().clean(stored).to_string();
    squeeze(&decode_basic(&text))
}

/// A stored body is read both as HTML (parsed, every entity decoded) and as plain text,
/// since the helpdesk may keep a PLAIN reply as sent or turn it into HTML.
fn same_text(stored: &str, ours: &str) -> bool {
    squeeze(stored) == ours || stored_as_html(stored) == ours
}

/// Tags out (quote-aware, so `alt="a>b"` stays inside its tag), each as a space.
fn strip_tags(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut quote: Option<char> = None;
    let mut in_tag = false;
    for c in html.chars() {
        match (in_tag, quote, c) {
            (false, _, '<') => {
                in_tag = true;
                text.push(' ');
            }
            (false, _, _) => text.push(c),
            (true, Some(q), _) if c == q => quote = None,
            (true, Some(_), _) => {}
            (true, None, '"' | '\'') => quote = Some(c),
            (true, None, '>') => in_tag = false,
            (true, None, _) => {}
        }
    }
    text
}

/// The entities an HTML serializer writes in text.
fn decode_basic(text: &str) -> String {
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn squeeze(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thulium::TicketMessage;

    const WARSAW: chrono_tz::Tz = chrono_tz::Europe::Warsaw;

    fn request(body: &str, body_type: BodyType) -> CustomerResponse {
        CustomerResponse {
            body: body.into(),
            body_type,
            date: "2025-03-01 10:15".into(),
        }
    }

    fn message(kind: &str, body: &str, created_at: &str) -> TicketMessage {
        TicketMessage {
            r#type: Some(kind.into()),
            body: Some(body.into()),
            created_at: Some(created_at.into()),
            date: None,
        }
    }

    fn count(req: &CustomerResponse, messages: Vec<TicketMessage>, first: u64, now: u64) -> u32 {
        count_by(&ApiClock::account_zone(WARSAW), req, messages, first, now)
    }

    fn count_by(
        clock: &ApiClock,
        req: &CustomerResponse,
        messages: Vec<TicketMessage>,
        first: u64,
        now: u64,
    ) -> u32 {
        let ticket = Ticket {
            ticket_id: 1,
            from: None,
            subject: None,
            messages,
        };
        let sent = Sent {
            request: req,
            first_attempt: first,
            now,
            clock,
        };
        matching_messages(&ticket, &sent)
    }

    /// 2026-11-30 12:00:00 UTC = 13:00 in Warsaw.
    const NOON_UTC: u64 = 1_796_040_000;

    #[test]
    fn a_re_rendered_body_with_the_date_sent_is_found() {
        let req = request(
            "<div>Hello&nbsp;there,<br>thanks &amp; bye</div>",
            BodyType::Html,
        );
        let stored =
            "<div class=\"thulium-message\"><p>Hello&#160;there,<br />thanks &#38; bye</p></div>";
        assert_eq!(
            count(
                &req,
                vec![message("MAIL", stored, "2025-03-01 10:15")],
                0,
                0
            ),
            1
        );
        assert_eq!(
            count(
                &req,
                vec![message("MAIL", stored, "2025-03-01 10:15:42")],
                0,
                0
            ),
            1
        );
    }

    #[test]
    fn a_plain_reply_stored_as_html_is_found() {
        let req = request("Dzień dobry,\n\nx < y & z\n", BodyType::Plain);
        let stored = "<p>Dzie&#324; dobry,</p><p>x &lt; y &amp; z</p>";
        assert_eq!(
            count(
                &req,
                vec![message("MAIL", stored, "2025-03-01 10:15")],
                0,
                0
            ),
            1
        );
        let as_sent = "Dzień dobry,\r\n\r\nx < y & z";
        assert_eq!(
            count(
                &req,
                vec![message("MAIL", as_sent, "2025-03-01 10:15")],
                0,
                0
            ),
            1
        );
    }

    #[test]
    fn replies_comments_other_text_and_other_times_are_not_ours() {
        let req = request("Thanks", BodyType::Plain);
        let found = |m| count(&req, vec![m], NOON_UTC, NOON_UTC + 120);
        assert_eq!(found(message("REPLY", "Thanks", "2025-03-01 10:15")), 0);
        assert_eq!(found(message("COMMENT", "Thanks", "2025-03-01 10:15")), 0);
        assert_eq!(
            found(message("MAIL", "Thanks a lot", "2025-03-01 10:15")),
            0
        );
        assert_eq!(found(message("MAIL", "Thanks", "2025-03-01 10:16")), 0);
        assert_eq!(found(message("MAIL", "Thanks", "not a date")), 0);
    }

    #[test]
    fn the_storage_time_counts_when_it_falls_between_the_first_attempt_and_now() {
        let req = request("Thanks", BodyType::Plain);
        let at = |t: &str| {
            count(
                &req,
                vec![message("MAIL", "Thanks", t)],
                NOON_UTC,
                NOON_UTC + 300,
            )
        };
        assert_eq!(at("2026-11-30 13:00"), 1, "the minute of the first attempt");
        assert_eq!(at("2026-11-30 13:05"), 1, "now");
        assert_eq!(at("2026-11-30 12:59"), 1, "a minute of clock slack");
        assert_eq!(at("2026-11-30 12:57"), 0, "before the first attempt");
        assert_eq!(at("2026-11-30 13:08"), 0, "after now");
        assert_eq!(at("2026-11-30 12:00"), 0, "UTC is not the account's zone");
    }

    #[test]
    fn before_the_clock_is_learned_any_offset_counts_but_not_a_day_off() {
        let req = request("Thanks", BodyType::Plain);
        let unknown = ApiClock::learn(WARSAW, []);
        let at = |t: &str| {
            count_by(
                &unknown,
                &req,
                vec![message("MAIL", "Thanks", t)],
                NOON_UTC,
                NOON_UTC + 300,
            )
        };
        assert_eq!(at("2026-11-30 12:00"), 1, "storage time in UTC");
        assert_eq!(at("2026-11-30 17:30"), 1, "storage time at +05:30");
        assert_eq!(at("2025-03-01 04:15"), 1, "the date sent in New York");
        assert_eq!(at("2026-12-02 12:00"), 0, "two days later fits no clock");
    }

    #[test]
    fn a_time_shown_twice_when_dst_ends_is_read_both_ways() {
        // 2026-10-25 00:30 UTC = 02:30 CEST; 01:30 UTC = 02:30 CET.
        let req = request("Thanks", BodyType::Plain);
        let late = 1_792_891_800; // 01:30 UTC
        assert_eq!(
            count(
                &req,
                vec![message("MAIL", "Thanks", "2026-10-25 02:30")],
                late,
                late
            ),
            1
        );
    }

    #[test]
    fn every_matching_message_is_counted() {
        let req = request("Thanks", BodyType::Plain);
        let m = || message("MAIL", "Thanks", "2025-03-01 10:15");
        assert_eq!(
            count(
                &req,
                vec![m(), m(), message("REPLY", "Thanks", "2025-03-01 10:15")],
                0,
                0
            ),
            2
        );
    }

    #[test]
    fn the_text_hash_ignores_markup_and_spacing() {
        let a = request("<p>Hello <b>there</b></p>", BodyType::Html);
        let b = request("<div>Hello\n there</div>", BodyType::Html);
        let c = request("Hello there", BodyType::Plain);
        assert_eq!(text_hash(&a), text_hash(&b));
        assert_eq!(text_hash(&a), text_hash(&c));
        assert_ne!(text_hash(&a), text_hash(&request("Hello", BodyType::Plain)));
        assert_eq!(strip_tags("<img alt=\"a>b\">x"), " x");
    }
}
