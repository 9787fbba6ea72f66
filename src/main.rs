//! The command line only: parse the arguments, hand them to the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    thulium_mail_bridge::commands::dispatch(thulium_mail_bridge::cli::Cli::parse())
}
