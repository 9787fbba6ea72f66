//! Secrets given inline or as a file (systemd credentials), never printed.

use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};

/// Why a secret file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// `%d`/`${CREDENTIALS_DIRECTORY}` outside the unit: systemd sets the directory
    /// only for the service, so an admin's `check` needs it said where the files are.
    #[error(
        "{path} refers to systemd's credentials directory, but $CREDENTIALS_DIRECTORY is set only inside the service (LoadCredential=). To check with the unit's credentials, run as root with it pointing at the files LoadCredential= loads (the shipped unit loads them from /etc/thulium-mail-bridge, each named as its credential): sudo env CREDENTIALS_DIRECTORY=/etc/thulium-mail-bridge thulium-mail-bridge --config <this file> check"
    )]
    NoCredentialsDirectory { path: PathBuf },
    /// The credentials directory is there but lacks this file: the unit has no
    /// `LoadCredential=` line for it.
    #[error(
        "{path}: no credential {name:?} in $CREDENTIALS_DIRECTORY; add LoadCredential={name}:/etc/thulium-mail-bridge/{name} to the unit (systemctl edit thulium-mail-bridge) and restart it"
    )]
    NoCredential { path: PathBuf, name: String },
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is empty")]
    Empty { path: PathBuf },
}

/// Why a secret (inline or as a file) could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("neither given")]
    Missing,
    #[error("both given")]
    Both,
    #[error(transparent)]
    File(#[from] SecretFileError),
}

/// Expands `%d` and `${CREDENTIALS_DIRECTORY}` so a config can point into
/// systemd's `LoadCredential=` directory without knowing its path.
pub fn expand_credentials_dir(path: &Path) -> Result<PathBuf, SecretFileError> {
    let text = path.to_string_lossy();
    if !text.contains("%d") && !text.contains("${CREDENTIALS_DIRECTORY}") {
        return Ok(path.to_path_buf());
    }
    let dir = std::env::var("CREDENTIALS_DIRECTORY").map_err(|_| {
        SecretFileError::NoCredentialsDirectory {
            path: path.to_path_buf(),
        }
    })?;
    Ok(PathBuf::from(
        text.replace("${CREDENTIALS_DIRECTORY}", &dir)
            .replace("%d", &dir),
    ))
}

/// Reads a secret file; surrounding whitespace (the usual trailing newline) is dropped.
pub fn read_secret_file(path: &Path) -> Result<SecretString, SecretFileError> {
    let expanded = expand_credentials_dir(path)?;
    let text = match std::fs::read_to_string(&expanded) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && expanded != path => {
            return Err(SecretFileError::NoCredential {
                name: expanded
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path: expanded,
            });
        }
        Err(source) => {
            return Err(SecretFileError::Unreadable {
                path: expanded,
                source,
            });
        }
    };
    let path = expanded;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(SecretFileError::Empty { path });
    }
    Ok(SecretString::from(trimmed.to_string()))
}

/// Exactly one of an inline secret and a secret file, resolved to the secret.
pub(super) fn resolve(
    inline: Option<&SecretString>,
    file: Option<&Path>,
) -> Result<SecretString, SecretError> {
    match (inline, file) {
        (Some(s), None) => Ok(s.clone()),
        (None, Some(f)) => Ok(read_secret_file(f)?),
        (Some(_), Some(_)) => Err(SecretError::Both),
        (None, None) => Err(SecretError::Missing),
    }
}

/// Deserializes an inline secret. A value of the wrong type (an unquoted number, say)
/// is named by its type only: serde's own message would quote the value.
pub(super) fn inline<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    match toml::Value::deserialize(d)? {
        toml::Value::String(s) => Ok(Some(SecretString::from(s))),
        other => Err(serde::de::Error::custom(format!(
            "must be a quoted string, not {} (the value is not shown: it is a secret)",
            other.type_str()
        ))),
    }
}

/// `url` with anything that may be `user:password@` shown as `***@`: for a URL that
/// did not parse, everything between the scheme's `://` (or the start) and the last
/// `@`, since where its userinfo ends cannot be trusted.
pub(super) fn without_userinfo(url: &str) -> String {
    let Some(at) = url.rfind('@') else {
        return url.to_string();
    };
    let start = url
        .find("://")
        .filter(|&i| {
            let scheme = &url[..i];
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        })
        .map_or(0, |i| i + 3)
        .min(at);
    format!("{}***@{}", &url[..start], &url[at + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_hidden_wherever_it_may_end() {
        assert_eq!(
            without_userinfo("https://u:hunter2@x.example/api"),
            "https://***@x.example/api"
        );
        // A password holding `/`, `:` or `@` is hidden whole.
        assert_eq!(
            without_userinfo("https://u:p/a@ss@x.example/api"),
            "https://***@x.example/api"
        );
        assert_eq!(without_userinfo("u:pa://ss@x.example"), "***@x.example");
        assert_eq!(
            without_userinfo("https://x.example/api"),
            "https://x.example/api"
        );
    }
}
