//! `berth stop [-t SECS] NAME...`.

use std::time::Duration;

use anyhow::Result;
use berth_engine::Engine;

use crate::cli::StopArgs;

pub fn run(engine: &Engine, args: &StopArgs) -> Result<i32> {
    let timeout = Duration::from_secs(args.time);
    super::each(&args.containers, |name| {
        engine.stop(name, timeout).map(|_| ())
    })
}
