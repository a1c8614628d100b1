//! `berth exec [-i] [-t] [-e K=V] [-w DIR] [-u USER] NAME CMD...`: the exit status
//! is the command's.

use std::fs::File;

use anyhow::{Context, Result};
use berth_engine::{Engine, ExecRequest};

use crate::cli::ExecArgs;

pub fn run(engine: &Engine, args: &ExecArgs) -> Result<i32> {
    if !args.interactive {
        let null = File::open("/dev/null").context("opening /dev/null")?;
        nix::unistd::dup2_stdin(&null).context("making stdin /dev/null")?;
    }
    let req = ExecRequest {
        command: args.command.clone(),
        env: args.env.clone(),
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        tty: args.tty,
    };
    Ok(engine.exec(&args.container, &req)?)
}
