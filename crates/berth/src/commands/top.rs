//! `berth top CTR`: the container's processes, like `ps -f`.

use anyhow::Result;
use berth_engine::Engine;

use crate::cli::TopArgs;

pub fn run(engine: &Engine, args: &TopArgs) -> Result<i32> {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as u64;
    println!(
        "{:<8} {:>8} {:>8} {:<4} {:>8} CMD",
        "UID", "PID", "PPID", "STAT", "TIME"
    );
    for p in engine.top(&args.container)? {
        let secs = p.cpu_ticks / ticks;
        let time = format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
        println!(
            "{:<8} {:>8} {:>8} {:<4} {:>8} {}",
            p.uid, p.pid, p.ppid, p.state, time, p.command
        );
    }
    Ok(0)
}
