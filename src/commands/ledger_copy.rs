//! `ledger copy --to postgres`: from one host to two. The SQLite ledger in `state.dir`
//! goes into the PostgreSQL ledger `[state]` names, so that what it recorded (posted
//! mails above all) is never posted again by the instances that share it.

use crate::config::{Config, LedgerBackend};
use crate::ledger::Ledger;
use futures::executor::block_on;

pub(crate) fn copy(config: &Config) -> anyhow::Result<bool> {
    if config.state.backend != LedgerBackend::Postgres {
        anyhow::bail!(
            "ledger copy --to postgres: [state] backend must be \"postgres\" (with postgres_url): that is where it copies to"
        );
    }
    // The daemon of this host must not write to the source meanwhile.
    let _lock = crate::ledger::lock_instance(&config.state.dir)?;
    let source = Ledger::open(&config.state.dir)?;
    let target = Ledger::open_configured(&config.state)?;
    let rows = block_on(source.export())?;
    let copied = block_on(target.import(rows))?;
    println!(
        "copied {} into {}:",
        source.path().display(),
        target.path().display()
    );
    for (table, added, there) in &copied.tables {
        println!("  {table:<10} {added} added, {there} already there");
    }
    Ok(true)
}
