//! `berth port CONTAINER`: `80/tcp -> 0.0.0.0:8080`, one line per published port.

use anyhow::Result;
use berth_engine::Engine;

use crate::cli::PortArgs;

pub fn run(engine: &Engine, args: &PortArgs) -> Result<i32> {
    for p in engine.ports(&args.container)? {
        println!("{p}");
    }
    Ok(0)
}
