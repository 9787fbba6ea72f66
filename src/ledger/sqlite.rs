//! The embedded backend: one host's ledger in `state.dir/ledger.sqlite3`.

use super::sql::{Row, Sql, SqlError, SqlResult, Value};
use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, ValueRef};

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            Value::Int(v) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(*v)),
            Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
        })
    }
}

fn error(e: rusqlite::Error) -> SqlError {
    SqlError(e.to_string())
}

fn value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Int(f as i64),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            Value::Text(String::from_utf8_lossy(t).into_owned())
        }
    }
}

impl Sql for Connection {
    fn execute(&mut self, sql: &str, params: &[Value]) -> SqlResult<u64> {
        let mut stmt = self.prepare_cached(sql).map_err(error)?;
        let n = stmt
            .execute(rusqlite::params_from_iter(params))
            .map_err(error)?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> SqlResult<Vec<Row>> {
        let mut stmt = self.prepare_cached(sql).map_err(error)?;
        let columns = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(error)? {
            let values = (0..columns)
                .map(|i| row.get_ref(i).map(value))
                .collect::<rusqlite::Result<Vec<Value>>>()
                .map_err(error)?;
            out.push(Row(values));
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> SqlResult<()> {
        self.execute_batch(sql).map_err(error)
    }

    fn reconnect(&mut self) -> SqlResult<()> {
        // A file does not go away.
        Ok(())
    }

    fn begin_group(&self) -> &'static str {
        "BEGIN IMMEDIATE"
    }

    fn fence(&mut self, _mailbox: &str) -> SqlResult<()> {
        // The instance lock (`daemon.lock`) already makes this the only writer.
        Ok(())
    }

    fn schema_version(&mut self) -> SqlResult<i64> {
        self.pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(error)
    }

    fn migrate(&mut self, steps: &str, version: i64) -> SqlResult<i64> {
        self.execute_batch(&format!(
            "BEGIN IMMEDIATE;{steps}PRAGMA user_version = {version};COMMIT;"
        ))
        .map_err(error)?;
        Ok(version)
    }

    fn rowid_column(&self) -> &'static str {
        // SQLite has one already.
        ""
    }
}

/// WAL: readers (`ledger show` while the daemon runs) never wait for the writer;
/// synchronous = FULL: a commit is on disk when it returns (one fsync per group).
pub(super) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}
