//! `check`: prove the config works, one line per check, before the daemon is trusted with mail.

use crate::config::Config;
use crate::daemon::worker;
use crate::thulium::ThuliumClient;

/// Prints `ok` / `FAIL` lines; Ok(false) when anything failed.
pub fn run(config: Config) -> anyhow::Result<bool> {
    crate::imap::tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut ok = true;
        let mut report = |passed: bool, what: String| {
            println!("{} {what}", if passed { "ok  " } else { "FAIL" });
            ok &= passed;
        };
        report(true, format!("config: {} mailbox(es), rules compiled", config.mailboxes.len()));
        for w in &config.warnings {
            report(true, format!("config warning: {w}"));
        }
        match crate::ledger::Ledger::open(&config.state.dir) {
            Ok(ledger) => {
                report(true, format!("state: ledger in {} is writable", config.state.dir.display()));
                match ledger.clock_observations() {
                    Ok(seen) => {
                        let clock = crate::thulium::api_clock::ApiClock::learn(config.timezone(), seen);
                        report(true, format!("api clock: {}", clock.describe()));
                    }
                    Err(e) => report(false, format!("api clock: {e}")),
                }
            }
            Err(e) => report(false, format!("state: {e}")),
        }
        let verify = config.thulium.verify_sender;
        let checks = config.mailboxes.iter().map(|mb| async move {
            let mut lines = Vec::new();
            if mb.trusted_authserv_id.is_empty() && verify != crate::config::VerifySender::Off {
                lines.push((
                    true,
                    format!(
                        "mailbox {}: warning: From is not authenticated (trusted_authserv_id is empty), so a forged From that names a ticket's customer passes verify_sender. Set trusted_authserv_id to the id the receiving server writes in Authentication-Results: Google Workspace \"mx.google.com\"; Microsoft 365 \"topmost\" (it writes no id; it replaces incoming headers); Postfix with OpenDMARC the AuthservID of opendmarc.conf (often the host name)",
                        mb.name
                    ),
                ));
            }
            // An OAuth2 mailbox gets two lines: the IdP's part and the IMAP server's.
            if let Some(o) = &mb.oauth2 {
                let grant = o.grant.name();
                match crate::oauth2::TokenCache::global().token(mb, false).await {
                    Ok(_) => lines.push((true, format!("mailbox {}: OAuth2 token from {grant}", mb.name))),
                    Err(e) => {
                        lines.push((false, format!("mailbox {}: OAuth2 token from {grant}: {e}", mb.name)));
                        lines.push((false, format!("mailbox {}: IMAP login not tried without a token", mb.name)));
                        return lines;
                    }
                }
            }
            let result = async {
                let session = worker::open(mb, false, crate::imap::CHECK_GREETING).await?;
                let exists = session.selected().map_or(0, |s| s.exists);
                let (pinned, expired) = (session.pinned(), session.expired_pin_warning());
                session.logout().await;
                Ok::<_, crate::imap::ImapError>((exists, pinned, expired))
            }
            .await;
            let how = match &mb.oauth2 {
                Some(o) => match o.mechanism {
                    crate::config::SaslMechanism::Xoauth2 => " with XOAUTH2",
                    crate::config::SaslMechanism::Oauthbearer => " with OAUTHBEARER",
                },
                None => "",
            };
            match result {
                Ok((exists, pinned, expired)) => {
                    lines.push((
                        true,
                        format!(
                            "mailbox {}: logged in to {}:{} as {}{how}{}, {} holds {} mail(s), target folders exist",
                            mb.name,
                            mb.host,
                            mb.port(),
                            mb.username,
                            if pinned { " (certificate pinned)" } else { "" },
                            mb.folder,
                            exists
                        ),
                    ));
                    if let Some(warning) = expired {
                        lines.push((true, format!("mailbox {}: warning: {warning}", mb.name)));
                    }
                }
                Err(e) => lines.push((false, format!("mailbox {}: {e}", mb.name))),
            }
            lines
        });
        for lines in futures::future::join_all(checks).await {
            for (passed, line) in lines {
                report(passed, line);
            }
        }
        let t = &config.thulium;
        let api = match t.password.clone() {
            Some(password) => ThuliumClient::new(&t.url, &t.user, password, t.timeout).map_err(|e| e.to_string()),
            None => Err("no password".to_string()),
        };
        match api {
            Ok(api) => match api.probe().await {
                Ok(()) => report(true, format!("api: {} accepted the credentials of {}", t.url, t.user)),
                Err(e) => report(false, format!("api: {}: {e}", t.url)),
            },
            Err(e) => report(false, format!("api: {e}")),
        }
        Ok(ok)
    })
}
