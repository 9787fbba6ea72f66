//! What happens to a mail on the server once the bridge is done with it.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// `move:<folder>`, `flag:<keyword>`, `seen` or `delete`; for `on_unmatched` also
/// `new_ticket` (the mail becomes a ticket, then goes where `on_posted` says).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Disposition {
    Move(String),
    Flag(String),
    Seen,
    Delete,
    NewTicket,
}

impl Disposition {
    /// The folder this disposition needs to exist, if any.
    pub fn target_folder(&self) -> Option<&str> {
        match self {
            Disposition::Move(folder) => Some(folder),
            _ => None,
        }
    }
}

impl std::str::FromStr for Disposition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let expected =
            || format!("expected move:<folder>, flag:<keyword>, seen or delete, got {s:?}");
        match s.split_once(':') {
            Some(("move", folder)) if !folder.trim().is_empty() => {
                Ok(Disposition::Move(folder.trim().to_string()))
            }
            Some(("flag", keyword)) => {
                let keyword = keyword.trim();
                // RFC 3501 atom: no specials, no spaces, no leading backslash for keywords.
                let valid = !keyword.is_empty()
                    && keyword
                        .chars()
                        .all(|c| c.is_ascii_graphic() && !"(){%*\"\\]".contains(c));
                if valid {
                    Ok(Disposition::Flag(keyword.to_string()))
                } else {
                    Err(format!(
                        "flag keyword {keyword:?} is not a valid IMAP keyword (letters, digits, $, -, _, . only)"
                    ))
                }
            }
            None if s == "seen" => Ok(Disposition::Seen),
            None if s == "delete" => Ok(Disposition::Delete),
            None if s == "new_ticket" => Ok(Disposition::NewTicket),
            _ => Err(expected()),
        }
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disposition::Move(folder) => write!(f, "move:{folder}"),
            Disposition::Flag(keyword) => write!(f, "flag:{keyword}"),
            Disposition::Seen => f.write_str("seen"),
            Disposition::Delete => f.write_str("delete"),
            Disposition::NewTicket => f.write_str("new_ticket"),
        }
    }
}

impl<'de> Deserialize<'de> for Disposition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(
            "move:Processed".parse(),
            Ok(Disposition::Move("Processed".into()))
        );
        assert_eq!(
            "flag:$Thulium".parse(),
            Ok(Disposition::Flag("$Thulium".into()))
        );
        assert_eq!("seen".parse(), Ok(Disposition::Seen));
        assert_eq!("delete".parse(), Ok(Disposition::Delete));
        let err = "archive".parse::<Disposition>().unwrap_err();
        assert!(
            err.contains("expected move:<folder>, flag:<keyword>, seen or delete, got \"archive\"")
        );
        assert!("move:".parse::<Disposition>().is_err());
        assert!("flag:a b".parse::<Disposition>().is_err());
    }
}
