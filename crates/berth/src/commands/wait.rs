//! `berth wait NAME...`: one exit code a line.

use anyhow::Result;
use berth_engine::Engine;

use crate::cli::ContainersArgs;

pub fn run(engine: &Engine, args: &ContainersArgs) -> Result<i32> {
    let mut status = 0;
    for name in &args.containers {
        match engine.wait(name) {
            Ok(code) => println!("{code}"),
            Err(e) => {
                eprintln!("berth: {:#}", anyhow::Error::from(e));
                status = 1;
            }
        }
    }
    Ok(status)
}
