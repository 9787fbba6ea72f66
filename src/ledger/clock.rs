//! The observations the API's clock is learned from (`thulium::api_clock`): kept in the
//! ledger so a restart does not forget what the API's `created_at` means.

use super::sql::{Sql, SqlResult, params};
use crate::thulium::api_clock::{KEPT, Observation};

/// The kept observations, oldest first.
pub(super) fn observations(conn: &mut dyn Sql) -> SqlResult<Vec<Observation>> {
    conn.query(
        "SELECT created_at, date_sent, posted_from, posted_to FROM api_clock ORDER BY seen, rowid",
        &[],
    )?
    .iter()
    .map(|r| {
        Ok(Observation {
            created_at: r.text(0)?,
            date_sent: r.text(1)?,
            from: r.u64(2)?,
            to: r.u64(3)?,
        })
    })
    .collect()
}

/// Keeps one more observation (a repeat is kept once), dropping the oldest beyond [`KEPT`].
pub(super) fn observe(conn: &mut dyn Sql, ticket: u64, o: &Observation, now: u64) -> SqlResult<()> {
    conn.execute(
        "INSERT INTO api_clock (ticket, created_at, date_sent, posted_from, posted_to, seen) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        params![ticket, &o.created_at, &o.date_sent, o.from, o.to, now],
    )?;
    conn.execute(
        "DELETE FROM api_clock WHERE rowid NOT IN (SELECT rowid FROM api_clock ORDER BY seen DESC, rowid DESC LIMIT ?1)",
        params![KEPT as i64],
    )?;
    Ok(())
}
