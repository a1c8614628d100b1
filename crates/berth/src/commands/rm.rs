//! `berth rm [-f] NAME|ID...`.

use anyhow::Result;
use berth_engine::Engine;

use crate::cli::RmArgs;

pub fn run(engine: &Engine, args: &RmArgs) -> Result<i32> {
    let mut code = 0;
    for name in &args.containers {
        match engine.remove(name, args.force) {
            Ok(_) => println!("{name}"),
            Err(e) => {
                eprintln!("berth: {:#}", anyhow::Error::from(e));
                code = 1;
            }
        }
    }
    Ok(code)
}
