//! Who leads which mailbox, as the `leases` table of a shared ledger says: what
//! `status` and `check` show. Taking and renewing leases is `daemon/leadership.rs`.

use super::sql::{Sql, SqlResult};

/// The database's clock, unix ms: leases do not depend on the hosts' clocks agreeing.
pub(crate) const DB_NOW_MS: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

/// One mailbox's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaseRow {
    pub mailbox: String,
    pub holder: String,
    pub epoch: i64,
    /// Unix ms (the database's clock).
    pub since_ms: i64,
    /// Nobody renewed it in time (or it was handed back): the mailbox has no leader.
    pub expired: bool,
}

pub(super) fn leases(conn: &mut dyn Sql) -> SqlResult<Vec<LeaseRow>> {
    conn.query(
        &format!(
            "SELECT mailbox, holder, epoch, since_ms, \
             CAST(CASE WHEN expires_ms < {DB_NOW_MS} THEN 1 ELSE 0 END AS BIGINT) \
             FROM leases ORDER BY mailbox"
        ),
        &[],
    )?
    .iter()
    .map(|r| {
        Ok(LeaseRow {
            mailbox: r.text(0)?,
            holder: r.text(1)?,
            epoch: r.int(2)?,
            since_ms: r.int(3)?,
            expired: r.bool(4)?,
        })
    })
    .collect()
}

impl LeaseRow {
    /// `mb1      led by host-a (epoch 3) since 2026-12-05T10:00:00Z`
    pub(crate) fn describe(&self) -> String {
        let since = chrono::DateTime::from_timestamp_millis(self.since_ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        if self.expired {
            format!(
                "{}: no leader (last {} epoch {}, since {since})",
                self.mailbox, self.holder, self.epoch
            )
        } else {
            format!(
                "{}: led by {} (epoch {}) since {since}",
                self.mailbox, self.holder, self.epoch
            )
        }
    }
}
