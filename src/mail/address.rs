//! What counts as an address the helpdesk can write to.

/// A plain `local@domain` address: a dot-atom local part (no quotes, no comments) and
/// a host name of two labels or more; letters beyond ASCII are allowed (RFC 6531).
pub fn is_plain_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let atext = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let label = |l: &str| {
        !l.is_empty()
            && l.chars().count() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    local.chars().count() <= 64
        && local
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(atext))
        && domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_addresses_only() {
        for good in [
            "anna@customer.example",
            "anna.nowak+orders@mail.customer.example",
            "o'brien@customer.example",
            "zażółć@gęśla.example",
        ] {
            assert!(is_plain_address(good), "{good}");
        }
        for bad in [
            "'@'",
            "@",
            "anna",
            "anna@",
            "@customer.example",
            "anna@localhost",
            "anna@customer..example",
            ".anna@customer.example",
            "an na@customer.example",
            "\"anna\"@customer.example",
            "anna@[192.0.2.1]",
            "anna@-customer.example",
            "an\u{200b}na@customer.example",
            "anna@customer.example\u{202e}",
        ] {
            assert!(!is_plain_address(bad), "{bad}");
        }
    }
}
