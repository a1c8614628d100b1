//! `berth export -o FILE CONTAINER`.

use anyhow::Result;
use berth_engine::Engine;

use crate::cli::ExportArgs;

pub fn run(engine: &Engine, args: &ExportArgs) -> Result<i32> {
    engine.export_container(&args.container, &args.output)?;
    Ok(0)
}
