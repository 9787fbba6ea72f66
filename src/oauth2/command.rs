//! grant = "command": an external program prints the access token (a vault
//! client, `gcloud auth print-access-token`, a site script).

use super::error::TokenError;
use super::token::{AccessToken, lenient_seconds};
use secrecy::SecretString;
use serde::Deserialize;
use std::process::Stdio;
use std::time::Duration;

const GRANT: &str = "command";
/// A token helper that hangs must not hold the mailbox forever.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `argv` (no shell) and reads the token from its standard output.
pub(crate) async fn fetch(argv: &[String]) -> Result<AccessToken, TokenError> {
    run(argv, COMMAND_TIMEOUT).await
}

async fn run(argv: &[String], limit: Duration) -> Result<AccessToken, TokenError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(TokenError::setup(GRANT, "command is empty", ""));
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            TokenError::setup(
                GRANT,
                format!("cannot run {program}: {e}"),
                "check `command`",
            )
        })?;
    // On timeout the future, and with it the child (kill_on_drop), is dropped.
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| {
            TokenError::setup(
                GRANT,
                format!("{program} printed no token within {limit:?}"),
                "",
            )
        })?
        .map_err(|e| TokenError::setup(GRANT, format!("{program}: {e}"), ""))?;
    if !output.status.success() {
        return Err(TokenError::setup(
            GRANT,
            format!(
                "{program} failed ({}): {}",
                output.status,
                last_line(&output.stderr)
            ),
            "run the command by hand as the service user to see why",
        ));
    }
    parse_output(&output.stdout)
        .map_err(|e| TokenError::setup(GRANT, format!("{program}: {e}"), ""))
}

#[derive(Deserialize)]
struct JsonToken {
    access_token: SecretString,
    #[serde(default, deserialize_with = "lenient_seconds")]
    expires_in: Option<u64>,
}

/// A bare token on the first line (used for one login, its lifetime unknown),
/// or a JSON object with `access_token` and `expires_in` (cached like any other).
pub(crate) fn parse_output(stdout: &[u8]) -> Result<AccessToken, String> {
    let text = std::str::from_utf8(stdout).map_err(|_| "the output is not UTF-8".to_string())?;
    let text = text.trim();
    if text.starts_with('{') {
        let t: JsonToken = serde_json::from_str(text)
            .map_err(|_| "the JSON output has no access_token".to_string())?;
        return Ok(AccessToken::new(
            t.access_token,
            t.expires_in.map(Duration::from_secs),
        ));
    }
    let first = text.lines().next().unwrap_or("").trim();
    if first.is_empty() {
        return Err("printed no token".into());
    }
    if first.chars().any(char::is_whitespace) {
        return Err("the first line is not a token (it contains spaces)".into());
    }
    Ok(AccessToken::new(
        SecretString::from(first.to_string()),
        None,
    ))
}

/// The last line of stderr, short: enough to say why, little room for secrets.
fn last_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message");
    line.trim().chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn output_forms() {
        let t = parse_output(b"ya29.token\n").unwrap();
        assert_eq!(t.secret.expose_secret(), "ya29.token");
        assert_eq!(t.lifetime, None);
        let t = parse_output(br#"{"access_token":"a1","expires_in":"120"}"#).unwrap();
        assert_eq!(
            (t.secret.expose_secret(), t.lifetime),
            ("a1", Some(Duration::from_secs(120)))
        );
        assert!(parse_output(b"\n\n").is_err());
        assert!(parse_output(b"Error: not logged in\n").is_err());
        assert!(parse_output(br#"{"token":"x"}"#).is_err());
    }

    #[tokio::test]
    async fn runs_the_argv_and_reports_failures() {
        let t = fetch(&["sh".into(), "-c".into(), "echo tok-123".into()])
            .await
            .unwrap();
        assert_eq!(t.secret.expose_secret(), "tok-123");
        let e = fetch(&["sh".into(), "-c".into(), "echo nope >&2; exit 3".into()])
            .await
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("nope") && e.to_string().contains("exit status: 3"),
            "{e}"
        );
        let e = fetch(&["/nonexistent/helper".into()]).await.err().unwrap();
        assert!(
            e.to_string().contains("cannot run /nonexistent/helper"),
            "{e}"
        );
        let e = run(&["sleep".into(), "10".into()], Duration::from_millis(200))
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("no token within"), "{e}");
    }
}
