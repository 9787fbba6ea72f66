//! Who sent the mail: the address of its one From header, or why there is none to hold
//! it to.
//!
//! Sender checks, DMARC and new tickets all rest on this one address, so a From that
//! parsers could read two ways yields none: two From headers (RFC 5322 allows one; the
//! receiving server may judge the first while mail-parser reads the last), two
//! `<addresses>` in one mailbox (mail-parser joins `<anna@customer> <.example>` into
//! `anna@customer.example`), a control character (a NUL splits the header for some
//! readers), or an address that is not one. Such a mail is decided as one without a
//! From address. A list of mailboxes (`From: a@x, b@y`) is valid and gives its first.

use mail_parser::Message;

/// A header longer than this is read only this far for the checks on its raw form.
const MAX_HEADER: usize = 16 << 10;

/// The mail's sender, lower-cased, or why it has none.
pub(crate) fn sender(msg: &Message<'_>) -> Result<String, String> {
    let froms: Vec<&[u8]> = msg
        .headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case("From"))
        .map(|h| {
            let start = h.offset_start() as usize;
            let end = (h.offset_end() as usize).min(start.saturating_add(MAX_HEADER));
            msg.raw_message.get(start..end).unwrap_or_default()
        })
        .collect();
    match froms.as_slice() {
        [] => return Err("no From address".into()),
        [raw] => {
            if let Some(why) = raw_problem(raw) {
                return Err(why);
            }
        }
        more => {
            return Err(format!(
                "{} From headers: which one wrote the mail is unknown",
                more.len()
            ));
        }
    }
    let address = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(|a| a.trim())
        .filter(|a| !a.is_empty())
        .ok_or("no From address")?;
    if is_one_address(address) {
        return Ok(address.to_ascii_lowercase());
    }
    // Clients that forget the angle brackets write `Anna Nowak anna@customer.example`:
    // one word that is an address among words that are not is still one sender.
    let mut addresses = address.split_whitespace().filter(|word| word.contains('@'));
    match (addresses.next(), addresses.next()) {
        (Some(only), None) if is_one_address(only) => Ok(only.to_ascii_lowercase()),
        _ => Err(format!("the From address {address:?} is not one address")),
    }
}

/// What in the raw From value could be read as more than one sender.
fn raw_problem(raw: &[u8]) -> Option<String> {
    if raw
        .iter()
        .any(|&b| b.is_ascii_control() && !matches!(b, b'\t' | b'\r' | b'\n'))
    {
        return Some("the From header holds a control character".into());
    }
    (most_angle_addresses(raw) > 1)
        .then(|| "the From header gives one mailbox two <addresses>".into())
}

/// The most `<…>` in one mailbox of a From value: quoted strings and comments skipped,
/// mailboxes split at top-level commas.
fn most_angle_addresses(raw: &[u8]) -> usize {
    let (mut quoted, mut escaped, mut comment) = (false, false, 0usize);
    let (mut in_mailbox, mut most) = (0usize, 0usize);
    for &b in raw {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if quoted || comment > 0 => escaped = true,
            b'"' if comment == 0 => quoted = !quoted,
            _ if quoted => {}
            b'(' => comment += 1,
            b')' => comment = comment.saturating_sub(1),
            _ if comment > 0 => {}
            b'<' => {
                in_mailbox += 1;
                most = most.max(in_mailbox);
            }
            b',' | b';' => in_mailbox = 0,
            _ => {}
        }
    }
    most
}

/// `local@domain`, both parts there, nothing that would join or split addresses.
fn is_one_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender_of(from_lines: &str) -> Result<String, String> {
        let raw = format!("{from_lines}Subject: x\r\n\r\nbody\r\n");
        let msg = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .expect("parses");
        sender(&msg)
    }

    #[test]
    fn one_from_gives_its_address() {
        for from in [
            "From: Anna@Customer.Example\r\n",
            "From: \"Anna <eve@evil.example>\" <anna@customer.example>\r\n",
            "From: <anna@customer.example> (eve@evil.example, <x@y>)\r\n",
            "From: =?utf-8?q?Anna_=22x=22?= <anna@customer.example>\r\n",
            "From: \"Anna, Sales\" <anna@customer.example>\r\n",
            // A list is valid (with a Sender); its first mailbox wrote it.
            "From: anna@customer.example, \"Bob\" <bob@customer.example>\r\n",
            // Angle brackets forgotten: one word is an address.
            "From: Anna Nowak anna@customer.example\r\n",
        ] {
            assert_eq!(
                sender_of(from).as_deref(),
                Ok("anna@customer.example"),
                "{from}"
            );
        }
    }

    #[test]
    fn two_from_headers_give_none_in_either_order() {
        for froms in [
            "From: anna@customer.example\r\nFrom: eve@evil.example\r\n",
            "From: eve@evil.example\r\nFrom: anna@customer.example\r\n",
            "From: anna@customer.example\r\nfrom: anna@customer.example\r\n",
        ] {
            let why = sender_of(froms).unwrap_err();
            assert!(why.starts_with("2 From headers"), "{why}");
        }
    }

    #[test]
    fn addresses_that_parsers_would_join_or_split_give_none() {
        for (from, why) in [
            // mail-parser reads this as anna@customer.example.
            ("From: <anna@customer> <.example>\r\n", "two <addresses>"),
            (
                "From: <anna@customer.example> <eve@evil.example>\r\n",
                "two <addresses>",
            ),
            (
                "From: Anna <anna@customer.example> <x>\r\n",
                "two <addresses>",
            ),
            (
                "From: anna@customer.example\0eve@evil.example\r\n",
                "control",
            ),
            ("From: anna@custo\0mer.example\r\n", "control"),
            (
                "From: anna@customer.example eve@evil.example\r\n",
                "not one",
            ),
            ("From: a@b@customer.example\r\n", "not one"),
            ("From: anna\r\n", "no From"),
            ("From: @customer.example>\r\n", "not one"),
            ("From: <>\r\n", "no From"),
            ("To: x@y\r\n", "no From"),
        ] {
            let said = sender_of(from).unwrap_err();
            assert!(said.contains(why), "{from:?}: {said}");
        }
    }

    #[test]
    fn angle_brackets_are_counted_per_mailbox_outside_quotes_and_comments() {
        assert_eq!(most_angle_addresses(b" \"<a>\" <b@x> (<c>)"), 1);
        assert_eq!(most_angle_addresses(b" A <a@x>, B <b@y>"), 1);
        assert_eq!(most_angle_addresses(b" g: A <a@x>, B <b@y>;"), 1);
        assert_eq!(most_angle_addresses(b" \"q\\\"<\" <a@x> <b@y>"), 2);
    }
}
