//! The `podstack` binary: parse the command line, run it, exit with its code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = podstack::cli::Cli::parse();
    podstack::cli::run(cli).into()
}
