//! `check`: prove the config works, one line per check, before the daemon is trusted with mail.

use crate::config::Config;
use crate::thulium::ThuliumClient;
use crate::worker;

/// Prints `ok` / `FAIL` lines; Ok(false) when anything failed.
pub fn run(config: Config) -> anyhow::Result<bool> {
    crate::imap::tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
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
            Ok(_) => report(true, format!("state: ledger in {} is writable", config.state.dir.display())),
            Err(e) => report(false, format!("state: {e}")),
        }
        let checks = config.mailboxes.iter().map(|mb| async move {
            let result = async {
                let mut session = worker::open(mb, false).await?;
                let state = session.select(&mb.folder).await?;
                session.logout().await;
                Ok::<_, crate::imap::ImapError>(state)
            }
            .await;
            (mb, result)
        });
        for (mb, result) in futures::future::join_all(checks).await {
            match result {
                Ok(state) => report(
                    true,
                    format!(
                        "mailbox {}: logged in to {}:{} as {}, {} holds {} mail(s), target folders exist",
                        mb.name,
                        mb.host,
                        mb.port(),
                        mb.username,
                        mb.folder,
                        state.exists
                    ),
                ),
                Err(e) => report(false, format!("mailbox {}: {e}", mb.name)),
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
