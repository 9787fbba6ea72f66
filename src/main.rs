//! The command line only: parse arguments, load the config, call into the library.

use clap::Parser;
use std::process::ExitCode;
use thulium_mail_bridge::cli::{Cli, Command, LedgerCommand, OAuth2Command};
use thulium_mail_bridge::config::Config;
use thulium_mail_bridge::decide::{self, NoReferences, Rules};
use thulium_mail_bridge::ledger_retry::RetryTarget;
use thulium_mail_bridge::{explain, ledger_report, ledger_retry};

const EXIT_RUNTIME: u8 = 1;
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Explain { ref file, json } => explain_file(&cli, file, json),
        Command::Run { dry_run } => with_config(&cli, |config| {
            thulium_mail_bridge::daemon::run(config, cli.config_path().0, dry_run)
        }),
        Command::Once { dry_run } => with_config(&cli, |config| {
            thulium_mail_bridge::daemon::once(config, dry_run)
        }),
        Command::Check => with_config(&cli, thulium_mail_bridge::check::run),
        Command::OAuth2 {
            command: OAuth2Command::Login { ref mailbox },
        } => with_config(&cli, |c| thulium_mail_bridge::oauth2::login(c, mailbox)),
        Command::Ledger { ref command } => with_config(&cli, |config| ledger(&config, command)),
    }
}

/// Loads the config (exit 2 on any error), sets up logging, runs `f`.
fn with_config(cli: &Cli, f: impl FnOnce(Config) -> anyhow::Result<bool>) -> ExitCode {
    let (path, _) = cli.config_path();
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    thulium_mail_bridge::telemetry::init_logging(&config.log);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    match f(config) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_RUNTIME),
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn ledger(config: &Config, command: &LedgerCommand) -> anyhow::Result<bool> {
    let ledger = thulium_mail_bridge::ledger::Ledger::open(&config.state.dir)?;
    match command {
        LedgerCommand::Show { message_id } => match ledger_report::show(&ledger, message_id)? {
            Some(text) => print!("{text}"),
            None => {
                println!("{message_id}: not in the ledger (never posted or attempted)");
                return Ok(false);
            }
        },
        LedgerCommand::Stats => print!("{}", ledger_report::stats(&ledger)?),
        LedgerCommand::Retry {
            message_id,
            failed: _,
            move_back,
        } => {
            let target = match message_id {
                Some(id) => RetryTarget::MessageId(id),
                None => RetryTarget::AllFailed,
            };
            return ledger_retry::retry(config, &ledger, target, *move_back);
        }
    }
    Ok(true)
}

fn explain_file(cli: &Cli, file: &std::path::Path, json: bool) -> ExitCode {
    let (path, explicit) = cli.config_path();
    let rules = if explicit || path.exists() {
        Config::load(&path)
            .map_err(|e| e.to_string())
            .and_then(|c| Rules::new(&c))
    } else {
        eprintln!(
            "note: {} not found; explaining with the default rules",
            path.display()
        );
        Rules::defaults()
    };
    let rules = match rules {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let raw = match std::fs::read(file) {
        Ok(raw) => raw,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    // The file's mtime stands in for the IMAP INTERNALDATE, the fallback when Date is unusable.
    let mtime = std::fs::metadata(file)
        .and_then(|m| m.modified())
        .ok()
        .map(|t| chrono::DateTime::<chrono::Utc>::from(t).fixed_offset());
    let decision = decide::decide(&raw, &rules, &NoReferences, mtime);
    if json {
        println!("{}", explain::to_json(&decision));
    } else {
        print!("{}", explain::to_text(&decision));
    }
    ExitCode::SUCCESS
}
