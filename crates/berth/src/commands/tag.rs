//! `berth tag SRC DST`.

use anyhow::Result;
use berth_engine::Engine;

use crate::cli::TagArgs;

pub fn run(engine: &Engine, args: &TagArgs) -> Result<i32> {
    engine.tag_image(&args.source, &args.target)?;
    Ok(0)
}
