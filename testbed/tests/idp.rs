//! The fake IdP on its own and behind Dovecot's oauth2 passdb.

#[allow(dead_code, reason = "shared with the other test files")]
mod support;

use std::time::Duration;

use anyhow::Result;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;
use support::Imap;
use testbed::{Dovecot, DovecotOptions, FakeIdp};
use tokio::net::TcpStream;

async fn form(url: &str, params: &[(&str, &str)]) -> Result<(u16, Value)> {
    let body: String = params
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn xoauth2_login(dovecot: &Dovecot, user: &str, token: &str) -> Result<()> {
    let stream = TcpStream::connect((dovecot.host(), dovecot.plain_port())).await?;
    let mut imap = Imap::greeted(stream).await?;
    let sasl = BASE64.encode(format!("user={user}\x01auth=Bearer {token}\x01\x01"));
    imap.send(&format!("a1 AUTHENTICATE XOAUTH2 {sasl}\r\n"))
        .await?;
    loop {
        let line = imap.read_line(Duration::from_secs(10)).await?;
        if line.starts_with('+') {
            // The XOAUTH2 error challenge wants an empty answer.
            imap.send("\r\n").await?;
        } else if let Some(rest) = line.strip_prefix("a1 ") {
            anyhow::ensure!(rest.starts_with("OK"), "{rest}");
            return Ok(());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dovecot_accepts_live_tokens_and_refuses_others() -> Result<()> {
    let idp = FakeIdp::start().await?;
    let dovecot = Dovecot::start_with(DovecotOptions {
        oauth2_introspection_url: Some(idp.introspection_url()),
        ..DovecotOptions::default()
    })?;
    dovecot.add_user("support", "pw")?;
    dovecot.add_user("sales", "pw2")?;

    // Password logins still work next to the oauth2 passdb.
    let stream = TcpStream::connect((dovecot.host(), dovecot.plain_port())).await?;
    let mut imap = Imap::greeted(stream).await?;
    imap.command("LOGIN sales pw2").await?;

    let token = idp.issue_access_token("support");
    xoauth2_login(&dovecot, "support", &token).await?;
    // A token for another user and a revoked one are refused (each failure
    // makes Dovecot's per-IP penalty longer, so only these two).
    let err = xoauth2_login(&dovecot, "sales", &token).await.unwrap_err();
    assert!(format!("{err}").contains("AUTHENTICATIONFAILED"), "{err}");
    idp.revoke_access_tokens();
    let err = xoauth2_login(&dovecot, "support", &token)
        .await
        .unwrap_err();
    assert!(format!("{err}").contains("AUTHENTICATIONFAILED"), "{err}");

    let seen: Vec<(bool, Option<String>)> = idp
        .introspections()
        .into_iter()
        .map(|i| (i.active, i.reason))
        .collect();
    assert_eq!(
        seen,
        [(true, None), (true, None), (false, Some("revoked".into()))],
        "the password login never reached the IdP"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_tokens_are_inactive() -> Result<()> {
    let idp = FakeIdp::start().await?;
    idp.set_token_lifetime(Duration::from_secs(1));
    let dovecot = Dovecot::start_with(DovecotOptions {
        oauth2_introspection_url: Some(idp.introspection_url()),
        ..DovecotOptions::default()
    })?;
    dovecot.add_user("support", "pw")?;
    let token = idp.issue_access_token("support");
    testbed::wait_until("token expiry", Duration::from_secs(30), || {
        idp.issued().iter().all(|t| t.expired)
    })
    .await?;
    assert!(xoauth2_login(&dovecot, "support", &token).await.is_err());
    assert_eq!(idp.introspections()[0].reason.as_deref(), Some("expired"));
    Ok(())
}

#[tokio::test]
async fn grants_check_secrets_and_rotate_refresh_tokens() -> Result<()> {
    let idp = FakeIdp::start().await?;
    let url = idp.token_url();
    idp.add_client("app", Some("s1"));
    idp.grant_mailbox("app", "support");

    let (status, body) = form(
        &url,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "app"),
            ("client_secret", "s1"),
        ],
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string() && body["expires_in"] == 3600);

    idp.set_client_secret("app", "s2");
    let (status, body) = form(
        &url,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "app"),
            ("client_secret", "s1"),
        ],
    )
    .await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    idp.set_rotate_refresh_tokens(true);
    let rt = idp.issue_refresh_token("app", "support");
    let params = |rt: &str| {
        vec![
            ("grant_type", "refresh_token".to_string()),
            ("client_id", "app".into()),
            ("client_secret", "s2".into()),
            ("refresh_token", rt.to_string()),
        ]
    };
    let p = params(&rt);
    let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = form(&url, &p).await?;
    assert_eq!(status, 200, "{body}");
    let new_rt = body["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!new_rt.is_empty() && new_rt != rt);
    // The old one was rotated away.
    let (status, body) = form(&url, &p).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(idp.live_refresh_tokens("support"), [new_rt]);
    Ok(())
}

#[tokio::test]
async fn device_flow_goes_pending_slow_down_then_approved() -> Result<()> {
    let idp = FakeIdp::start().await?;
    idp.add_client("public", None);
    idp.set_slow_down_first(1);
    let (status, auth) = form(
        &idp.device_authorization_url(),
        &[("client_id", "public"), ("scope", "offline_access")],
    )
    .await?;
    assert_eq!(status, 200, "{auth}");
    let code = auth["device_code"].as_str().unwrap_or_default().to_string();
    let poll = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", "public"),
        ("device_code", code.as_str()),
    ];
    let (_, b) = form(&idp.token_url(), &poll).await?;
    assert_eq!(b["error"], "slow_down");
    let (_, b) = form(&idp.token_url(), &poll).await?;
    assert_eq!(b["error"], "authorization_pending");
    let user_code = auth["user_code"].as_str().unwrap_or_default();
    assert_eq!(idp.pending_user_codes(), [user_code]);
    assert!(idp.approve_device(user_code, "support"));
    let (status, b) = form(&idp.token_url(), &poll).await?;
    assert_eq!(status, 200, "{b}");
    assert!(b["refresh_token"].is_string());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_secret_works_during_a_rotation_and_requests_say_which_was_used() -> Result<()> {
    let idp = FakeIdp::start().await?;
    idp.add_client("app", Some("old-Secret-1"));
    idp.grant_mailbox("app", "support");
    let ask = |secret: &'static str| {
        let url = idp.token_url();
        async move {
            form(
                &url,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "app"),
                    ("client_secret", secret),
                ],
            )
            .await
        }
    };
    assert_eq!(ask("new-Secret-2").await?.0, 401, "not yet accepted");
    idp.add_client_secret("app", "new-Secret-2");
    assert_eq!(ask("new-Secret-2").await?.0, 200);
    assert_eq!(ask("old-Secret-1").await?.0, 200, "the old one still works");
    let used: Vec<(Option<String>, u16)> = idp
        .requests()
        .into_iter()
        .map(|r| (r.client_secret, r.status))
        .collect();
    assert_eq!(
        used,
        [
            (Some("new-Secret-2".to_string()), 401),
            (Some("new-Secret-2".to_string()), 200),
            (Some("old-Secret-1".to_string()), 200),
        ]
    );
    assert!(idp.secrets().contains(&"new-Secret-2".to_string()));
    Ok(())
}
