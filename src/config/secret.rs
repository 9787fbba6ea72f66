//! Secrets given inline or as a file (systemd credentials), never printed.

use secrecy::SecretString;
use std::path::{Path, PathBuf};

/// Expands `%d` and `${CREDENTIALS_DIRECTORY}` so a config can point into
/// systemd's `LoadCredential=` directory without knowing its path.
pub fn expand_credentials_dir(path: &Path) -> Result<PathBuf, String> {
    let text = path.to_string_lossy();
    if !text.contains("%d") && !text.contains("${CREDENTIALS_DIRECTORY}") {
        return Ok(path.to_path_buf());
    }
    let dir = std::env::var("CREDENTIALS_DIRECTORY").map_err(|_| {
        format!(
            "{} refers to the credentials directory, but $CREDENTIALS_DIRECTORY is not set (is LoadCredential= in the unit?)",
            path.display()
        )
    })?;
    Ok(PathBuf::from(
        text.replace("${CREDENTIALS_DIRECTORY}", &dir)
            .replace("%d", &dir),
    ))
}

/// Reads a secret file; surrounding whitespace (the usual trailing newline) is dropped.
pub fn read_secret_file(path: &Path) -> Result<SecretString, String> {
    let path = expand_credentials_dir(path)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(SecretString::from(trimmed.to_string()))
}

/// Exactly one of an inline secret and a secret file, resolved to the secret.
pub fn resolve(
    inline: Option<&SecretString>,
    file: Option<&Path>,
    what: &str,
) -> Result<SecretString, (String, String)> {
    match (inline, file) {
        (Some(s), None) => Ok(s.clone()),
        (None, Some(f)) => read_secret_file(f).map_err(|e| (format!("{what}_file"), e)),
        (Some(_), Some(_)) => Err((
            what.to_string(),
            format!("set only one of {what} and {what}_file"),
        )),
        (None, None) => Err((
            what.to_string(),
            format!("one of {what} or {what}_file is required"),
        )),
    }
}
