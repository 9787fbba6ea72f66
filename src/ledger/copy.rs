//! `ledger copy --to postgres`: one host's SQLite ledger into the shared PostgreSQL one,
//! so that nothing it recorded is posted again by the instances that share it. Copying
//! twice is harmless (rows already there are left as they are); a target holding rows
//! the source lacks is another ledger (or one already in use) and is refused.

use super::sql::{Row, Sql, SqlError, SqlResult};
use std::collections::HashSet;

/// The tables copied, their columns (as the modules writing them name them), and how
/// many of those make the key. Leases and instances are not copied: they belong to the
/// instances that run.
fn copied_tables() -> [(&'static str, String, usize); 4] {
    [
        (
            "mails",
            format!("{}, new_ticket_from", super::store::COLUMNS),
            2,
        ),
        (
            "poison",
            "mailbox, uid_validity, uid, strikes, reason, updated, killed_on".into(),
            3,
        ),
        (
            "api_clock",
            "ticket, created_at, date_sent, posted_from, posted_to, seen".into(),
            3,
        ),
        ("decisions", super::decisions::COLUMNS.into(), 2),
    ]
}

/// Every row of the copied tables, table by table (in insertion order where it counts).
#[derive(Debug, Clone, Default)]
pub(crate) struct Export {
    tables: Vec<Vec<Row>>,
}

/// What a copy did, per table: rows added, rows found there already.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Copied {
    pub tables: Vec<(&'static str, u64, u64)>,
}

pub(super) fn export(conn: &mut dyn Sql) -> SqlResult<Export> {
    let mut tables = Vec::new();
    for (table, columns, _) in copied_tables() {
        let order = if table == "api_clock" || table == "decisions" {
            " ORDER BY rowid"
        } else {
            ""
        };
        tables.push(conn.query(&format!("SELECT {columns} FROM {table}{order}"), &[])?);
    }
    Ok(Export { tables })
}

/// Adds what the target lacks; refuses a target with mails the source does not have.
pub(super) fn import(conn: &mut dyn Sql, from: &Export) -> SqlResult<Copied> {
    let mails = from.tables.first().map(Vec::as_slice).unwrap_or_default();
    let ours: HashSet<Vec<crate::ledger::sql::Value>> =
        mails.iter().map(|r| r.0[..2].to_vec()).collect();
    let foreign = conn
        .query("SELECT message_id, content FROM mails", &[])?
        .into_iter()
        .filter(|r| !ours.contains(&r.0))
        .count();
    if foreign > 0 {
        return Err(SqlError(format!(
            "the target already holds {foreign} mail(s) this ledger does not have: it is another ledger, \
             or instances have used it since; nothing was copied"
        )));
    }
    let mut copied = Copied::default();
    for ((table, columns, key), rows) in copied_tables().into_iter().zip(&from.tables) {
        let n = columns.split(',').count();
        let slots: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
        let keys: Vec<&str> = columns.split(',').map(str::trim).take(key).collect();
        let insert = format!(
            "INSERT INTO {table} ({columns}) VALUES ({}) ON CONFLICT ({}) DO NOTHING",
            slots.join(", "),
            keys.join(", ")
        );
        let (mut added, mut there) = (0, 0);
        for row in rows {
            match conn.execute(&insert, &row.0)? {
                0 => there += 1,
                _ => added += 1,
            }
        }
        copied.tables.push((table, added, there));
    }
    Ok(copied)
}
