//! From a folder name in the config to the server's name for it, the same config on
//! every server: `/` separates levels; the personal namespace's prefix is added
//! (Courier and Cyrus without altnamespace keep every folder under `INBOX.`) unless the
//! name already starts with it or is INBOX; each level is written in modified UTF-7.

use super::utf7;

/// Where a user's own folders live (RFC 2342 NAMESPACE), and how levels are separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Namespace {
    /// `""` on Dovecot, Exchange, Gmail; `"INBOX."` on Courier and classic Cyrus.
    pub prefix: String,
    /// The hierarchy delimiter; `None` on a flat server.
    pub delimiter: Option<char>,
}

impl Default for Namespace {
    fn default() -> Self {
        Namespace {
            prefix: String::new(),
            delimiter: Some('/'),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FolderNameError {
    #[error(
        "{name:?} holds {delimiter:?}, which separates folder levels on this server; write levels with '/' (e.g. \"Archive/2026\"), or pick another name"
    )]
    HoldsDelimiter { name: String, delimiter: char },
    #[error("{name:?} has levels, but this server has no folder hierarchy")]
    Flat { name: String },
    #[error("{name:?} has an empty level")]
    EmptyLevel { name: String },
}

impl Namespace {
    /// The server's (modified UTF-7) name for a folder named `name` in the config.
    pub(crate) fn server_name(&self, name: &str) -> Result<String, FolderNameError> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("INBOX") {
            return Ok("INBOX".into());
        }
        let (prefix, rest, levels): (&str, &str, Vec<&str>) = match self.own_prefix(name) {
            // Already in the server's spelling: the delimiter separates levels too.
            Some(prefix) => {
                let rest = &name[prefix.len()..];
                let levels = rest
                    .split(|c| c == '/' || Some(c) == self.delimiter)
                    .collect();
                (prefix, rest, levels)
            }
            None => (self.prefix.as_str(), name, name.split('/').collect()),
        };
        if levels.iter().any(|l| l.is_empty()) {
            return Err(FolderNameError::EmptyLevel { name: name.into() });
        }
        let Some(delimiter) = self.delimiter else {
            if levels.len() > 1 {
                return Err(FolderNameError::Flat { name: name.into() });
            }
            return Ok(format!("{prefix}{}", utf7::encode(rest)));
        };
        if levels.iter().any(|l| l.contains(delimiter)) {
            return Err(FolderNameError::HoldsDelimiter {
                name: name.into(),
                delimiter,
            });
        }
        let encoded: Vec<String> = levels.iter().map(|l| utf7::encode(l)).collect();
        Ok(format!("{prefix}{}", encoded.join(&delimiter.to_string())))
    }

    /// The prefix as the config name spells it, when the name starts with it
    /// (case-insensitively for the INBOX part).
    fn own_prefix<'n>(&self, name: &'n str) -> Option<&'n str> {
        if self.prefix.is_empty() {
            return None;
        }
        let head = name.get(..self.prefix.len())?;
        head.eq_ignore_ascii_case(&self.prefix).then_some(head)
    }

    /// The parents of a server name, outermost first (for servers that do not create
    /// them with the folder).
    pub(crate) fn parents(&self, server_name: &str) -> Vec<String> {
        let Some(delimiter) = self.delimiter else {
            return Vec::new();
        };
        let inner = &server_name[self.prefix.len().min(server_name.len())..];
        let mut parents = Vec::new();
        for (i, c) in inner.char_indices() {
            if c == delimiter {
                parents.push(format!("{}{}", self.prefix, &inner[..i]));
            }
        }
        parents
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dovecot() -> Namespace {
        Namespace::default()
    }

    fn courier() -> Namespace {
        Namespace {
            prefix: "INBOX.".into(),
            delimiter: Some('.'),
        }
    }

    #[test]
    fn the_same_config_names_the_right_folder_everywhere() {
        let cases = [
            ("Processed", "Processed", "INBOX.Processed"),
            (
                "Archive/Replies",
                "Archive/Replies",
                "INBOX.Archive.Replies",
            ),
            ("INBOX", "INBOX", "INBOX"),
            ("inbox", "INBOX", "INBOX"),
            ("INBOX.Processed", "INBOX.Processed", "INBOX.Processed"),
            ("inbox.Processed", "inbox.Processed", "inbox.Processed"),
            (
                "INBOX.Archive.Replies",
                "INBOX.Archive.Replies",
                "INBOX.Archive.Replies",
            ),
            (
                "Obsłużone/2026",
                "Obs&AUI-u&AXw-one/2026",
                "INBOX.Obs&AUI-u&AXw-one.2026",
            ),
            (
                "Odpowiedzi klientów",
                "Odpowiedzi klient&APM-w",
                "INBOX.Odpowiedzi klient&APM-w",
            ),
        ];
        for (config, on_dovecot, on_courier) in cases {
            assert_eq!(
                dovecot().server_name(config).as_deref(),
                Ok(on_dovecot),
                "{config}"
            );
            assert_eq!(
                courier().server_name(config).as_deref(),
                Ok(on_courier),
                "{config}"
            );
        }
    }

    #[test]
    fn a_name_holding_the_servers_delimiter_is_refused() {
        let e = courier().server_name("Archive.2026").unwrap_err();
        assert_eq!(
            e,
            FolderNameError::HoldsDelimiter {
                name: "Archive.2026".into(),
                delimiter: '.'
            }
        );
        assert!(e.to_string().contains("Archive/2026"), "{e}");
        assert_eq!(
            dovecot().server_name("Archive.2026").as_deref(),
            Ok("Archive.2026")
        );
        assert!(dovecot().server_name("a//b").is_err());
        let flat = Namespace {
            prefix: String::new(),
            delimiter: None,
        };
        assert_eq!(flat.server_name("Processed").as_deref(), Ok("Processed"));
        assert!(flat.server_name("a/b").is_err());
    }

    #[test]
    fn parents_are_listed_outermost_first() {
        assert_eq!(
            courier().parents("INBOX.Obs&AUI-u&AXw-one.2026"),
            ["INBOX.Obs&AUI-u&AXw-one"]
        );
        assert_eq!(dovecot().parents("a/b/c"), ["a", "a/b"]);
        assert!(dovecot().parents("Processed").is_empty());
    }
}
