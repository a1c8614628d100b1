//! berth-runtime: an OCI runtime with runc's command line. Parses arguments, sets up
//! logging, and calls berth-container; every verb lives in `commands/`.

mod cli;
mod commands;
mod logging;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let log_to_file = logging::init(&cli.global);
    let code = match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            let text = message(&err);
            if log_to_file {
                tracing::error!("{text}");
            }
            eprintln!("berth-runtime: {text}");
            1
        }
    };
    std::process::exit(code);
}

/// The error and its causes, each cause added only if the text so far lacks it.
fn message(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text = format!("{text}: {c}");
        }
    }
    text
}
