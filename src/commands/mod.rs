//! The commands: `run` and `once` (the daemon), `check`, `explain`, `ledger` (show,
//! stats, list, retry), `oauth2 login`. [`dispatch`] maps the command line to them and
//! their results to exit codes.

pub(crate) mod check;
pub mod explain;
pub(crate) mod ledger_copy;
pub(crate) mod ledger_list;
pub(crate) mod ledger_report;
pub(crate) mod ledger_retry;
pub(crate) mod status;

use crate::cli::{Cli, Command, LedgerCommand, OAuth2Command};
use crate::config::{Config, ConfigError, Invalid, default_rules};
use crate::ledger::ReadOnlyLedger;
use crate::mail::decide::{self, NoReferences, References, Rules};
use ledger_retry::RetryTarget;
use std::process::ExitCode;

const EXIT_RUNTIME: u8 = 1;
const EXIT_CONFIG: u8 = 2;

/// Runs the command the user asked for; the exit code follows SPEC (0, 1, 2).
pub fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Explain {
            ref file,
            json,
            received,
            ref mailbox,
        } => explain_file(&cli, file, json, received, mailbox.as_deref()),
        Command::Run { dry_run } => with_config(&cli, |config| {
            crate::daemon::run(config, cli.config_path().0, dry_run)
        }),
        Command::Once { dry_run } => {
            with_config(&cli, |config| crate::daemon::once(config, dry_run))
        }
        Command::Check => with_config(&cli, check::run),
        Command::Status => with_config(&cli, |config| status::run(&config)),
        Command::Generate { what } => match crate::cli::generate(what, &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_RUNTIME)
            }
        },
        Command::OAuth2 {
            command: OAuth2Command::Login { ref mailbox },
        } => with_config(&cli, |c| crate::oauth2::login(c, mailbox)),
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
    crate::ops::telemetry::init_logging(&config.log);
    // `check` prints its warnings as lines of its own: each is said once.
    if !matches!(cli.command, Command::Check) {
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
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
    if let LedgerCommand::Copy { .. } = command {
        // It opens both ledgers itself.
        return ledger_copy::copy(config);
    }
    let ledger = crate::ledger::Ledger::open_configured(&config.state)?;
    match command {
        LedgerCommand::Copy { .. } => {}
        LedgerCommand::Show { message_id } => match ledger_report::show(&ledger, message_id)? {
            Some(text) => print!("{text}"),
            None => {
                println!("{message_id}: not in the ledger (never posted or attempted)");
                return Ok(false);
            }
        },
        LedgerCommand::Stats => print!("{}", ledger_report::stats(&ledger)?),
        LedgerCommand::List {
            state,
            since,
            mailbox,
            json,
        } => {
            let filter = ledger_list::ListFilter {
                states: state,
                since: *since,
                mailbox: mailbox.as_deref(),
            };
            print!("{}", ledger_list::list(&ledger, &filter, *json)?);
        }
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

/// What `explain` looks References up in: the daemon's ledger, read-only, so the two
/// decide alike; when it cannot be read, a note says the answer may differ.
fn references(config: Option<&Config>, rules: &Rules) -> Box<dyn References> {
    let Some(config) = config.filter(|_| rules.use_references) else {
        return Box::new(NoReferences);
    };
    let opened: Result<Box<dyn References>, _> = match config.state.backend {
        crate::config::LedgerBackend::Sqlite => {
            ReadOnlyLedger::open(&config.state.dir).map(|l| Box::new(l) as Box<dyn References>)
        }
        // A shared ledger is only read (its tables exist once any instance ran).
        crate::config::LedgerBackend::Postgres => {
            crate::ledger::Ledger::open_configured(&config.state)
                .map(|l| Box::new(l) as Box<dyn References>)
        }
    };
    match opened {
        Ok(ledger) => ledger,
        Err(e) => {
            eprintln!(
                "note: {e}; In-Reply-To/References are not looked up, so for a mail without a ticket number the daemon may decide otherwise"
            );
            Box::new(NoReferences)
        }
    }
}

fn explain_file(
    cli: &Cli,
    file: &std::path::Path,
    json: bool,
    received: Option<chrono::DateTime<chrono::FixedOffset>>,
    mailbox: Option<&str>,
) -> ExitCode {
    let (path, explicit) = cli.config_path();
    let config_error = |Invalid { key, message }| ConfigError {
        file: path.display().to_string(),
        key,
        message,
    };
    let config = if explicit || path.exists() {
        match Config::load(&path) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    } else {
        eprintln!(
            "note: {} not found; explaining with the default rules",
            path.display()
        );
        None
    };
    let rules = match &config {
        Some(c) => c
            .rules()
            .map_err(config_error)
            .and_then(|rules| match mailbox {
                None => Ok(c
                    .mailboxes
                    .first()
                    .map_or(rules.clone(), |mb| mb.rules(&rules))),
                Some(name) => match c.mailboxes.iter().find(|m| m.name == name) {
                    Some(mb) => Ok(mb.rules(&rules)),
                    None => Err(ConfigError {
                        file: path.display().to_string(),
                        key: "--mailbox".into(),
                        message: format!("no [[mailbox]] named {name:?} in the config"),
                    }),
                },
            }),
        None => default_rules().map_err(config_error),
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
    let refs = references(config.as_ref(), &rules);
    let decision = decide::decide(&raw, &rules, refs.as_ref(), received);
    if json {
        println!("{}", explain::to_json(&decision));
    } else {
        print!("{}", explain::to_text(&decision));
    }
    ExitCode::SUCCESS
}
