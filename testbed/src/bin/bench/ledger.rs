//! Where a scenario's bridge keeps its ledger (`--ledger`): SQLite in the state dir, or
//! a throwaway PostgreSQL per scenario run, reached over TLS to its own CA, as a
//! shared ledger would be in production.

use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use testbed::{Postgres, PostgresOptions};

use crate::cpu;

/// What PostgreSQL did for a run (the difference of two [`Ledger::work`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ServerWork {
    /// CPU of the postmaster and its backends, reaped ones included.
    pub cpu: Duration,
    /// Transactions committed in the bridge's database.
    pub commits: u64,
    /// Rows inserted, updated or deleted there.
    pub rows_written: u64,
}

impl ServerWork {
    pub(crate) fn since(self, before: ServerWork) -> ServerWork {
        ServerWork {
            cpu: self.cpu.saturating_sub(before.cpu),
            commits: self.commits.saturating_sub(before.commits),
            rows_written: self.rows_written.saturating_sub(before.rows_written),
        }
    }
}

/// A PostgreSQL for the ledger; with `BENCH_DEBUG`, one that counts its statements.
fn start_postgres() -> Result<Postgres> {
    if std::env::var_os("BENCH_DEBUG").is_none() {
        return Postgres::start();
    }
    let pg = Postgres::start_with(PostgresOptions {
        extra_config: "shared_preload_libraries = 'pg_stat_statements'\n".into(),
        ..PostgresOptions::default()
    })?;
    pg.superuser_psql("CREATE EXTENSION pg_stat_statements")?;
    Ok(pg)
}

/// The `[state] backend` a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LedgerKind {
    Sqlite,
    Postgres,
}

impl LedgerKind {
    /// The name in the table and the JSON lines.
    pub(crate) fn name(self) -> &'static str {
        match self {
            LedgerKind::Sqlite => "sqlite",
            LedgerKind::Postgres => "postgres",
        }
    }
}

/// One scenario run's ledger; the PostgreSQL (if any) lives until [`Ledger::stop`].
pub(crate) struct Ledger {
    postgres: Option<Postgres>,
}

impl Ledger {
    /// Starts a PostgreSQL for `Postgres` (on a blocking thread: it takes about a
    /// second, and the fake API keeps running meanwhile); nothing for SQLite.
    /// With `BENCH_DEBUG`, pg_stat_statements is loaded to say where the server's time
    /// went ([`Ledger::print_statements`]).
    pub(crate) async fn start(kind: LedgerKind) -> Result<Ledger> {
        let postgres = match kind {
            LedgerKind::Sqlite => None,
            LedgerKind::Postgres => Some(tokio::task::spawn_blocking(start_postgres).await??),
        };
        Ok(Ledger { postgres })
    }

    /// PostgreSQL's CPU and transactions so far (`None` on SQLite), once the bridge's
    /// sessions have ended. Blocks for a few `psql`; take it before and after a run.
    pub(crate) fn work(&self) -> Result<Option<ServerWork>> {
        let Some(pg) = &self.postgres else {
            return Ok(None);
        };
        // A backend counts its transactions in pg_stat_database when it ends, which is
        // a moment after the bridge hung up: wait for the bridge's sessions to go.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while pg.superuser_psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'bridge'")?
            != "0"
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let row = pg.superuser_psql(
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted \
             FROM pg_stat_database WHERE datname = current_database()",
        )?;
        let mut numbers = row.split('|').map(|n| n.trim().parse::<u64>());
        let mut next = || -> Result<u64> {
            numbers
                .next()
                .context("a short row from pg_stat_database")?
                .with_context(|| format!("pg_stat_database: {row:?}"))
        };
        Ok(Some(ServerWork {
            cpu: cpu::postgres(&pg.dir().join("data")).unwrap_or_default(),
            commits: next()?,
            rows_written: next()?,
        }))
    }

    /// With `BENCH_DEBUG`: the statements the server ran, most frequent first, and their
    /// execution time (parsing, the protocol and TLS are not in it).
    pub(crate) fn print_statements(&self, scenario: &str) {
        let Some(pg) = &self.postgres else {
            return;
        };
        if std::env::var_os("BENCH_DEBUG").is_none() {
            return;
        }
        let sql = "SELECT calls, round(total_exec_time::numeric, 1), \
                   round((total_exec_time / calls)::numeric, 4), rows, \
                   left(regexp_replace(query, '\\s+', ' ', 'g'), 100) \
                   FROM pg_stat_statements WHERE calls > 1 \
                   UNION ALL SELECT sum(calls), round(sum(total_exec_time)::numeric, 1), \
                   NULL, sum(rows), '(all statements)' FROM pg_stat_statements \
                   ORDER BY 1 DESC, 2 DESC LIMIT 25";
        match pg.superuser_psql(sql) {
            Ok(rows) => eprintln!(
                "== {scenario}: PostgreSQL's statements, by calls (calls|exec ms|ms per call|rows|query):\n{rows}"
            ),
            Err(e) => eprintln!("== {scenario}: pg_stat_statements: {e:#}"),
        }
    }

    /// The `[state]` keys after `dir`: the backend, its URL, and the password in a
    /// file of its own (the config refuses one in the URL), readable by its owner only.
    pub(crate) fn state_keys(&self, dir: &Path) -> Result<String> {
        let Some(pg) = &self.postgres else {
            return Ok(String::new());
        };
        use std::os::unix::fs::PermissionsExt;
        let password_file = dir.join("postgres.password");
        fs::write(&password_file, pg.password())?;
        fs::set_permissions(&password_file, fs::Permissions::from_mode(0o600))?;
        Ok(format!(
            "backend = \"postgres\"\npostgres_url = {:?}\npostgres_password_file = {:?}\npostgres_ca_file = {:?}\n",
            pg.url(),
            password_file,
            pg.ca_file()
        ))
    }

    /// On PostgreSQL, besides what the bridge's `ledger` commands report: the rows
    /// themselves, read by the superuser, must say `expected` mails posted, and no
    /// SQLite file may have appeared in `state_dir` (the bridge really used the server).
    /// Blocks for one `psql` (tens of milliseconds).
    pub(crate) fn check(&self, state_dir: &Path, expected: usize) -> Vec<String> {
        let Some(pg) = &self.postgres else {
            return Vec::new();
        };
        let mut failures = Vec::new();
        let sql = "SELECT state, COUNT(*) FROM mails GROUP BY state ORDER BY state";
        match pg.superuser_psql(sql) {
            Ok(rows) => {
                let posted = rows
                    .lines()
                    .find_map(|l| l.strip_prefix("posted|"))
                    .and_then(|n| n.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                let others = rows.lines().filter(|l| !l.starts_with("posted|")).count();
                if posted != expected || others != 0 {
                    failures.push(format!(
                        "PostgreSQL's mails table: {:?} (expected posted|{expected} alone)",
                        rows.replace('\n', ", ")
                    ));
                }
            }
            Err(e) => failures.push(format!("reading PostgreSQL's mails table: {e:#}")),
        }
        let sqlite = state_dir.join("ledger.sqlite3");
        if sqlite.exists() {
            failures.push(format!(
                "{} exists with a PostgreSQL ledger",
                sqlite.display()
            ));
        }
        failures
    }

    /// Stops the PostgreSQL (a blocking fast shutdown) and removes its dir.
    pub(crate) async fn stop(self) -> Result<()> {
        if let Some(pg) = self.postgres {
            tokio::task::spawn_blocking(move || drop(pg)).await?;
        }
        Ok(())
    }
}
