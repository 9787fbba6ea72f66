//! `deny_senders` / `allow_senders`: glob patterns on the From address.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// `deny_senders` / `allow_senders` glob patterns on the From address, compiled.
///
/// Case-insensitive (addresses are, in practice), and `*` crosses every
/// character, so `*@example.com` and `bob@*` mean what an admin expects.
#[derive(Debug, Clone)]
pub struct SenderRules {
    deny: PatternList,
    allow: PatternList,
}

/// One config list of address globs: the patterns as written (for the reason) and
/// their matcher (also `[thulium] agents`).
#[derive(Debug, Clone)]
pub struct PatternList {
    patterns: Vec<String>,
    set: GlobSet,
}

impl SenderRules {
    /// Compiles the globs; the error is (key within `[filters]`, message), e.g. ("deny_senders[2]", "...").
    pub fn new(deny: &[String], allow: &[String]) -> Result<Self, (String, String)> {
        Ok(SenderRules {
            deny: PatternList::new("deny_senders", deny)?,
            allow: PatternList::new("allow_senders", allow)?,
        })
    }

    /// Why this sender may not post, if it may not (`from` is the bare address, any case).
    pub fn refusal(&self, from: &str) -> Option<String> {
        let from = from.trim().to_lowercase();
        if let Some(pattern) = self.deny.first_match(&from) {
            return Some(format!("sender {from} matches deny_senders {pattern:?}"));
        }
        if !self.allow.patterns.is_empty() && self.allow.first_match(&from).is_none() {
            return Some(format!("sender {from} not in allow_senders"));
        }
        None
    }
}

impl PatternList {
    /// Compiles the globs; the error is (`key[i]`, message).
    pub fn new(key: &str, patterns: &[String]) -> Result<Self, (String, String)> {
        let mut set = GlobSetBuilder::new();
        for (i, pattern) in patterns.iter().enumerate() {
            let glob = compile(pattern).map_err(|e| (format!("{key}[{i}]"), e))?;
            set.add(glob);
        }
        let set = set
            .build()
            .map_err(|e| (key.to_string(), format!("cannot compile the patterns: {e}")))?;
        Ok(PatternList {
            patterns: patterns.iter().map(|p| p.trim().to_string()).collect(),
            set,
        })
    }

    /// The first pattern, in config order, that matches.
    pub fn first_match(&self, address: &str) -> Option<&str> {
        let index = self.set.matches(address).into_iter().min()?;
        self.patterns.get(index).map(String::as_str)
    }
}

/// One pattern: trimmed, not empty, no blanks inside (an address has none,
/// so such a pattern is a typo that would silently never match).
fn compile(pattern: &str) -> Result<Glob, String> {
    let trimmed = pattern.trim();
    if trimmed.is_empty() {
        return Err("empty pattern".into());
    }
    if trimmed.chars().any(char::is_whitespace) {
        return Err(format!("{pattern:?} contains blanks; an address has none"));
    }
    GlobBuilder::new(trimmed)
        .case_insensitive(true)
        .literal_separator(false)
        .build()
        .map_err(|e| format!("{pattern:?} is not a valid glob: {}", e.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(deny: &[&str], allow: &[&str]) -> SenderRules {
        let list = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match SenderRules::new(&list(deny), &list(allow)) {
            Ok(r) => r,
            Err(e) => panic!("rules did not compile: {e:?}"),
        }
    }

    #[test]
    fn empty_lists_refuse_nobody() {
        assert_eq!(rules(&[], &[]).refusal("anyone@anywhere.example"), None);
    }

    #[test]
    fn deny_by_domain_case_insensitive() {
        let r = rules(&["*@Spam.Example"], &[]);
        assert_eq!(
            r.refusal("Bob@SPAM.example").as_deref(),
            Some("sender bob@spam.example matches deny_senders \"*@Spam.Example\"")
        );
        assert_eq!(r.refusal("bob@ham.example"), None);
        // A subdomain is another domain.
        assert_eq!(r.refusal("bob@mx.spam.example"), None);
    }

    #[test]
    fn deny_by_local_part() {
        let r = rules(&["noreply@*", "bob@*"], &[]);
        assert!(r.refusal("bob@a.example").is_some());
        assert!(r.refusal("NoReply@b.example").is_some());
        assert_eq!(r.refusal("bobby@a.example"), None);
    }

    #[test]
    fn first_matching_deny_pattern_is_named() {
        let r = rules(&["x@*", "*@y.example", "*"], &[]);
        assert_eq!(
            r.refusal("a@y.example").as_deref(),
            Some("sender a@y.example matches deny_senders \"*@y.example\"")
        );
    }

    #[test]
    fn allow_list_admits_only_its_senders() {
        let r = rules(&[], &["*@customer.example", "vip@*"]);
        assert_eq!(r.refusal("anna@customer.example"), None);
        assert_eq!(r.refusal("VIP@elsewhere.example"), None);
        assert_eq!(
            r.refusal("eve@elsewhere.example").as_deref(),
            Some("sender eve@elsewhere.example not in allow_senders")
        );
    }

    #[test]
    fn deny_wins_over_allow() {
        let r = rules(&["boss@customer.example"], &["*@customer.example"]);
        assert!(r.refusal("boss@customer.example").is_some());
        assert_eq!(r.refusal("anna@customer.example"), None);
    }

    #[test]
    fn character_classes_and_alternatives() {
        let r = rules(
            &["{a,b}@x.example", "user[0-9]@x.example", "?@y.example"],
            &[],
        );
        assert!(r.refusal("a@x.example").is_some());
        assert!(r.refusal("user7@x.example").is_some());
        assert!(r.refusal("z@y.example").is_some());
        assert_eq!(r.refusal("c@x.example"), None);
        assert_eq!(r.refusal("zz@y.example"), None);
    }

    #[test]
    fn errors_name_the_key_and_index() {
        let (key, message) = SenderRules::new(&["ok@*".into(), "[bad".into()], &[])
            .err()
            .unwrap_or_default();
        assert_eq!(key, "deny_senders[1]");
        assert!(message.contains("\"[bad\""), "{message}");

        let (key, message) = SenderRules::new(&[], &["  ".into()])
            .err()
            .unwrap_or_default();
        assert_eq!(
            (key.as_str(), message.as_str()),
            ("allow_senders[0]", "empty pattern")
        );

        let (key, message) = SenderRules::new(&[], &["a@x.example, b@x.example".into()])
            .err()
            .unwrap_or_default();
        assert_eq!(key, "allow_senders[0]");
        assert!(message.contains("blanks"), "{message}");
    }
}
