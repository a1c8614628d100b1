//! `berth load -i FILE`: one `Loaded image: NAME` line per image, like docker.

use anyhow::Result;
use berth_engine::Engine;

use crate::cli::LoadArgs;

pub fn run(engine: &Engine, args: &LoadArgs) -> Result<i32> {
    for (name, _) in engine.load_images(&args.input)? {
        println!("Loaded image: {name}");
    }
    Ok(0)
}
