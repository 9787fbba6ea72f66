//! `check`: prove the config works, one line per check, before the daemon is trusted with mail.

use crate::config::{Config, MailboxConfig, ThuliumConfig, VerifySender};
use crate::daemon::worker;
use crate::thulium::ThuliumClient;

/// A check's line: whether it passed, and what it says.
type Line = (bool, String);

/// Prints `ok` / `FAIL` lines; Ok(false) when anything failed.
pub(crate) fn run(config: Config) -> anyhow::Result<bool> {
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
        report(
            true,
            format!(
                "config: {} mailbox(es), rules compiled",
                config.mailboxes.len()
            ),
        );
        for w in &config.warnings {
            report(true, format!("config warning: {w}"));
        }
        for (passed, line) in state_lines(&config) {
            report(passed, line);
        }
        let verify = config.thulium.verify_sender;
        let checks = config.mailboxes.iter().map(|mb| mailbox_lines(mb, verify));
        for lines in futures::future::join_all(checks).await {
            for (passed, line) in lines {
                report(passed, line);
            }
        }
        let (passed, line) = api_line(&config.thulium).await;
        report(passed, line);
        Ok(ok)
    })
}

/// The ledger opens for writing, and the API clock it learned.
fn state_lines(config: &Config) -> Vec<Line> {
    match crate::ledger::Ledger::open_configured(&config.state) {
        Ok(ledger) => {
            let writable = match ledger.shared() {
                None => (
                    true,
                    format!(
                        "state: ledger in {} is writable",
                        config.state.dir.display()
                    ),
                ),
                Some(shared) => (
                    true,
                    format!(
                        "state: ledger {} answers (login, {}, schema {})",
                        ledger.path().display(),
                        if shared.target.tls() {
                            "TLS verified"
                        } else {
                            "no TLS: loopback or allow_insecure"
                        },
                        crate::ledger::SCHEMA_VERSION
                    ),
                ),
            };
            let mut lines = vec![writable];
            match futures::executor::block_on(ledger.leases()) {
                Ok(leases) => lines.extend(
                    leases
                        .iter()
                        .map(|l| (true, format!("lease: {}", l.describe()))),
                ),
                Err(e) => lines.push((false, format!("leases: {e}"))),
            }
            let clock = match futures::executor::block_on(ledger.clock_observations()) {
                Ok(seen) => {
                    let clock = crate::thulium::api_clock::ApiClock::learn(config.timezone(), seen);
                    (true, format!("api clock: {}", clock.describe()))
                }
                Err(e) => (false, format!("api clock: {e}")),
            };
            lines.push(clock);
            lines
        }
        Err(e) => vec![(false, format!("state: {e}"))],
    }
}

/// One mailbox: the From warning, its OAuth2 token, the IMAP login and its folders.
async fn mailbox_lines(mb: &MailboxConfig, verify: VerifySender) -> Vec<Line> {
    let mut lines = Vec::new();
    if mb.trusted_authserv_id.is_empty() && verify != VerifySender::Off {
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
            Ok(_) => lines.push((
                true,
                format!("mailbox {}: OAuth2 token from {grant}", mb.name),
            )),
            Err(e) => {
                lines.push((
                    false,
                    format!("mailbox {}: OAuth2 token from {grant}: {e}", mb.name),
                ));
                lines.push((
                    false,
                    format!("mailbox {}: IMAP login not tried without a token", mb.name),
                ));
                return lines;
            }
        }
    }
    lines.extend(login_lines(mb).await);
    lines
}

/// Logs in and selects the folder (which checks the target folders), then logs out.
async fn login_lines(mb: &MailboxConfig) -> Vec<Line> {
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
            let mut lines = vec![(
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
            )];
            if let Some(warning) = expired {
                lines.push((true, format!("mailbox {}: warning: {warning}", mb.name)));
            }
            lines
        }
        Err(e) => vec![(false, format!("mailbox {}: {e}", mb.name))],
    }
}

/// The API accepts the configured credentials.
async fn api_line(t: &ThuliumConfig) -> Line {
    let api = match t.password.clone() {
        Some(password) => ThuliumClient::new(&t.url, &t.user, password, t.timeout, None)
            .map_err(|e| e.to_string()),
        None => Err("no password".to_string()),
    };
    match api {
        Ok(api) => match api.probe().await {
            Ok(()) => (
                true,
                format!("api: {} accepted the credentials of {}", t.url, t.user),
            ),
            Err(e) => (false, format!("api: {}: {e}", t.url)),
        },
        Err(e) => (false, format!("api: {e}")),
    }
}
