//! `ledger show` and `ledger stats`: the audit trail of one mail, and the totals.

use crate::ledger::{Entry, Ledger, LedgerError, message_id_key};
use std::time::{Duration, UNIX_EPOCH};

/// One mail's record, by Message-ID (with or without angle brackets) or `sha256:` key.
pub fn show(ledger: &Ledger, id: &str) -> Result<Option<String>, LedgerError> {
    let key = if id.starts_with("sha256:") {
        id.to_string()
    } else {
        message_id_key(id)
    };
    Ok(ledger.get(&key)?.map(|e| describe(&key, &e)))
}

fn describe(key: &str, e: &Entry) -> String {
    let at = |secs: u64| {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
    };
    let mut out = String::new();
    let mut line = |k: &str, v: &str| out.push_str(&format!("{k:<12} {v}\n"));
    line("key:", key);
    line("state:", &format!("{:?}", e.state).to_lowercase());
    line("ticket:", &e.ticket.to_string());
    line("date sent:", &e.date);
    line("attempts:", &e.attempts.to_string());
    line("first seen:", &at(e.first_seen));
    line("updated:", &at(e.updated));
    line(
        "last seen:",
        &format!("mailbox {} uid {}", e.mailbox, e.uid),
    );
    line("body sha256:", &e.body_hash);
    if let Some(reason) = &e.reason {
        line("reason:", reason);
    }
    out
}

pub fn stats(ledger: &Ledger) -> Result<String, LedgerError> {
    let s = ledger.stats()?;
    Ok(format!(
        "ledger {}\nposted   {}\npending  {}\nfailed   {}\n",
        ledger.path().display(),
        s.posted,
        s.pending,
        s.failed
    ))
}
