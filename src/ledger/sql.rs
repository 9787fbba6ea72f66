//! What the ledger's statements need of a database, so that one set of statements (and
//! one set of exactly-once rules) serves both backends: SQLite on one host, PostgreSQL
//! shared by several. Statements are written in the subset both speak: `?N`
//! placeholders (turned into `$N` for PostgreSQL), integers as BIGINT, booleans as 0/1,
//! `CAST(? AS TEXT)` where a placeholder's type would be unknown.

/// Rows one multi-row statement carries at most: well under either backend's limit of
/// parameters a statement, and a bound on the distinct statements prepared.
pub(crate) const ROWS_A_STATEMENT: usize = 200;

/// A parameter or a column value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v.min(i64::MAX as u64) as i64)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Int(i64::from(v))
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(i64::from(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// The parameters of a statement: `params![a, b]`.
macro_rules! params {
    ($($v:expr),* $(,)?) => { &[$($crate::ledger::sql::Value::from($v)),*][..] };
}
pub(crate) use params;

/// A statement failed; the database's own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct SqlError(pub String);

pub(crate) type SqlResult<T> = Result<T, SqlError>;

/// One row of a result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Row(pub Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> SqlResult<&Value> {
        self.0
            .get(i)
            .ok_or_else(|| SqlError(format!("no column {i} in the row")))
    }

    pub(crate) fn opt_int(&self, i: usize) -> SqlResult<Option<i64>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            Value::Text(t) => Err(SqlError(format!("column {i}: integer expected, got {t:?}"))),
        }
    }

    pub(crate) fn int(&self, i: usize) -> SqlResult<i64> {
        self.opt_int(i)?
            .ok_or_else(|| SqlError(format!("column {i}: integer expected, got NULL")))
    }

    /// An integer column read as unsigned (a negative one, never written, reads 0).
    pub(crate) fn u64(&self, i: usize) -> SqlResult<u64> {
        Ok(self.int(i)?.max(0) as u64)
    }

    pub(crate) fn u32(&self, i: usize) -> SqlResult<u32> {
        Ok(self.int(i)?.clamp(0, i64::from(u32::MAX)) as u32)
    }

    pub(crate) fn bool(&self, i: usize) -> SqlResult<bool> {
        Ok(self.int(i)? != 0)
    }

    pub(crate) fn opt_text(&self, i: usize) -> SqlResult<Option<String>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Text(t) => Ok(Some(t.clone())),
            Value::Int(v) => Err(SqlError(format!("column {i}: text expected, got {v}"))),
        }
    }

    pub(crate) fn text(&self, i: usize) -> SqlResult<String> {
        self.opt_text(i)?
            .ok_or_else(|| SqlError(format!("column {i}: text expected, got NULL")))
    }
}

/// A connection to either backend.
pub(crate) trait Sql: Send {
    /// Runs one statement; returns the rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> SqlResult<u64>;
    /// Runs one query; returns its rows.
    fn query(&mut self, sql: &str, params: &[Value]) -> SqlResult<Vec<Row>>;
    /// Runs statements without parameters (transactions, schema).
    fn batch(&mut self, sql: &str) -> SqlResult<()>;
    /// Connects again if the connection was lost (before a group or a read, never inside
    /// a transaction).
    fn reconnect(&mut self) -> SqlResult<()>;
    /// What opens a writer's group: SQLite takes its write lock at once.
    fn begin_group(&self) -> &'static str;
    /// Refuses a write for `mailbox` unless this instance still leads it (inside the
    /// write's transaction). One host with its own ledger leads every mailbox.
    fn fence(&mut self, mailbox: &str) -> SqlResult<()>;
    /// The schema step applied last (0: none yet).
    fn schema_version(&mut self) -> SqlResult<i64>;
    /// Applies `steps` and records `version`, in one transaction that a second instance
    /// migrating at the same time waits for; returns the version found (a newer one is
    /// left alone).
    fn migrate(&mut self, steps: &str, version: i64) -> SqlResult<i64>;
    /// The column a table read in insertion order declares (`rowid`, where the backend
    /// does not have it by itself).
    fn rowid_column(&self) -> &'static str;
}

impl dyn Sql + '_ {
    /// The first row of a query, if any.
    pub(crate) fn query_row(&mut self, sql: &str, params: &[Value]) -> SqlResult<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// One integer: a `COUNT(*)` and the like (0 without a row).
    pub(crate) fn query_int(&mut self, sql: &str, params: &[Value]) -> SqlResult<i64> {
        match self.query_row(sql, params)? {
            Some(row) => Ok(row.opt_int(0)?.unwrap_or(0)),
            None => Ok(0),
        }
    }
}
