//! `ledger show` and `ledger stats`: the audit trail of a mail, and the totals. They read
//! the SQLite ledger while the daemon runs (WAL: readers never wait for the writer).

use crate::ledger::{Entry, EntryState, Ledger, LedgerError};
use std::time::{Duration, UNIX_EPOCH};

/// Every mail recorded under a Message-ID (brackets optional; a reused one has several),
/// or under a `sha256:` content hash prefix. `None` when there is none.
pub(crate) fn show(ledger: &Ledger, id: &str) -> Result<Option<String>, LedgerError> {
    let entries = futures::executor::block_on(ledger.entries(id))?;
    if entries.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        entries.iter().map(describe).collect::<Vec<_>>().join("\n"),
    ))
}

pub(crate) fn describe(e: &Entry) -> String {
    let at = |secs: u64| {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
    };
    let mut out = String::new();
    let mut line = |k: &str, v: &str| out.push_str(&format!("{k:<12} {v}\n"));
    line("mail:", &e.id.to_string());
    line("state:", e.state.as_str());
    line("ticket:", &e.ticket.to_string());
    line("date sent:", &e.date);
    line("attempts:", &format!("{} failed (counted)", e.attempts));
    line("first seen:", &at(e.first_seen));
    line("updated:", &at(e.updated));
    let l = &e.location;
    line(
        "last seen:",
        &format!(
            "mailbox {} folder {} uidvalidity {} uid {}",
            l.mailbox, l.folder, l.uid_validity, l.uid
        ),
    );
    if e.state == EntryState::Pending && e.outcome_unknown {
        line(
            "outcome:",
            "unknown: the ticket is read back before it is posted again",
        );
    }
    if e.retry {
        line(
            "retry:",
            "requested (tried again when the mail is next seen)",
        );
    }
    line("body sha256:", &e.body_hash);
    if let Some(reason) = &e.reason {
        line("reason:", reason);
    }
    out
}

pub(crate) fn stats(ledger: &Ledger) -> Result<String, LedgerError> {
    let s = futures::executor::block_on(ledger.stats())?;
    Ok(format!(
        "ledger {}\nposted   {}\npending  {}\nfailed   {}\nretry    {}\n",
        ledger.path().display(),
        s.posted,
        s.pending,
        s.failed,
        s.retry
    ))
}
