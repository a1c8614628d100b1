//! `berth import FILE [REF]`: prints the image's name and manifest digest.

use anyhow::Result;
use berth_engine::Engine;

use crate::cli::ImportArgs;

pub fn run(engine: &Engine, args: &ImportArgs) -> Result<i32> {
    let (name, digest) = engine.import_tar(&args.file, args.reference.as_deref())?;
    println!("{name} {digest}");
    Ok(0)
}
