//! `berth start NAME...`: each in the background, under a monitor.

use anyhow::Result;
use berth_engine::Engine;

use crate::cli::ContainersArgs;

pub fn run(engine: &Engine, args: &ContainersArgs) -> Result<i32> {
    super::each(&args.containers, |name| engine.start(name).map(|_| ()))
}
