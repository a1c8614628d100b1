//! `berth __monitor ID` (hidden): the monitor of a detached container, started by
//! `run -d` and `start` (see berth-engine's `monitor`).

use anyhow::Result;
use berth_engine::Engine;

use crate::cli::MonitorArgs;

pub fn run(engine: &Engine, args: &MonitorArgs) -> Result<i32> {
    Ok(engine.monitor(&args.id)?)
}
