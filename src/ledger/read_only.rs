//! The ledger opened read-only, for `explain`: it consults what was posted (References)
//! exactly as the daemon does, without creating, migrating or locking anything.

use super::{FILE_NAME, LedgerError, store};
use crate::mail::decide::References;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

pub(crate) struct ReadOnlyLedger {
    conn: std::sync::Mutex<Connection>,
}

impl ReadOnlyLedger {
    /// Opens `dir/ledger.sqlite3` if it is there and readable; never creates it.
    pub(crate) fn open(dir: &Path) -> Result<ReadOnlyLedger, LedgerError> {
        let path = dir.join(FILE_NAME);
        let open_err = |message: String| LedgerError::Open {
            path: path.clone(),
            message,
        };
        if !path.exists() {
            return Err(open_err("there is none yet (nothing was posted)".into()));
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_err(e.to_string()))?;
        // A read proves access: opening alone succeeds on a file we may not read.
        conn.query_row("SELECT count(*) FROM mails", [], |_| Ok(()))
            .map_err(|e| open_err(e.to_string()))?;
        Ok(ReadOnlyLedger {
            conn: std::sync::Mutex::new(conn),
        })
    }
}

impl References for ReadOnlyLedger {
    fn ticket_for(&self, message_id: &str) -> Option<u64> {
        let id = crate::mail::identity::message_id_key(message_id);
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        super::one_ticket(store::tickets_for_message_id(&mut *conn, &id), message_id)
    }
}
