//! `berth stats [--no-stream] [--format json] [CTR…]`: CPU %, memory use and limit,
//! process count; every second until interrupted, or once with `--no-stream`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Result;
use berth_engine::{ContainerStats, Engine};

use super::images::human_size;
use crate::cli::StatsArgs;

pub fn run(engine: &Engine, args: &StatsArgs) -> Result<i32> {
    let json = super::json_format(&args.format)?;
    let interval = Duration::from_millis(if args.no_stream { 500 } else { 1000 });
    loop {
        let names = if args.containers.is_empty() {
            engine
                .list_containers(false)?
                .into_iter()
                .map(|c| c.record.id)
                .collect()
        } else {
            args.containers.clone()
        };
        let stats = engine.stats(&names, interval)?;
        let mut out = std::io::stdout().lock();
        if json {
            writeln!(out, "{}", serde_json::to_string_pretty(&stats)?)?;
        } else {
            if !args.no_stream && std::io::stdout().is_terminal() {
                write!(out, "\x1b[2J\x1b[H")?;
            }
            table(&mut out, &stats)?;
        }
        out.flush()?;
        if args.no_stream || stats.is_empty() {
            return Ok(0);
        }
    }
}

fn table(out: &mut impl Write, stats: &[ContainerStats]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<14} {:<20} {:>7} {:>22} {:>7} {:>5}",
        "CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"
    )?;
    for s in stats {
        let u = &s.usage;
        let limit = u.memory_limit.map_or("-".into(), human_size);
        let percent = u.memory_limit.map_or("-".into(), |l| {
            format!("{:.2}%", u.memory_bytes as f64 * 100.0 / l.max(1) as f64)
        });
        writeln!(
            out,
            "{:<14} {:<20} {:>7} {:>22} {:>7} {:>5}",
            &s.id[..12.min(s.id.len())],
            s.name,
            format!("{:.2}%", s.cpu_percent),
            format!("{} / {limit}", human_size(u.memory_bytes)),
            percent,
            u.pids
        )?;
    }
    Ok(())
}
