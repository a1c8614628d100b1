//! `berth create [--rm] [--name N] [flags] IMAGE [CMD...]`: prints the id.

use anyhow::Result;
use berth_engine::Engine;

use crate::cli::RunArgs;

pub fn run(engine: &Engine, args: RunArgs) -> Result<i32> {
    super::run::no_detached_tty(&args)?;
    println!("{}", engine.create(&super::run::options(args)?)?.id);
    Ok(0)
}
