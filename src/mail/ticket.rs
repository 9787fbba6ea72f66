//! Finding the Thulium ticket number in a subject.

use regex::Regex;

/// Subject bytes searched for a ticket id: a real subject is far shorter, and one
/// longer than this is a hostile one.
pub(crate) const MAX_SUBJECT: usize = 16 << 10;

/// The default ticket tags: `[#1234]`, `[TH#1234]`, `[Ticket#1234]`, `[TH-1234]`.
pub const DEFAULT_SUBJECT_PATTERN: &str =
    r"(?i)\[\s*(?:(?:TH|Ticket)\s*#|#|TH-)\s*(?P<id>[0-9]{1,12})\s*\]";

/// The configured subject patterns, compiled; each has a named group `id`.
#[derive(Debug, Clone)]
pub struct TicketMatcher {
    patterns: Vec<Regex>,
}

/// What the subject said about the ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectMatch {
    /// Pattern number `pattern` found this one ticket.
    Ticket {
        id: u64,
        pattern: usize,
    },
    /// One subject names two different tickets (the first two found): posting to
    /// either could be wrong.
    Ambiguous(Vec<u64>),
    None,
}

impl TicketMatcher {
    /// Compiles the patterns; the error names the index of the bad pattern.
    pub fn new(patterns: &[String]) -> Result<Self, (usize, String)> {
        if patterns.is_empty() {
            return Err((0, "at least one pattern is required".into()));
        }
        let patterns = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let re = regex::RegexBuilder::new(p)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| (i, format!("not a valid regex: {e}")))?;
                if !re.capture_names().any(|n| n == Some("id")) {
                    return Err((
                        i,
                        format!("{p:?} has no named group `id`, e.g. (?P<id>[0-9]+)"),
                    ));
                }
                Ok(re)
            })
            .collect::<Result<_, _>>()?;
        Ok(TicketMatcher { patterns })
    }

    /// The first pattern that matches decides; within it, two different ids are ambiguous.
    ///
    /// Only the first [`MAX_SUBJECT`] bytes are read and the search stops at the second
    /// id, so a hostile subject (thousands of tags) costs no more than a long one.
    pub fn find(&self, subject: &str) -> SubjectMatch {
        let subject = subject
            .get(..subject.floor_char_boundary(MAX_SUBJECT))
            .unwrap_or(subject);
        for (pattern, re) in self.patterns.iter().enumerate() {
            let mut first: Option<u64> = None;
            for caps in re.captures_iter(subject) {
                let Some(id) = caps
                    .name("id")
                    .and_then(|m| m.as_str().trim().parse::<u64>().ok())
                    .filter(|&id| id != 0)
                else {
                    continue;
                };
                match first {
                    None => first = Some(id),
                    Some(f) if f != id => return SubjectMatch::Ambiguous(vec![f, id]),
                    Some(_) => {}
                }
            }
            if let Some(id) = first {
                return SubjectMatch::Ticket { id, pattern };
            }
        }
        SubjectMatch::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> TicketMatcher {
        TicketMatcher::new(&[DEFAULT_SUBJECT_PATTERN.to_string()]).unwrap()
    }

    fn id(subject: &str) -> Option<u64> {
        match default().find(subject) {
            SubjectMatch::Ticket { id, .. } => Some(id),
            _ => None,
        }
    }

    #[test]
    fn default_takes_the_documented_tags() {
        assert_eq!(id("Re: Problem z fakturą [#1234]"), Some(1234));
        assert_eq!(id("Odp: [TH#1234] Reklamacja"), Some(1234));
        assert_eq!(id("AW: [Ticket#98765] Lieferung"), Some(98765));
        assert_eq!(id("Fwd: [TH-42] hello"), Some(42));
        assert_eq!(id("RE: [ticket#7]"), Some(7));
    }

    #[test]
    fn default_refuses_look_alikes() {
        assert_eq!(id("Re: Report [1/2]"), None);
        assert_eq!(id("Re: Budget [2024]"), None);
        assert_eq!(id("Re: order 1234"), None);
        assert_eq!(id("Re: #1234 without brackets"), None);
        assert_eq!(id("Re: [#0]"), None);
    }

    #[test]
    fn two_tickets_are_ambiguous_and_repeats_are_not() {
        assert_eq!(
            default().find("Re: [#1] and [#2]"),
            SubjectMatch::Ambiguous(vec![1, 2])
        );
        assert!(matches!(
            default().find("Re: [#5] Re: [TH#5]"),
            SubjectMatch::Ticket { id: 5, .. }
        ));
    }

    #[test]
    fn patterns_are_tried_in_order_and_need_an_id_group() {
        let m = TicketMatcher::new(&[r"CASE-(?P<id>\d+)".into(), DEFAULT_SUBJECT_PATTERN.into()])
            .unwrap();
        assert_eq!(
            m.find("[#9] CASE-3"),
            SubjectMatch::Ticket { id: 3, pattern: 0 }
        );
        assert_eq!(m.find("[#9]"), SubjectMatch::Ticket { id: 9, pattern: 1 });
        let err = TicketMatcher::new(&[r"\d+".into()]).unwrap_err();
        assert_eq!(err.0, 0);
        assert!(err.1.contains("named group `id`"));
        assert!(TicketMatcher::new(&["(".into()]).is_err());
    }

    #[test]
    fn a_flood_of_tags_is_ambiguous_and_only_the_start_is_read() {
        let tags: String = (1..=200_000).map(|i| format!("[#{i}] ")).collect();
        assert_eq!(default().find(&tags), SubjectMatch::Ambiguous(vec![1, 2]));
        let same = "[#7] ".repeat(200_000);
        assert_eq!(
            default().find(&same),
            SubjectMatch::Ticket { id: 7, pattern: 0 }
        );
        let late = format!("{}[#8]", "x".repeat(MAX_SUBJECT));
        assert_eq!(default().find(&late), SubjectMatch::None);
        // The cut never splits a character.
        let wide = format!("[#9] {}", "ż".repeat(MAX_SUBJECT));
        assert_eq!(
            default().find(&wide),
            SubjectMatch::Ticket { id: 9, pattern: 0 }
        );
    }

    proptest::proptest! {
        #[test]
        fn any_tag_form_in_any_text_is_found(
            id in 1u64..=999_999_999_999,
            form in 0usize..4,
            before in "[^\\[\\]#]{0,40}",
            after in "[^\\[\\]#]{0,40}",
        ) {
            let tag = ["#", "TH#", "Ticket#", "TH-"][form];
            let subject = format!("{before}[{tag}{id}]{after}");
            proptest::prop_assert_eq!(default().find(&subject), SubjectMatch::Ticket { id, pattern: 0 });
        }

        #[test]
        fn brackets_without_a_tag_never_match(n in 0u64..100_000, text in "[^#\\[\\]]{0,60}") {
            let subject = format!("Re: {text} [{n}] [{n}/2] {n}");
            proptest::prop_assert_eq!(default().find(&subject), SubjectMatch::None);
        }

        #[test]
        fn any_subject_is_answered(subject in "\\PC{0,300}") {
            let _ = default().find(&subject);
        }
    }
}
