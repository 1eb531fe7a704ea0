use std::process::ExitCode;

use clap::Parser;
use hourglass::cli::{Cli, Command, agent, appliance};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let done = match cli.command {
        Command::Agent { command } => agent::run(command),
        _ => appliance::run(cli),
    };
    match done {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hourglass: {e}");
            ExitCode::FAILURE
        }
    }
}
