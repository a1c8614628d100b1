//! `berth kill [-s SIG] NAME...`.

use anyhow::Result;
use berth_engine::{parse_signal, Engine};

use crate::cli::KillArgs;

pub fn run(engine: &Engine, args: &KillArgs) -> Result<i32> {
    let signal = parse_signal(&args.signal)?;
    super::each(&args.containers, |name| {
        engine.kill(name, signal).map(|_| ())
    })
}
