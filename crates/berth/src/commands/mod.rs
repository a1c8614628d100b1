//! One file per verb.

mod create;
mod exec;
mod export;
mod image;
mod images;
mod import;
mod inspect;
mod kill;
mod load;
mod login;
mod logs;
mod monitor;
mod network;
mod port;
mod ps;
mod pull;
mod push;
mod restart;
mod rm;
mod rmi;
mod run;
mod save;
mod start;
mod stats;
mod stop;
mod system;
mod tag;
mod top;
mod volume;
mod wait;

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
        Command::Create(args) => create::run(&engine, *args),
        Command::Start(args) => start::run(&engine, &args),
        Command::Stop(args) => stop::run(&engine, &args),
        Command::Restart(args) => restart::run(&engine, &args),
        Command::Kill(args) => kill::run(&engine, &args),
        Command::Wait(args) => wait::run(&engine, &args),
        Command::Logs(args) => logs::run(&engine, &args),
        Command::Exec(args) => exec::run(&engine, &args),
        Command::Monitor(args) => monitor::run(&engine, &args),
        Command::Tag(args) => tag::run(&engine, &args),
        Command::Rmi(args) => rmi::run(&engine, &args),
        Command::Inspect(args) => inspect::run(&engine, &args),
        Command::Save(args) => save::run(&engine, &args),
        Command::Load(args) => load::run(&engine, &args),
        Command::Export(args) => export::run(&engine, &args),
        Command::Import(args) => import::run(&engine, &args),
        Command::Push(args) => push::run(&engine, &args),
        Command::Login(args) => login::login(&engine, &args),
        Command::Logout(args) => login::logout(&engine, &args),
        Command::System(cmd) => system::run(&engine, cmd),
        Command::Volume(cmd) => volume::run(&engine, cmd),
        Command::Top(args) => top::run(&engine, &args),
        Command::Stats(args) => stats::run(&engine, &args),
        Command::Network(cmd) => network::run(&engine, cmd),
        Command::Port(args) => port::run(&engine, &args),
        Command::Dns(args) => network::dns(&engine, &args),
        Command::NetGc(args) => network::gc(&engine, &args),
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

/// Runs `op` on each container, printing its name, or the error; 1 if any failed.
fn each(
    containers: &[String],
    mut op: impl FnMut(&str) -> Result<(), berth_engine::EngineError>,
) -> Result<i32> {
    let mut code = 0;
    for name in containers {
        match op(name) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("berth: {:#}", anyhow::Error::from(e));
                code = 1;
            }
        }
    }
    Ok(code)
}
