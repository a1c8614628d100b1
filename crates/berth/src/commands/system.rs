//! `berth system df [--format json]` and `berth system prune [--all]`.

use anyhow::Result;
use berth_engine::system::UsageLine;
use berth_engine::Engine;

use super::images::human_size;
use crate::cli::SystemCommand;

pub fn run(engine: &Engine, cmd: SystemCommand) -> Result<i32> {
    match cmd {
        SystemCommand::Df(args) => {
            let json = super::json_format(&args.format)?;
            let du = engine.disk_usage()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&du)?);
                return Ok(0);
            }
            println!(
                "{:<12} {:>6} {:>6} {:>10} {:>12}",
                "TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"
            );
            let line = |kind: &str, u: &UsageLine| {
                println!(
                    "{:<12} {:>6} {:>6} {:>10} {:>12}",
                    kind,
                    u.total,
                    u.active,
                    human_size(u.size),
                    human_size(u.reclaimable)
                );
            };
            line("Images", &du.images);
            line("Containers", &du.containers);
            line("Layers", &du.layers);
            line("Blobs", &du.blobs);
            Ok(0)
        }
        SystemCommand::Prune(args) => {
            let r = engine.prune(args.all)?;
            for c in &r.containers {
                println!("Deleted container: {c}");
            }
            let n = &r.network;
            for l in &n.leases {
                println!("Released stale lease: {l}");
            }
            for x in n.netns.iter().chain(&n.links) {
                println!("Deleted network leftover: {x}");
            }
            for i in &r.images {
                println!("Deleted image: {i}");
            }
            println!(
                "Deleted {} blobs and {} layers; reclaimed {} of blobs",
                r.blobs.len(),
                r.layers.len(),
                human_size(r.blob_bytes)
            );
            Ok(0)
        }
    }
}
