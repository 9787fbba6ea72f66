//! The observations the API's clock is learned from (`thulium::api_clock`): kept in the
//! ledger so a restart does not forget what the API's `created_at` means.

use crate::thulium::api_clock::{KEPT, Observation};
use rusqlite::{Connection, params};

/// The kept observations, oldest first.
pub(super) fn observations(conn: &Connection) -> rusqlite::Result<Vec<Observation>> {
    let mut stmt = conn.prepare_cached(
        "SELECT created_at, date_sent, posted_from, posted_to FROM api_clock ORDER BY seen, rowid",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Observation {
            created_at: r.get(0)?,
            date_sent: r.get(1)?,
            from: r.get::<_, i64>(2)?.max(0) as u64,
            to: r.get::<_, i64>(3)?.max(0) as u64,
        })
    })?;
    rows.collect()
}

/// Keeps one more observation (a repeat is kept once), dropping the oldest beyond [`KEPT`].
pub(super) fn observe(
    conn: &Connection,
    ticket: u64,
    o: &Observation,
    now: u64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO api_clock (ticket, created_at, date_sent, posted_from, posted_to, seen) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        ticket as i64,
        o.created_at,
        o.date_sent,
        o.from as i64,
        o.to as i64,
        now as i64
    ])?;
    conn.prepare_cached(
        "DELETE FROM api_clock WHERE rowid NOT IN (SELECT rowid FROM api_clock ORDER BY seen DESC, rowid DESC LIMIT ?1)",
    )?
    .execute(params![KEPT as i64])?;
    Ok(())
}
