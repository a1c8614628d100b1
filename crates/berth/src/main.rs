//! `berth`: the daemonless container engine's command line. Each verb is one file
//! under `commands/` calling `berth-engine`; this file parses and reports errors.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(255)),
        Err(e) => {
            eprintln!("berth: {e:#}");
            // Like docker: 125 when the engine itself failed.
            ExitCode::from(125)
        }
    }
}
