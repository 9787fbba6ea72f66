//! The latest decision about each mail, for `ledger list`: a short row (who, what,
//! where, why), never the body. One row a mail: a later decision replaces the earlier
//! one (unverified, then approved), and rows older than `state.keep_decisions` are
//! swept. The `mails` table keeps only what exactly-once needs; this one is for people.

use super::entry::{Location, unix_now};
use super::sql::{ROWS_A_STATEMENT, Row, Sql, SqlResult, Value, params};
use crate::mail::MailId;
use std::collections::HashMap;
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

pub(super) const COLUMNS: &str = "message_id, content, decided, mailbox, folder, uid_validity, uid, sender, \
     subject, ticket, outcome, reason";

/// A mail not read is keyed by where it was: moved back, it is another row.
const PLACE_PREFIX: &str = "place:";

/// Records decisions, each replacing the mail's earlier one unless it says otherwise, a
/// few statements for the lot (each round trip counts on a shared ledger).
pub(super) fn record(conn: &mut dyn Sql, decisions: &[DecisionRecord]) -> SqlResult<()> {
    // The latest decision about each mail among these; one that does not replace leaves
    // the earlier one.
    let mut kept: Vec<((String, String), &DecisionRecord)> = Vec::new();
    let mut at: HashMap<(String, String), usize> = HashMap::new();
    for d in decisions {
        conn.fence(&d.place.mailbox)?;
        let key = key_of(d);
        match at.get(&key) {
            Some(&i) if d.replaces => kept[i] = (key, d),
            Some(_) => {}
            None => {
                at.insert(key.clone(), kept.len());
                kept.push((key, d));
            }
        }
    }
    for replaces in [true, false] {
        let rows: Vec<&((String, String), &DecisionRecord)> = kept
            .iter()
            .filter(|(_, d)| d.replaces == replaces)
            .collect();
        for chunk in rows.chunks(ROWS_A_STATEMENT) {
            insert(conn, chunk, replaces)?;
        }
    }
    Ok(())
}

/// One multi-row INSERT; an existing row is replaced when `replace`.
fn insert(
    conn: &mut dyn Sql,
    rows: &[&((String, String), &DecisionRecord)],
    replace: bool,
) -> SqlResult<()> {
    let on_conflict = if replace {
        "DO UPDATE SET decided = excluded.decided, \
         mailbox = excluded.mailbox, folder = excluded.folder, uid_validity = excluded.uid_validity, \
         uid = excluded.uid, sender = excluded.sender, subject = excluded.subject, \
         ticket = excluded.ticket, outcome = excluded.outcome, reason = excluded.reason"
    } else {
        "DO NOTHING"
    };
    let slots: Vec<String> = (0..rows.len())
        .map(|r| {
            let n: Vec<String> = (1..=12).map(|c| format!("?{}", 12 * r + c)).collect();
            format!("({})", n.join(", "))
        })
        .collect();
    let mut values = Vec::with_capacity(12 * rows.len());
    for ((message_id, content), d) in rows.iter().map(|r| (&r.0, r.1)) {
        values.extend([
            Value::from(message_id),
            Value::from(content),
            Value::from(d.decided),
            Value::from(&d.place.mailbox),
            Value::from(&d.place.folder),
            Value::from(d.place.uid_validity),
            Value::from(d.place.uid),
            Value::from(d.sender.as_deref()),
            Value::from(shortened(&d.subject)),
            Value::from(d.ticket),
            Value::from(&d.outcome),
            Value::from(&d.reason),
        ]);
    }
    conn.execute(
        &format!(
            "INSERT INTO decisions ({COLUMNS}) VALUES {} ON CONFLICT (message_id, content) {on_conflict}",
            slots.join(", ")
        ),
        &values,
    )?;
    Ok(())
}

/// The row a decision is kept under: the mail, or where it was when it was not read.
fn key_of(d: &DecisionRecord) -> (String, String) {
    match &d.mail {
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
    }
}

/// The decisions `query` asks for, oldest first.
pub(super) fn list(conn: &mut dyn Sql, query: &DecisionQuery) -> SqlResult<Vec<DecisionRecord>> {
    let mut sql = format!(
        "SELECT {COLUMNS} FROM decisions WHERE decided >= ?1 AND (CAST(?2 AS TEXT) IS NULL OR mailbox = ?2)"
    );
    if !query.outcomes.is_empty() {
        let slots: Vec<String> = (0..query.outcomes.len())
            .map(|i| format!("?{}", i + 3))
            .collect();
        sql.push_str(&format!(" AND outcome IN ({})", slots.join(", ")));
    }
    sql.push_str(" ORDER BY decided, rowid");
    let mut values: Vec<Value> = vec![query.since.into(), query.mailbox.clone().into()];
    values.extend(query.outcomes.iter().map(Value::from));
    conn.query(&sql, &values)?.iter().map(decision).collect()
}

/// Forgets decisions made more than `keep` ago; returns how many.
pub(super) fn sweep(conn: &mut dyn Sql, keep: Duration) -> SqlResult<usize> {
    let before = unix_now().saturating_sub(keep.as_secs());
    let n = conn.execute("DELETE FROM decisions WHERE decided < ?1", params![before])?;
    Ok(n as usize)
}

fn decision(row: &Row) -> SqlResult<DecisionRecord> {
    let message_id = row.text(0)?;
    let content = row.text(1)?;
    Ok(DecisionRecord {
        mail: (!content.starts_with(PLACE_PREFIX)).then(|| MailId {
            message_id: (!message_id.is_empty()).then_some(message_id),
            content,
            legacy: None,
        }),
        decided: row.u64(2)?,
        place: super::store::location_at(row, 3)?,
        sender: row.opt_text(7)?,
        subject: row.text(8)?,
        ticket: row.opt_int(9)?.map(|t| t.max(0) as u64),
        outcome: row.text(10)?,
        reason: row.text(11)?,
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
