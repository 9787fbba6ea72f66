//! Did the From domain really send this mail? The receiving server's verdict, read from
//! its Authentication-Results header (RFC 8601).
//!
//! Anyone can write an Authentication-Results header into the mail they send, so only
//! the headers of the mailbox's own receiving server count (`trusted_authserv_id`), and
//! of those only the topmost: every server prepends its header, so the topmost one with
//! a trusted id is the receiving server's, while one with the same id further down may
//! be the sender's forgery. A receiving setup that writes one header per check (one
//! milter each) therefore needs its DMARC verdict on top, as OpenDMARC's, which runs
//! last, is. With `"topmost"` the topmost header counts whatever its id (Microsoft 365
//! writes none): safe only where the receiving server removes or renames incoming
//! Authentication-Results headers, as Exchange Online does.
//!
//! It passes on `dmarc=pass` naming the From domain in `header.from` (a pass naming no
//! domain may be about another From header than the one read here), on
//! `dkim=pass` with a signing domain aligned with the From domain, or on `spf=pass`
//! with an aligned `smtp.mailfrom`; never on `smtp.helo`. An explicit `dmarc=fail` is
//! the domain owner's policy (strict alignment, say) and wins over DKIM and SPF.
//! Alignment is relaxed (RFC 7489 §3.1): the same organizational domain, found with
//! the public suffix list, so `shop.customer.co.uk` aligns with `customer.co.uk` but
//! `evil.co.uk` does not.

use mail_parser::Message;

/// The `trusted_authserv_id` value that trusts the topmost header whatever its id.
pub const TOPMOST: &str = "topmost";

/// A longer header is read only this far (a real one is a few hundred bytes).
const MAX_HEADER: usize = 16 << 10;
/// Results listed in a failure's reason, at most.
const MAX_LISTED: usize = 8;

/// The receiving server's verdict on the From domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthVerdict {
    /// The mailbox trusts no Authentication-Results id: nothing was checked.
    NotChecked,
    /// How it passed, e.g. `dmarc=pass header.from=customer.example`.
    Pass(String),
    /// Why it did not.
    Fail(String),
}

impl AuthVerdict {
    /// `pass`, `fail` or `not_checked` (for `explain --json` and logs).
    pub fn name(&self) -> &'static str {
        match self {
            AuthVerdict::NotChecked => "not_checked",
            AuthVerdict::Pass(_) => "pass",
            AuthVerdict::Fail(_) => "fail",
        }
    }

    /// How it passed or why it failed; empty when not checked.
    pub fn detail(&self) -> &str {
        match self {
            AuthVerdict::NotChecked => "",
            AuthVerdict::Pass(how) => how,
            AuthVerdict::Fail(why) => why,
        }
    }
}

/// The verdict of the trusted Authentication-Results header of `msg` on `from_domain`.
pub(crate) fn authenticate(
    msg: &Message<'_>,
    from_domain: Option<&str>,
    trusted: &[String],
) -> AuthVerdict {
    let headers = msg
        .headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case("Authentication-Results"))
        .filter_map(|h| {
            let start = h.offset_start() as usize;
            let end = (h.offset_end() as usize).min(start.saturating_add(MAX_HEADER));
            let bytes = msg.raw_message.get(start..end)?;
            Some(String::from_utf8_lossy(bytes).into_owned())
        });
    judge(headers, from_domain, trusted)
}

/// The verdict given the header values in mail order (topmost first).
pub(crate) fn judge<S: AsRef<str>>(
    headers: impl IntoIterator<Item = S>,
    from_domain: Option<&str>,
    trusted: &[String],
) -> AuthVerdict {
    if trusted.is_empty() {
        return AuthVerdict::NotChecked;
    }
    let topmost = trusted
        .iter()
        .any(|t| t.trim().eq_ignore_ascii_case(TOPMOST));
    let is_trusted = |id: &str| trusted.iter().any(|t| t.trim().eq_ignore_ascii_case(id));
    let chosen = headers.into_iter().enumerate().find_map(|(i, value)| {
        let header = parse(value.as_ref());
        let by_id = header.id.as_deref().is_some_and(is_trusted);
        ((topmost && i == 0) || by_id).then_some(header)
    });
    let Some(header) = chosen else {
        let ids: Vec<&str> = trusted.iter().map(|t| t.trim()).collect();
        return AuthVerdict::Fail(format!(
            "no Authentication-Results header of {}",
            ids.join(", ")
        ));
    };
    let Some(from) = from_domain.map(normalized).filter(|d| !d.is_empty()) else {
        return AuthVerdict::Fail("the mail has no From domain to authenticate".into());
    };
    verdict(&header, &from)
}

/// One parsed Authentication-Results header.
#[derive(Debug, Default, PartialEq, Eq)]
struct Header {
    /// The authserv-id; `None` when the header starts with a result (Microsoft 365).
    id: Option<String>,
    results: Vec<MethodResult>,
}

/// `method=result` and its properties (`header.d=…`, `smtp.mailfrom=…`), lower-cased keys.
#[derive(Debug, Default, PartialEq, Eq)]
struct MethodResult {
    method: String,
    result: String,
    properties: Vec<(String, String)>,
}

impl MethodResult {
    fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `dkim=pass header.d=x`: the method, result and the named properties present.
    fn describe(&self, names: &[&str]) -> String {
        let mut out = format!("{}={}", self.method, self.result);
        for name in names {
            if let Some(v) = self.property(name) {
                out.push_str(&format!(" {name}={v}"));
            }
        }
        out
    }
}

fn verdict(header: &Header, from: &str) -> AuthVerdict {
    let of = |method: &'static str| header.results.iter().filter(move |r| r.method == method);
    let names_from = |r: &MethodResult| r.property("header.from").map(normalized);
    // A fail that names no domain still counts against the mail; a pass must name it.
    let maybe_about_from = |r: &&MethodResult| names_from(r).is_none_or(|d| d == from);
    let about_from = |r: &&MethodResult| names_from(r).is_some_and(|d| d == from);
    if let Some(r) = of("dmarc")
        .filter(maybe_about_from)
        .find(|r| r.result == "fail")
    {
        return AuthVerdict::Fail(format!(
            "{}: {}",
            server(header),
            r.describe(&["header.from"])
        ));
    }
    if let Some(r) = of("dmarc").filter(about_from).find(|r| r.result == "pass") {
        return AuthVerdict::Pass(r.describe(&["header.from"]));
    }
    if let Some(r) = of("dkim")
        .filter(|r| r.result == "pass")
        .find(|r| signing_domain(r).is_some_and(|d| aligned(&d, from)))
    {
        return AuthVerdict::Pass(r.describe(&["header.d", "header.i"]));
    }
    if let Some(r) = of("spf").filter(|r| r.result == "pass").find(|r| {
        r.property("smtp.mailfrom")
            .is_some_and(|m| aligned(address_domain(m), from))
    }) {
        return AuthVerdict::Pass(r.describe(&["smtp.mailfrom"]));
    }
    let seen: Vec<String> = header
        .results
        .iter()
        .filter(|r| matches!(r.method.as_str(), "dmarc" | "dkim" | "spf"))
        .take(MAX_LISTED)
        .map(|r| r.describe(&["header.from", "header.d", "smtp.mailfrom"]))
        .collect();
    AuthVerdict::Fail(format!(
        "{}: no dmarc, aligned dkim or aligned spf pass for {from} ({})",
        server(header),
        if seen.is_empty() {
            "no results".to_string()
        } else {
            seen.join("; ")
        }
    ))
}

fn server(header: &Header) -> String {
    match &header.id {
        Some(id) => format!("Authentication-Results of {id}"),
        None => "the topmost Authentication-Results".into(),
    }
}

/// `header.d`, else the domain of `header.i` (`@customer.example`, `user@customer.example`).
fn signing_domain(r: &MethodResult) -> Option<String> {
    r.property("header.d")
        .or_else(|| r.property("header.i").map(address_domain))
        .map(normalized)
        .filter(|d| !d.is_empty())
}

/// The domain of an address (after its last `@`), or the value itself when it has none.
fn address_domain(value: &str) -> &str {
    value.rsplit_once('@').map_or(value, |(_, d)| d)
}

/// Lower case, no surrounding blanks or angle brackets, no root dot.
fn normalized(domain: &str) -> String {
    domain
        .trim()
        .trim_matches(['<', '>'])
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// Relaxed alignment: equal, or the same organizational domain (public suffix list).
pub(crate) fn aligned(a: &str, b: &str) -> bool {
    let (a, b) = (normalized(a), normalized(b));
    if a.is_empty() || b.is_empty() || a.len() > 253 || b.len() > 253 {
        return false;
    }
    if a == b {
        return true;
    }
    match (organizational(&a), organizational(&b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// The registrable domain (`mail.customer.co.uk` → `customer.co.uk`); `None` for a bare
/// public suffix or a name that is not a domain.
fn organizational(domain: &str) -> Option<&str> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || matches!(c, '@' | '/' | '\\');
    if domain.contains(bad) || domain.split('.').any(str::is_empty) {
        return None;
    }
    psl::domain_str(domain)
}

/// Parses one header value: comments dropped, then `;`-separated result groups.
fn parse(value: &str) -> Header {
    let text = without_comments(value);
    let mut groups = split_outside_quotes(&text, ';').into_iter();
    let mut header = Header::default();
    if let Some(first) = groups.next() {
        let pairs = pairs(first);
        if pairs.is_empty() {
            // `authserv-id [version]`
            header.id = words(first).into_iter().next().filter(|w| !w.is_empty());
        } else {
            header.results.extend(result(pairs));
        }
    }
    header
        .results
        .extend(groups.filter_map(|g| result(pairs(g))));
    header
}

/// A result group's `key=value` pairs: the first is `method[/version]=result`.
fn result(pairs: Vec<(String, String)>) -> Option<MethodResult> {
    let mut pairs = pairs.into_iter();
    let (method, result) = pairs.next()?;
    let method = method.split('/').next().unwrap_or("").trim().to_string();
    Some(MethodResult {
        method,
        result: result.to_ascii_lowercase(),
        properties: pairs.filter(|(k, _)| k.contains('.')).collect(),
    })
}

/// The text with `(comments)` (nested, with `\` escapes) replaced by a space; quoted
/// strings are kept as they are.
fn without_comments(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        if depth > 0 {
            match c {
                '\\' => escaped = true,
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        out.push(' ');
                    }
                }
                _ => {}
            }
            continue;
        }
        match c {
            '\\' if quoted => {
                escaped = true;
                out.push(c);
            }
            '"' => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth = 1,
            '\r' | '\n' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// `text` split at `sep` where it is not inside a quoted string.
fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// One token: a quoted string (unquoted, escapes resolved) or a run up to a blank or `=`
/// (a value may hold `=`: base64, SRS addresses). `None` for a quote never closed.
fn token(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, stop_at_eq: bool) -> Option<String> {
    let mut out = String::new();
    if chars.next_if_eq(&'"').is_some() {
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                '"' => return Some(out),
                c => out.push(c),
            }
        }
        return None;
    }
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() || (stop_at_eq && c == '=') {
            break;
        }
        out.push(c);
        chars.next();
    }
    Some(out)
}

fn skip_blanks(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.next_if(|c| c.is_whitespace()).is_some() {}
}

/// The `key = value` pairs of a group (keys lower-cased), blanks around `=` allowed;
/// a pair whose quoted value is never closed is left out.
fn pairs(group: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = group.chars().peekable();
    loop {
        skip_blanks(&mut chars);
        if chars.peek().is_none() {
            return out;
        }
        let key = token(&mut chars, true).unwrap_or_default();
        skip_blanks(&mut chars);
        if chars.next_if_eq(&'=').is_none() {
            if key.is_empty() {
                // A stray character that starts no token.
                chars.next();
            }
            continue;
        }
        skip_blanks(&mut chars);
        if let Some(value) = token(&mut chars, false)
            && !key.is_empty()
        {
            out.push((key.to_ascii_lowercase(), value));
        }
    }
}

/// The blank-separated words of a group (quoted strings unquoted).
fn words(group: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = group.chars().peekable();
    loop {
        skip_blanks(&mut chars);
        if chars.peek().is_none() {
            return out;
        }
        out.extend(token(&mut chars, false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn check(headers: &[&str], from: &str, ids: &[&str]) -> AuthVerdict {
        judge(headers, Some(from), &trusted(ids))
    }

    fn passes(headers: &[&str], from: &str) -> bool {
        matches!(
            check(headers, from, &["mx.example.com"]),
            AuthVerdict::Pass(_)
        )
    }

    #[test]
    fn dmarc_pass_for_the_from_domain() {
        let v = check(
            &[
                "mx.example.com; dkim=pass header.d=customer.example; dmarc=pass (p=none) header.from=customer.example",
            ],
            "customer.example",
            &["mx.example.com"],
        );
        assert_eq!(
            v,
            AuthVerdict::Pass("dmarc=pass header.from=customer.example".into())
        );
        // A DMARC pass naming no From domain may be about another From header.
        assert!(!passes(&["mx.example.com; dmarc=pass"], "customer.example"));
        assert!(!passes(
            &["mx.example.com; dmarc=pass (p=reject) header.d=customer.example"],
            "customer.example"
        ));
        // ... while a DMARC fail naming none still counts against the mail.
        assert!(!passes(
            &["mx.example.com; dmarc=fail; dkim=pass header.d=customer.example"],
            "customer.example"
        ));
        // A DMARC pass for some other From is not about this mail.
        assert!(!passes(
            &["mx.example.com; dmarc=pass header.from=other.example"],
            "customer.example"
        ));
    }

    #[test]
    fn dkim_and_spf_need_alignment() {
        let aligned_dkim = "mx.example.com; dkim=pass header.d=mail.customer.example header.s=s1";
        assert!(passes(&[aligned_dkim], "customer.example"));
        assert!(passes(&[aligned_dkim], "shop.customer.example"));
        assert!(passes(
            &["mx.example.com; dkim=pass header.i=@Customer.Example"],
            "customer.example"
        ));
        assert!(!passes(
            &["mx.example.com; dkim=pass header.d=customer.example.evil.com"],
            "customer.example"
        ));
        assert!(!passes(
            &["mx.example.com; dkim=pass header.d=evilcustomer.example"],
            "customer.example"
        ));
        assert!(!passes(&["mx.example.com; dkim=pass"], "customer.example"));
        assert!(passes(
            &["mx.example.com; spf=pass smtp.mailfrom=bounce@Mail.Customer.Example"],
            "customer.example"
        ));
        assert!(passes(
            &["mx.example.com; spf=pass smtp.mailfrom=customer.example"],
            "customer.example"
        ));
        assert!(!passes(
            &["mx.example.com; spf=pass smtp.helo=customer.example"],
            "customer.example"
        ));
        assert!(!passes(
            &["mx.example.com; spf=pass smtp.mailfrom=x@esp.example"],
            "customer.example"
        ));
    }

    #[test]
    fn public_suffixes_are_not_organizations() {
        assert!(aligned("shop.customer.co.uk", "customer.co.uk"));
        assert!(!aligned("evil.co.uk", "customer.co.uk"));
        assert!(!aligned("evil.com.pl", "firma.com.pl"));
        assert!(aligned("a.firma.com.pl", "B.Firma.Com.Pl."));
        assert!(!aligned("co.uk", "co.uk.evil.example"));
        assert!(!aligned("", "customer.example"));
        assert!(!aligned("customer.example.evil.com", "customer.example"));
        assert!(aligned("CUSTOMER.example", "customer.EXAMPLE"));
        // Empty labels make no domain: no two of them share an organization.
        assert!(!aligned("evil..example", "customer..example"));
        assert!(!aligned(".example", "customer.example"));
    }

    #[test]
    fn other_results_do_not_pass() {
        for result in [
            "none",
            "fail",
            "softfail",
            "neutral",
            "temperror",
            "permerror",
            "policy",
        ] {
            assert!(
                !passes(
                    &[&format!(
                        "mx.example.com; dkim={result} header.d=customer.example; spf={result} smtp.mailfrom=customer.example"
                    )],
                    "customer.example"
                ),
                "{result}"
            );
        }
        assert!(!passes(&["mx.example.com; none"], "customer.example"));
        assert!(!passes(&["mx.example.com 1; none"], "customer.example"));
    }

    #[test]
    fn dmarc_fail_wins_over_dkim_and_spf() {
        let v = check(
            &[
                "mx.example.com; dkim=pass header.d=mail.customer.example; dmarc=fail (p=reject adkim=s) header.from=customer.example",
            ],
            "customer.example",
            &["mx.example.com"],
        );
        assert!(
            matches!(&v, AuthVerdict::Fail(why) if why.contains("dmarc=fail")),
            "{v:?}"
        );
    }

    #[test]
    fn only_the_topmost_trusted_header_counts() {
        let ours = "mx.example.com; dmarc=fail header.from=customer.example; spf=softfail smtp.mailfrom=customer.example";
        let forged = "mx.example.com; dmarc=pass header.from=customer.example";
        let stranger = "mx.evil.example; dmarc=pass header.from=customer.example";
        assert!(!passes(&[ours, forged], "customer.example"));
        assert!(!passes(&[stranger, ours, forged], "customer.example"));
        // Untrusted ids never count, wherever they are.
        assert!(!passes(&[stranger], "customer.example"));
        let v = check(&[stranger], "customer.example", &["mx.example.com"]);
        assert_eq!(
            v,
            AuthVerdict::Fail("no Authentication-Results header of mx.example.com".into())
        );
        // The trusted id matches whatever its case.
        assert!(passes(
            &["MX.Example.COM; dmarc=pass header.from=customer.example"],
            "customer.example"
        ));
        // A forged header below a trusted pass changes nothing either.
        assert!(passes(&[forged, ours], "customer.example"));
    }

    #[test]
    fn topmost_takes_the_first_header_whatever_its_id() {
        let microsoft = "spf=pass (sender IP is 192.0.2.1)\r\n smtp.mailfrom=customer.example; dkim=pass (signature was verified)\r\n header.d=customer.example;dmarc=pass action=none\r\n header.from=customer.example;compauth=pass reason=100";
        let forged_below = "mx.evil.example; dmarc=pass header.from=customer.example";
        let v = check(&[microsoft], "customer.example", &["topmost"]);
        assert_eq!(
            v,
            AuthVerdict::Pass("dmarc=pass header.from=customer.example".into())
        );
        let failing = "spf=fail smtp.mailfrom=customer.example; dmarc=fail action=quarantine header.from=customer.example";
        assert!(matches!(
            check(&[failing, forged_below], "customer.example", &["Topmost"]),
            AuthVerdict::Fail(_)
        ));
        // With no id, a Microsoft header never matches a named id.
        assert!(matches!(
            check(&[microsoft], "customer.example", &["mx.example.com"]),
            AuthVerdict::Fail(_)
        ));
    }

    #[test]
    fn comments_quotes_and_layout() {
        let header = parse(
            "mx.example.com (Postfix; \"quoted\" (nested)) 1;\r\n\tdkim=pass (2048-bit key; unprotected) header.d=customer.example header.i=\"@customer.example\" header.b=\"AbC=+/\";\r\n spf = pass smtp.mailfrom = \"bounce+x=y@customer.example\"; dmarc=pass (p=none dis=none) header.from=customer.example",
        );
        assert_eq!(header.id.as_deref(), Some("mx.example.com"));
        assert_eq!(header.results.len(), 3);
        assert_eq!(header.results[0].method, "dkim");
        assert_eq!(header.results[0].property("header.b"), Some("AbC=+/"));
        assert_eq!(
            header.results[0].property("header.i"),
            Some("@customer.example")
        );
        assert_eq!(
            header.results[1].property("smtp.mailfrom"),
            Some("bounce+x=y@customer.example")
        );
        // A `;` or `=` inside a comment or a quoted string separates nothing.
        let header = parse("\"mx.example.com\"; dkim=pass (a; b=c) header.d=\"x;y\"");
        assert_eq!(header.id.as_deref(), Some("mx.example.com"));
        assert_eq!(header.results.len(), 1);
        assert_eq!(header.results[0].property("header.d"), Some("x;y"));
        // A comment hiding a pass is still a comment.
        assert!(!passes(
            &[
                "mx.example.com; dkim=fail (dkim=pass header.d=customer.example) header.d=customer.example"
            ],
            "customer.example"
        ));
        // Method versions (`dkim/1`) and upper case are read.
        assert!(passes(
            &["mx.example.com; DKIM/1=PASS Header.D=customer.example"],
            "customer.example"
        ));
    }

    #[test]
    fn broken_headers_never_pass_or_panic() {
        for value in [
            "",
            ";",
            "mx.example.com",
            "mx.example.com; dkim",
            "mx.example.com; =pass",
            "mx.example.com; dkim=pass header.d=",
            "mx.example.com; dkim=pass header.d=\"customer.example",
            "mx.example.com; (dmarc=pass",
            "mx.example.com; dmarc=pass) header.from=x",
            "mx.example.com; dkim=pass header.d=@",
            "mx.example.com; spf=pass smtp.mailfrom=@",
            "mx.example.com; dkim=pass header.d=\\",
        ] {
            let v = check(&[value], "customer.example", &["mx.example.com"]);
            assert!(!matches!(v, AuthVerdict::Pass(_)), "{value:?}: {v:?}");
        }
    }

    #[test]
    fn nothing_to_check_or_nobody_to_check() {
        assert_eq!(
            judge(
                ["mx.example.com; dmarc=pass"],
                Some("customer.example"),
                &[]
            ),
            AuthVerdict::NotChecked
        );
        assert!(matches!(
            judge(["mx.example.com; dmarc=pass"], None, &trusted(&["mx.example.com"])),
            AuthVerdict::Fail(why) if why.contains("no From domain")
        ));
    }

    #[test]
    fn the_mail_s_own_headers_are_read_topmost_first() {
        let raw = "Authentication-Results: mx.example.com;\r\n dkim=pass header.d=customer.example\r\n\
            Received: from mail.customer.example by mx.example.com\r\n\
            Authentication-Results: mx.example.com; dkim=fail header.d=customer.example\r\n\
            From: a@customer.example\r\nSubject: x\r\n\r\nbody\r\n";
        let msg = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .expect("test mail parses");
        assert_eq!(
            authenticate(
                &msg,
                Some("customer.example"),
                &trusted(&["mx.example.com"])
            ),
            AuthVerdict::Pass("dkim=pass header.d=customer.example".into())
        );
    }
}
