//! Challenge-response requests: "confirm you are a person" answers from whitelist
//! filters (Spam Arrest, ChoiceMail, Bluebottle, Mailinblack, Active Spam Killer, and by
//! subject TMDA and cPanel BoxTrapper). A machine sent them, so they go where
//! auto-replies go.
//!
//! Only signals seen in public code are used: Apache SpamAssassin's
//! `rules/20_vbounce.cf` (its `__CRBOUNCE_*` and `__AUTO_GEN_*` rules), the senders'
//! own source (TMDA's `templates/confirm_request.txt`, ASK's `askmail.py`) and a
//! BoxTrapper request as archived on a mailing list. Two of SpamAssassin's signals are
//! left out on purpose, because people's mail carries them too: `X-Delivery-Agent:
//! TMDA/…` is on every mail a TMDA user sends (tmda-sendmail), and BoxTrapper puts
//! `X-Boxtrapper` on the copies of delivered mail it forwards. Their requests still
//! carry `Auto-Submitted` (TMDA) or `X-Autorespond` (BoxTrapper). Boxbe, Sendio and
//! others are not here: no header or subject of theirs could be found, and the body
//! is not read (see `classify`).

use super::headers;
use mail_parser::Message;
use regex::Regex;
use std::sync::LazyLock;

/// Why this mail is a challenge-response request, if it is.
pub(super) fn challenge_reason(msg: &Message<'_>) -> Option<String> {
    header_reason(msg).or_else(|| subject_reason(msg))
}

/// Headers whose mere presence marks the service's challenge (SpamAssassin `exists:`).
const PRESENCE: &[(&str, &str)] = &[
    ("X-Spamarrest-noauth", "Spam Arrest"), // __CRBOUNCE_SPAMARREST
    ("X-Choicemail-Registration-Request", "ChoiceMail"), // __AUTO_GEN_CM
    ("X-Bluebottle-Request", "Bluebottle"), // __AUTO_GEN_BBTL
];

fn header_reason(msg: &Message<'_>) -> Option<String> {
    for (name, service) in PRESENCE {
        if headers::first(msg, name).is_some() {
            return Some(format!("challenge-response: {name} ({service})"));
        }
    }
    // Active Spam Killer writes `X-AskVersion` only on mail it sends itself (__CRBOUNCE_ASK).
    if headers::values(msg, "X-AskVersion").any(|v| v.bytes().any(|b| b.is_ascii_digit())) {
        return Some("challenge-response: X-AskVersion (Active Spam Killer)".into());
    }
    // Mailinblack sets no header of its own, only this MIME boundary (__CRBOUNCE_MIB).
    if headers::values(msg, "Content-Type").any(|v| {
        v.to_ascii_lowercase()
            .contains("multipartboundary_mailinblack")
    }) {
        return Some("challenge-response: Mailinblack MIME boundary".into());
    }
    None
}

/// The requests' own subjects, anchored at the start like the auto-reply prefixes: a
/// person's "Re: Please confirm your message" or a sentence that goes on does not count.
static SUBJECT: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?xi)^\s*(?:
            (please\s+confirm\s+your\s+message)\s*(?::|$)            # TMDA confirm_request.txt
          | (please\s+verify\s+your\s+e-?mail\s+address)\s*(?::|$)   # __CRBOUNCE_VERIF
          | (your\s+e-?mail\s+requires\s+verification)\s+verify[:\#]\S  # BoxTrapper (`#` today)
          | (unverified\s+e-?mail\s+to)\s+\S                        # __CRBOUNCE_UNVERIF
        )",
    )
    .ok()
});

fn subject_reason(msg: &Message<'_>) -> Option<String> {
    let subject = msg.subject()?;
    let found = SUBJECT.as_ref()?.captures(subject)?;
    let phrase = found.iter().skip(1).flatten().next()?;
    Some(format!(
        "challenge-response: subject starts with \"{}\"",
        phrase.as_str()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn reason(headers: &str) -> Option<String> {
        let raw = format!("From: a@b.example\r\n{headers}\r\n\r\nbody\r\n");
        let msg = MessageParser::default().parse(raw.as_bytes())?;
        challenge_reason(&msg)
    }

    #[test]
    fn service_headers() {
        assert_eq!(
            reason("X-Spamarrest-noauth: <x@spamarrest.com>").as_deref(),
            Some("challenge-response: X-Spamarrest-noauth (Spam Arrest)")
        );
        assert_eq!(
            reason("x-choicemail-registration-request: 1").as_deref(),
            Some("challenge-response: X-Choicemail-Registration-Request (ChoiceMail)")
        );
        assert!(reason("X-Bluebottle-Request: sender-verification").is_some());
        assert!(reason("X-AskVersion: 2.5.3 (http://www.paganini.net/ask)").is_some());
        assert_eq!(
            reason(
                "Content-Type: multipart/alternative;\r\n boundary=\"mUlTiPaRtBoUnDaRy_MailInBlack_4f2a\""
            )
            .as_deref(),
            Some("challenge-response: Mailinblack MIME boundary")
        );
    }

    #[test]
    fn look_alike_headers_are_not_challenges() {
        // On every mail a TMDA user writes, and on mail BoxTrapper forwards.
        assert_eq!(reason("X-Delivery-Agent: TMDA/1.1.12 (Macallan)"), None);
        assert_eq!(
            reason("X-Boxtrapper: k2pG7wXZewdqT_cpWr7qQmZd3i90dZGv"),
            None
        );
        assert_eq!(reason("X-AskVersion: none"), None);
        assert_eq!(
            reason("Content-Type: multipart/mixed; boundary=\"MailInBlack-user\""),
            None
        );
        assert_eq!(reason("X-Spamarrest-speedcode: 1"), None);
    }

    #[test]
    fn subjects_of_challenges() {
        for (subject, phrase) in [
            ("Please confirm your message", "Please confirm your message"),
            (
                "please confirm your message: Re: [#12] x",
                "please confirm your message",
            ),
            (
                "Please Verify Your Email Address",
                "Please Verify Your Email Address",
            ),
            (
                "Your email requires verification verify:a1b2c3",
                "Your email requires verification",
            ),
            (
                "Your email requires verification verify#rytsCpsStxBOz1ckg2wcT-1755808398",
                "Your email requires verification",
            ),
            (
                "Unverified email to anna@customer.example",
                "Unverified email to",
            ),
        ] {
            assert_eq!(
                reason(&format!("Subject: {subject}")),
                Some(format!(
                    "challenge-response: subject starts with \"{phrase}\""
                )),
                "{subject}"
            );
        }
    }

    #[test]
    fn people_writing_about_verification_are_not_challenges() {
        for subject in [
            "Re: Please confirm your message",
            "Re: [#123] Please verify your email address",
            "Please verify your email address - the link expired",
            "Please confirm your message was received [#12]",
            "Your email requires verification?",
            "Unverified email",
            "[#123] sender verification does not work",
        ] {
            assert_eq!(reason(&format!("Subject: {subject}")), None, "{subject}");
        }
    }
}
