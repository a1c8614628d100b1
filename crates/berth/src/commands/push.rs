//! `berth push IMAGE [DEST]`.

use anyhow::Result;
use berth_engine::Engine;

use crate::cli::PushArgs;

pub fn run(engine: &Engine, args: &PushArgs) -> Result<i32> {
    let (dest, digest) = engine.push(&args.image, args.destination.as_deref())?;
    println!("{dest} {digest}");
    Ok(0)
}
