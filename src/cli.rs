//! The command line (SPEC "Command line"); names here are part of the contract.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "thulium-mail-bridge",
    version,
    about = "Posts customer e-mail replies from IMAP mailboxes to the Thulium helpdesk",
    long_about = "Watches IMAP mailboxes, finds the Thulium ticket number in each reply's subject, \
                  cleans the reply (quotes, signatures, unsafe HTML) and posts it to the ticket as a \
                  customer response with the mail's own date, then moves or flags the mail so it is \
                  never handled twice.\n\nExit codes: 0 ok, 1 runtime failure, 2 bad usage or bad config."
)]
pub struct Cli {
    /// Config file [default: $THULIUM_MAIL_BRIDGE_CONFIG, else /etc/thulium-mail-bridge/config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: watch every mailbox until SIGTERM/SIGINT; SIGHUP re-reads the config.
    Run {
        /// Fetch and decide, but post nothing and change nothing on the server.
        #[arg(long)]
        dry_run: bool,
    },
    /// One pass over every mailbox, then exit (non-zero when a mailbox or the API was unreachable).
    Once {
        /// Fetch and decide, but post nothing and change nothing on the server.
        #[arg(long)]
        dry_run: bool,
    },
    /// Validate the config, log in to every mailbox, create target folders, call the API once.
    Check,
    /// How the running daemon is doing, on one screen (from its [metrics] listener);
    /// non-zero when a mailbox or the API is down.
    Status,
    /// The ledger of handled mails (works while the daemon runs).
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// OAuth2 for mailboxes with [mailbox.oauth2].
    #[command(name = "oauth2")]
    OAuth2 {
        #[command(subcommand)]
        command: OAuth2Command,
    },
    /// Writes the man page or a shell completion to stdout (for packagers).
    #[command(hide = true)]
    Generate {
        #[arg(value_enum)]
        what: Generated,
    },
    /// Offline: what the bridge would do with this mail. No network, no state change.
    Explain {
        /// A raw RFC 5322 mail (.eml)
        file: PathBuf,
        /// Print one JSON object instead of a summary.
        #[arg(long)]
        json: bool,
        /// When the server received the mail (its IMAP INTERNALDATE), RFC 3339 or RFC 2822;
        /// a Date header far from it is then replaced by it, as the daemon does.
        #[arg(long, value_name = "DATE", value_parser = parse_received)]
        received: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// The mailbox whose settings apply (its own address, trusted_authserv_id,
        /// new_ticket) [default: the first in the config].
        #[arg(long, value_name = "NAME")]
        mailbox: Option<String>,
    },
}

fn parse_received(s: &str) -> Result<chrono::DateTime<chrono::FixedOffset>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .or_else(|_| chrono::DateTime::parse_from_rfc2822(s))
        .map_err(|_| format!("{s:?} is neither RFC 3339 (2026-11-26T10:00:00+01:00) nor RFC 2822"))
}

/// What `generate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generated {
    Man,
    Bash,
    Zsh,
    Fish,
}

/// The man page or a shell completion, generated from this command line's definition.
pub fn generate(what: Generated, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let shell = match what {
        Generated::Man => return clap_mangen::Man::new(command).render(out),
        Generated::Bash => clap_complete::Shell::Bash,
        Generated::Zsh => clap_complete::Shell::Zsh,
        Generated::Fish => clap_complete::Shell::Fish,
    };
    // clap_complete panics on a failed write (a closed pipe): it writes to memory here.
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut command, "thulium-mail-bridge", &mut text);
    out.write_all(&text)
}

#[derive(Debug, Subcommand)]
pub enum OAuth2Command {
    /// Sign a mailbox in with the device flow (RFC 8628) and save its refresh token (mode 0600).
    Login {
        #[arg(long)]
        mailbox: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// The mails the bridge did not post, with why, one line each.
    ///
    /// Each mail once, with its latest decision: when, mailbox, folder (read from),
    /// state, ticket, sender, subject, reason. Without --state: the failed, unverified,
    /// unmatched and ignored ones. Kept for state.keep_decisions (90 days by default).
    List {
        /// Only mails whose latest decision is this (repeat for more than one).
        #[arg(long, value_name = "STATE",
              value_parser = clap::builder::PossibleValuesParser::new(crate::daemon::outcome::LISTED))]
        state: Vec<String>,
        /// Only mails decided within this long (30m, 12h, 7d), at most state.keep_decisions.
        #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = humantime::parse_duration)]
        since: std::time::Duration,
        /// Only mails of this [[mailbox]] (its name).
        #[arg(long, value_name = "NAME")]
        mailbox: Option<String>,
        /// One JSON object a line (JSON Lines) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Every mail recorded under a Message-ID (or a sha256: content hash prefix): state,
    /// ticket, attempts, times, where it was seen.
    Show { message_id: String },
    /// How many mails are posted, pending and failed.
    Stats,
    /// Copy the SQLite ledger in state.dir into the PostgreSQL ledger [state] names
    /// (backend = "postgres"), before a second host joins. Run it with the bridge
    /// stopped; running it again adds nothing twice.
    Copy {
        /// The backend to copy to.
        #[arg(long, value_parser = ["postgres"])]
        to: String,
    },
    /// Give failed replies another chance: they are posted again once their mail is
    /// back in the watched folder.
    Retry {
        /// The failed mail's Message-ID.
        #[arg(required_unless_present = "failed", conflicts_with = "failed")]
        message_id: Option<String>,
        /// Every failed mail.
        #[arg(long)]
        failed: bool,
        /// Move the mails back from the on_failed folder (when on_failed is move:<folder>).
        #[arg(long)]
        move_back: bool,
    },
}

impl Cli {
    /// `--config`, else `$THULIUM_MAIL_BRIDGE_CONFIG`, else the default path; and whether it was chosen explicitly.
    pub fn config_path(&self) -> (PathBuf, bool) {
        if let Some(p) = &self.config {
            return (p.clone(), true);
        }
        match std::env::var_os("THULIUM_MAIL_BRIDGE_CONFIG") {
            Some(p) if !p.is_empty() => (PathBuf::from(p), true),
            _ => (PathBuf::from(crate::config::DEFAULT_PATH), false),
        }
    }
}
