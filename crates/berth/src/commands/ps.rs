//! `berth ps [-a] [--format json]`.

use anyhow::Result;
use berth_engine::{Engine, Phase};

use crate::cli::PsArgs;

pub fn run(engine: &Engine, args: &PsArgs) -> Result<i32> {
    let json = super::json_format(&args.format)?;
    let containers = engine.list_containers(args.all)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&containers)?);
        return Ok(0);
    }
    println!(
        "{:<14} {:<32} {:<24} {:<14} NAMES",
        "CONTAINER ID", "IMAGE", "COMMAND", "STATUS"
    );
    for c in containers {
        let r = &c.record;
        let status = match (c.status, r.exit_code) {
            (Phase::Exited, Some(code)) => format!("exited ({code})"),
            (Phase::Exited, None) => "exited (?)".into(),
            (Phase::Running, _) => "running".into(),
            (Phase::Created, _) => "created".into(),
        };
        let mut command = r.command.join(" ");
        if command.len() > 22 {
            command = format!("{}…", command.chars().take(21).collect::<String>());
        }
        println!(
            "{:<14} {:<32} {:<24} {:<14} {}",
            &r.id[..12],
            r.image,
            format!("\"{command}\""),
            status,
            r.name
        );
    }
    Ok(0)
}
