//! The helpdesk's own mail coming back: never a customer's reply.
//!
//! A notification the helpdesk sent to a customer whose server bounced it back
//! unchanged, a mailbox that receives copies of its own outgoing mail, a helpdesk
//! writing to its own address: posting these would answer the helpdesk with itself,
//! and can loop forever. Helpdesks and list managers mark their outgoing mail with
//! `X-Loop`; mail clients never copy it into a reply.

use super::headers;
use mail_parser::Message;

/// Why this mail is the helpdesk's own, or `None`. `own_addresses` are lower-case.
pub fn loop_reason(msg: &Message<'_>, own_addresses: &[String]) -> Option<String> {
    if let Some(value) = headers::first(msg, "X-Loop") {
        let value: String = value.chars().take(80).collect();
        return Some(format!("mail loop: X-Loop: {value}"));
    }
    headers::from_addresses(msg)
        .map(|a| a.trim().to_ascii_lowercase())
        .find(|a| own_addresses.contains(a))
        .map(|a| format!("mail loop: from the helpdesk's own address {a}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn reason(headers: &str, own: &[&str]) -> Option<String> {
        let raw = format!("{headers}Subject: Re: [#1] x\r\n\r\nbody\r\n");
        let msg = MessageParser::default()
            .parse(raw.as_bytes())
            .expect("test mail parses");
        let own: Vec<String> = own.iter().map(|s| s.to_string()).collect();
        loop_reason(&msg, &own)
    }

    #[test]
    fn own_addresses_exactly_and_in_any_case() {
        let own = ["support@helpdesk.example"];
        assert_eq!(
            reason("From: Support <Support@HelpDesk.example>\r\n", &own).as_deref(),
            Some("mail loop: from the helpdesk's own address support@helpdesk.example")
        );
        assert_eq!(reason("From: anna@customer.example\r\n", &own), None);
        // Exact addresses, not domains or look-alikes.
        assert_eq!(reason("From: sales@helpdesk.example\r\n", &own), None);
        assert_eq!(
            reason("From: support@helpdesk.example.evil\r\n", &own),
            None
        );
        assert_eq!(reason("From: anna@customer.example\r\n", &[]), None);
    }

    #[test]
    fn x_loop_whatever_its_value() {
        assert_eq!(
            reason(
                "From: anna@customer.example\r\nX-Loop: helpdesk@helpdesk.example\r\n",
                &[]
            )
            .as_deref(),
            Some("mail loop: X-Loop: helpdesk@helpdesk.example")
        );
        assert!(reason("From: a@b.example\r\nx-loop: \r\n", &[]).is_some());
    }
}
