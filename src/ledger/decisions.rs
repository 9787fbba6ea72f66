//! The latest decision about each mail, for `ledger list`: a short row (who, what,
//! where, why), never the body. One row a mail: a later decision replaces the earlier
//! one (unverified, then approved), and rows older than `state.keep_decisions` are
//! swept. The `mails` table keeps only what exactly-once needs; this one is for people.

use super::entry::{Location, unix_now};
use crate::mail::MailId;
use rusqlite::{Connection, Row, params, params_from_iter};
use std::time::Duration;

/// A subject is kept up to this many characters: enough to recognise the mail.
pub(super) const SUBJECT_CHARS: usize = 200;

/// What became of one mail, as recorded for `ledger list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecisionRecord {
    /// Unix seconds.
    pub decided: u64,
    /// Where the mail was read from.
    pub place: Location,
    /// The mail, once read; one too big or unreadable is known by its place alone.
    pub mail: Option<MailId>,
    /// The From address, when the mail was read and had one.
    pub sender: Option<String>,
    pub subject: String,
    pub ticket: Option<u64>,
    /// The outcome's name (`unverified`, `posted`, ... as in the metrics).
    pub outcome: String,
    pub reason: String,
    /// Whether it replaces an earlier decision about the same mail. A copy found posted
    /// before does not: the earlier row says what happened to the mail.
    pub replaces: bool,
}

/// Which decisions `ledger list` wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecisionQuery {
    /// Outcome names; empty: every one.
    pub outcomes: Vec<String>,
    /// Decided at or after these unix seconds.
    pub since: u64,
    pub mailbox: Option<String>,
}

const COLUMNS: &str = "message_id, content, decided, mailbox, folder, uid_validity, uid, sender, \
     subject, ticket, outcome, reason";

/// A mail not read is keyed by where it was: moved back, it is another row.
const PLACE_PREFIX: &str = "place:";

/// Records decisions, each replacing the mail's earlier one unless it says otherwise.
pub(super) fn record(conn: &Connection, decisions: &[DecisionRecord]) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(&format!(
        "INSERT INTO decisions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
         ON CONFLICT (message_id, content) DO UPDATE SET decided = excluded.decided, \
         mailbox = excluded.mailbox, folder = excluded.folder, uid_validity = excluded.uid_validity, \
         uid = excluded.uid, sender = excluded.sender, subject = excluded.subject, \
         ticket = excluded.ticket, outcome = excluded.outcome, reason = excluded.reason \
         WHERE ?13"
    ))?;
    for d in decisions {
        let (message_id, content) = match &d.mail {
            Some(id) => (
                id.message_id.clone().unwrap_or_default(),
                id.content.clone(),
            ),
            None => (
                String::new(),
                format!(
                    "{PLACE_PREFIX}{}/{}/{}/{}",
                    d.place.mailbox, d.place.folder, d.place.uid_validity, d.place.uid
                ),
            ),
        };
        insert.execute(params![
            message_id,
            content,
            d.decided as i64,
            d.place.mailbox,
            d.place.folder,
            d.place.uid_validity as i64,
            d.place.uid as i64,
            d.sender,
            shortened(&d.subject),
            d.ticket.map(|t| t as i64),
            d.outcome,
            d.reason,
            d.replaces,
        ])?;
    }
    Ok(())
}

/// The decisions `query` asks for, oldest first.
pub(super) fn list(
    conn: &Connection,
    query: &DecisionQuery,
) -> rusqlite::Result<Vec<DecisionRecord>> {
    let mut sql = format!(
        "SELECT {COLUMNS} FROM decisions WHERE decided >= ?1 AND (?2 IS NULL OR mailbox = ?2)"
    );
    if !query.outcomes.is_empty() {
        let slots: Vec<String> = (0..query.outcomes.len())
            .map(|i| format!("?{}", i + 3))
            .collect();
        sql.push_str(&format!(" AND outcome IN ({})", slots.join(", ")));
    }
    sql.push_str(" ORDER BY decided, rowid");
    let mut values: Vec<rusqlite::types::Value> = vec![
        (query.since.min(i64::MAX as u64) as i64).into(),
        query.mailbox.clone().into(),
    ];
    values.extend(query.outcomes.iter().map(|o| o.clone().into()));
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), decision)?;
    rows.collect()
}

/// Forgets decisions made more than `keep` ago; returns how many.
pub(super) fn sweep(conn: &Connection, keep: Duration) -> rusqlite::Result<usize> {
    let before = unix_now().saturating_sub(keep.as_secs());
    conn.prepare_cached("DELETE FROM decisions WHERE decided < ?1")?
        .execute(params![before.min(i64::MAX as u64) as i64])
}

fn decision(row: &Row<'_>) -> rusqlite::Result<DecisionRecord> {
    let message_id: String = row.get(0)?;
    let content: String = row.get(1)?;
    Ok(DecisionRecord {
        mail: (!content.starts_with(PLACE_PREFIX)).then(|| MailId {
            message_id: (!message_id.is_empty()).then_some(message_id),
            content,
            legacy: None,
        }),
        decided: row.get::<_, i64>(2)?.max(0) as u64,
        place: super::store::location_at(row, 3)?,
        sender: row.get(7)?,
        subject: row.get(8)?,
        ticket: row.get::<_, Option<i64>>(9)?.map(|t| t.max(0) as u64),
        outcome: row.get(10)?,
        reason: row.get(11)?,
        replaces: true,
    })
}

/// The first [`SUBJECT_CHARS`] characters, marked when cut.
fn shortened(subject: &str) -> String {
    match subject.char_indices().nth(SUBJECT_CHARS) {
        Some((at, _)) => format!("{}…", &subject[..at]),
        None => subject.to_string(),
    }
}
