//! Where a scenario's bridge keeps its ledger (`--ledger`): SQLite in the state dir, or
//! a throwaway PostgreSQL per scenario run, reached over TLS to its own CA, as a
//! shared ledger would be in production.

use std::fs;
use std::path::Path;

use anyhow::Result;
use testbed::Postgres;

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
    pub(crate) async fn start(kind: LedgerKind) -> Result<Ledger> {
        let postgres = match kind {
            LedgerKind::Sqlite => None,
            LedgerKind::Postgres => Some(tokio::task::spawn_blocking(Postgres::start).await??),
        };
        Ok(Ledger { postgres })
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
