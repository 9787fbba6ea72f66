//! The shared backend: a PostgreSQL database several instances write to, each for the
//! mailboxes it leads. The synchronous client of rust-postgres runs on the ledger's own
//! threads (`writer.rs`), like SQLite: the statements and the rules of exactly-once
//! stay one code for both backends.

use super::sql::{Row, Sql, SqlError, SqlResult, Value};
use crate::config::StateConfig;
use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, Statement};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How to reach the database: what `[state]` says, resolved.
#[derive(Clone)]
pub(crate) struct Target {
    url: String,
    password: Option<SecretString>,
    ca_file: Option<PathBuf>,
    /// TLS is required (with verification) unless the host is loopback or
    /// `allow_insecure` is set and no `postgres_ca_file` asks for it.
    require_tls: bool,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.url)
            .field("tls", &self.require_tls)
            .finish()
    }
}

impl Target {
    pub(crate) fn of(state: &StateConfig) -> Target {
        let url = state.postgres_url.clone().unwrap_or_default();
        let loopback = reqwest::Url::parse(&url)
            .ok()
            .and_then(|u| u.host_str().map(crate::config::is_loopback_host))
            .unwrap_or(false);
        Target {
            require_tls: state.postgres_ca_file.is_some() || !(loopback || state.allow_insecure),
            url,
            password: state.postgres_password.clone(),
            ca_file: state.postgres_ca_file.clone(),
        }
    }

    /// Whether sessions use TLS (with the certificate verified).
    pub(crate) fn tls(&self) -> bool {
        self.require_tls
    }

    /// The URL (it holds no password): what errors and `status` name.
    pub(crate) fn name(&self) -> &str {
        &self.url
    }

    /// A new session, with short timeouts: a database that stopped answering must fail
    /// a statement (and so stop posting), not hang the ledger.
    pub(crate) fn connect(&self) -> SqlResult<Client> {
        let mut config: postgres::Config = self
            .url
            .parse()
            .map_err(|e| SqlError(format!("state.postgres_url: {e}")))?;
        if let Some(p) = &self.password {
            config.password(p.expose_secret());
        }
        config
            .connect_timeout(Duration::from_secs(5))
            .tcp_user_timeout(Duration::from_secs(10))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .application_name("thulium-mail-bridge")
            .options("-c statement_timeout=10000 -c lock_timeout=5000 -c idle_in_transaction_session_timeout=30000");
        let connected = if self.require_tls {
            config.ssl_mode(postgres::config::SslMode::Require);
            let trust = crate::imap::tls::trust(self.ca_file.as_deref(), None)
                .map_err(|e| SqlError(format!("state.postgres_ca_file: {e}")))?;
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new((*trust.config).clone());
            config.connect(tls)
        } else {
            config.ssl_mode(postgres::config::SslMode::Disable);
            config.connect(postgres::NoTls)
        };
        connected.map_err(|e| SqlError(full_message(&e)))
    }
}

/// rust-postgres shows only the outermost cause; the database's own words are inside.
pub(crate) fn full_message(e: &postgres::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// The mailboxes this instance leads, with the epoch of each lease (`leases.rs` keeps
/// it): every write for a mailbox is checked against it in its own transaction.
pub(crate) type Fences = Arc<Mutex<HashMap<String, i64>>>;

/// One session, reconnected between groups when it was lost.
pub(crate) struct PgConn {
    target: Target,
    client: Option<Client>,
    statements: HashMap<String, Statement>,
    fences: Fences,
    /// Mailboxes whose lease row this transaction holds FOR SHARE: checked once.
    fenced: std::collections::HashSet<String>,
}

impl PgConn {
    pub(crate) fn open(target: Target, fences: Fences) -> SqlResult<PgConn> {
        let client = target.connect()?;
        Ok(PgConn {
            target,
            client: Some(client),
            statements: HashMap::new(),
            fences,
            fenced: std::collections::HashSet::new(),
        })
    }

    fn client(&mut self) -> SqlResult<&mut Client> {
        self.client
            .as_mut()
            .ok_or_else(|| SqlError("not connected to PostgreSQL".into()))
    }

    fn statement(&mut self, sql: &str) -> SqlResult<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        // Multi-row statements differ by their row count: kept within bounds, each
        // prepared statement also holds a plan on the server.
        if self.statements.len() >= STATEMENTS_KEPT {
            self.statements.clear();
        }
        let text = numbered(sql);
        let prepared = self
            .client()?
            .prepare(&text)
            .map_err(|e| SqlError(full_message(&e)))?;
        self.statements.insert(sql.to_string(), prepared.clone());
        Ok(prepared)
    }
}

/// Prepared statements kept a session at most.
const STATEMENTS_KEPT: usize = 256;

/// `?N` placeholders as PostgreSQL writes them (`$N`); the statements hold no `?`
/// otherwise.
fn numbered(sql: &str) -> String {
    sql.replace('?', "$")
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) if *ty == Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
            Value::Int(v) if *ty == Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
            Value::Int(v) if *ty == Type::BOOL => (*v != 0).to_sql(ty, out),
            Value::Int(v) => v.to_sql(ty, out),
            Value::Text(t) => t.as_str().to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        // Checked per value in `to_sql`: a NULL fits any column.
        matches!(
            *ty,
            Type::INT8 | Type::INT4 | Type::INT2 | Type::BOOL | Type::TEXT | Type::VARCHAR
        )
    }

    postgres::types::to_sql_checked!();
}

fn row(r: &postgres::Row) -> SqlResult<Row> {
    let cell = |i: usize, ty: &Type| -> Result<Value, postgres::Error> {
        Ok(match *ty {
            Type::INT8 => r
                .try_get::<_, Option<i64>>(i)?
                .map_or(Value::Null, Value::Int),
            Type::INT4 => r
                .try_get::<_, Option<i32>>(i)?
                .map_or(Value::Null, |v| Value::Int(i64::from(v))),
            Type::INT2 => r
                .try_get::<_, Option<i16>>(i)?
                .map_or(Value::Null, |v| Value::Int(i64::from(v))),
            Type::BOOL => r
                .try_get::<_, Option<bool>>(i)?
                .map_or(Value::Null, |v| Value::Int(i64::from(v))),
            _ => r
                .try_get::<_, Option<String>>(i)?
                .map_or(Value::Null, Value::Text),
        })
    };
    r.columns()
        .iter()
        .enumerate()
        .map(|(i, c)| cell(i, c.type_()).map_err(|e| SqlError(full_message(&e))))
        .collect::<SqlResult<Vec<Value>>>()
        .map(Row)
}

fn refs(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Sql for PgConn {
    fn execute(&mut self, sql: &str, params: &[Value]) -> SqlResult<u64> {
        let statement = self.statement(sql)?;
        self.client()?
            .execute(&statement, &refs(params))
            .map_err(|e| SqlError(full_message(&e)))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> SqlResult<Vec<Row>> {
        let statement = self.statement(sql)?;
        let rows = self
            .client()?
            .query(&statement, &refs(params))
            .map_err(|e| SqlError(full_message(&e)))?;
        rows.iter().map(row).collect()
    }

    fn batch(&mut self, sql: &str) -> SqlResult<()> {
        // A lock taken FOR SHARE lasts until the transaction ends, or until a rollback
        // to a savepoint taken before it.
        if sql.starts_with("BEGIN") || sql.starts_with("COMMIT") || sql.starts_with("ROLLBACK") {
            self.fenced.clear();
        }
        self.client()?
            .batch_execute(sql)
            .map_err(|e| SqlError(full_message(&e)))
    }

    fn reconnect(&mut self) -> SqlResult<()> {
        if self.client.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        self.client = None;
        self.statements.clear();
        self.client = Some(self.target.connect()?);
        Ok(())
    }

    fn begin_group(&self) -> &'static str {
        "BEGIN"
    }

    fn fence(&mut self, mailbox: &str) -> SqlResult<()> {
        let ours = self
            .fences
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(mailbox)
            .copied();
        let Some(ours) = ours else {
            return Err(SqlError(format!(
                "this instance does not lead mailbox {mailbox:?}: nothing is written for it"
            )));
        };
        if self.fenced.contains(mailbox) {
            return Ok(());
        }
        // FOR SHARE: a successor's takeover waits for this transaction, so a write is
        // either committed before the new epoch exists or refused after.
        let found = self.query(
            "SELECT epoch, holder FROM leases WHERE mailbox = ?1 FOR SHARE",
            super::sql::params![mailbox],
        )?;
        match found.first() {
            Some(r) if r.int(0)? == ours => {
                self.fenced.insert(mailbox.to_string());
                Ok(())
            }
            Some(r) => Err(SqlError(format!(
                "mailbox {mailbox:?} is led by {} (epoch {}) now, not by this instance (epoch {ours}): nothing is written for it",
                r.text(1)?,
                r.int(0)?
            ))),
            None => Err(SqlError(format!(
                "mailbox {mailbox:?} has no lease: nothing is written for it"
            ))),
        }
    }

    fn schema_version(&mut self) -> SqlResult<i64> {
        let exists = self.query(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_name = 'schema_version'",
            &[],
        )?;
        if exists.first().map(|r| r.int(0)).transpose()?.unwrap_or(0) == 0 {
            return Ok(0);
        }
        let rows = self.query(
            "SELECT CAST(MAX(version) AS BIGINT) FROM schema_version",
            &[],
        )?;
        Ok(rows
            .first()
            .map(|r| r.opt_int(0))
            .transpose()?
            .flatten()
            .unwrap_or(0))
    }

    fn migrate(&mut self, steps: &str, version: i64) -> SqlResult<i64> {
        // A transaction-scoped lock: released by COMMIT or by a lost session alike.
        self.batch(
            "BEGIN; SELECT pg_advisory_xact_lock(7468756); \
             CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)",
        )?;
        let applied = (|| {
            let on_disk = self.schema_version()?;
            if on_disk < version {
                self.batch(steps)?;
                self.batch(&format!(
                    "DELETE FROM schema_version; INSERT INTO schema_version (version) VALUES ({version})"
                ))?;
                return Ok(version);
            }
            Ok(on_disk)
        })();
        match applied {
            Ok(v) => self.batch("COMMIT").map(|()| v),
            Err(e) => {
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn rowid_column(&self) -> &'static str {
        "rowid BIGINT GENERATED ALWAYS AS IDENTITY,"
    }
}
