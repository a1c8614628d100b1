//! `berth image default`.

use anyhow::Result;
use berth_engine::Engine;

pub fn default(engine: &Engine) -> Result<i32> {
    let digest = engine.default_image()?;
    println!("{} {digest}", berth_engine::build::DEFAULT_IMAGE);
    Ok(0)
}
