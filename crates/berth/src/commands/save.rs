//! `berth save -o FILE [--format docker-archive|oci-archive] IMAGE...`.

use anyhow::Result;
use berth_engine::Engine;

use crate::cli::SaveArgs;

pub fn run(engine: &Engine, args: &SaveArgs) -> Result<i32> {
    engine.save_images(&args.images, args.format, &args.output)?;
    Ok(0)
}
