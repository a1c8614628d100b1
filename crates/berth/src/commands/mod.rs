//! One file per verb.

mod image;
mod images;
mod ps;
mod pull;
mod rm;
mod run;

use anyhow::Result;
use berth_engine::Engine;

use crate::cli::{Cli, Command, ImageCommand};

/// Runs the verb; returns the process's exit code.
pub fn dispatch(cli: Cli) -> Result<i32> {
    let engine = Engine::open(&cli.root)?;
    match cli.command {
        Command::Run(args) => run::run(&engine, *args),
        Command::Pull(args) => pull::run(&engine, &args),
        Command::Images(args) | Command::Image(ImageCommand::Ls(args)) => {
            images::run(&engine, &args)
        }
        Command::Image(ImageCommand::Default) => image::default(&engine),
        Command::Ps(args) => ps::run(&engine, &args),
        Command::Rm(args) => rm::run(&engine, &args),
    }
}

/// `table` or `json`.
pub fn json_format(format: &str) -> Result<bool> {
    match format {
        "table" => Ok(false),
        "json" => Ok(true),
        other => anyhow::bail!("unknown format {other:?} (table or json)"),
    }
}
