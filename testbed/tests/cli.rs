//! The `testbed` binary as a shell script would drive it.

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};
use testbed::wait_until_blocking;

const BIN: &str = env!("CARGO_BIN_EXE_testbed");

fn env_value(env: &str, key: &str) -> String {
    env.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim_matches('\'').to_string())
        .unwrap_or_else(|| panic!("{key} missing from env:\n{env}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn up_append_dump_and_down() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut up = KillOnDrop(
        Command::new(BIN)
            .args(["up", "--dir"])
            .arg(dir.path())
            .args(["--user", "support:secret", "--user", "sales@example.com:pw"])
            .args(["--ticket", "1234:customer@example.com"])
            .stdin(Stdio::null())
            .spawn()?,
    );
    let env_file = dir.path().join("env");
    wait_until_blocking("DIR/env", Duration::from_secs(30), || env_file.exists())?;
    let env = fs::read_to_string(&env_file)?;
    for key in [
        "IMAP_PLAIN_PORT",
        "IMAP_TLS_PORT",
        "CA_FILE",
        "API_PASSWORD",
        "MAILDIR_SALES_EXAMPLE_COM",
    ] {
        assert!(!env_value(&env, key).is_empty());
    }
    assert!(fs::metadata(env_value(&env, "CA_FILE"))?.is_file());

    let eml = dir.path().join("reply.eml");
    fs::write(
        &eml,
        "From: customer@example.com\r\nSubject: [#1234] hi\r\n\r\nHello\r\n",
    )?;
    let status = Command::new(BIN)
        .args(["append", "--dir"])
        .arg(dir.path())
        .args(["--user", "support", "--folder", "INBOX"])
        .arg(&eml)
        .status()?;
    assert!(status.success());

    let response = reqwest::Client::new()
        .post(format!(
            "{}/tickets/1234/customer_response",
            env_value(&env, "API_URL")
        ))
        .basic_auth(
            env_value(&env, "API_USER"),
            Some(env_value(&env, "API_PASSWORD")),
        )
        .json(&json!({"body": "Hello", "body_type": "PLAIN"}))
        .send()
        .await?;
    assert_eq!(response.status(), 200);

    let dump = Command::new(BIN)
        .args(["dump", "--dir"])
        .arg(dir.path())
        .output()?;
    assert!(dump.status.success());
    let dump = String::from_utf8(dump.stdout)?;
    assert!(dump.contains("[#1234] hi"), "{dump}");
    assert!(
        dump.contains("/api/tickets/1234/customer_response -> 200"),
        "{dump}"
    );

    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(up.0.id() as libc::pid_t, libc::SIGTERM) };
    let status = up.0.wait()?;
    assert!(status.success(), "{status}");
    let requests: Value = serde_json::from_slice(&fs::read(dir.path().join("api-requests.json"))?)?;
    assert_eq!(requests[0]["body"]["body"], "Hello");
    assert!(
        !env_file.exists(),
        "env is removed when the testbed is down"
    );
    Ok(())
}

/// Kills `testbed up` if the test fails half-way.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
