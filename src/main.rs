//! The command line only: parse the arguments, hand them to the library.

// The bridge needs no unsafe code of its own (the test bed, with its libc calls, may).
#![forbid(unsafe_code)]

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    thulium_mail_bridge::commands::dispatch(thulium_mail_bridge::cli::Cli::parse())
}
