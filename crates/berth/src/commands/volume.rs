//! `berth volume create [NAME] | ls | inspect NAME… | rm [-f] NAME… | prune`.

use anyhow::Result;
use berth_engine::Engine;

use crate::cli::VolumeCommand;

pub fn run(engine: &Engine, cmd: VolumeCommand) -> Result<i32> {
    match cmd {
        VolumeCommand::Create(args) => {
            println!("{}", engine.volume_create(args.name.as_deref())?.name);
            Ok(0)
        }
        VolumeCommand::Ls(args) => {
            let json = super::json_format(&args.format)?;
            let volumes = engine.volume_list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&volumes)?);
            } else {
                println!("{:<10} VOLUME NAME", "DRIVER");
                for v in volumes {
                    println!("{:<10} {}", "local", v.name);
                }
            }
            Ok(0)
        }
        VolumeCommand::Inspect(args) => {
            let volumes = args
                .names
                .iter()
                .map(|n| engine.volume_inspect(n))
                .collect::<Result<Vec<_>, _>>()?;
            println!("{}", serde_json::to_string_pretty(&volumes)?);
            Ok(0)
        }
        VolumeCommand::Rm(args) => {
            super::each(&args.names, |n| engine.volume_remove(n, args.force))
        }
        VolumeCommand::Prune(_) => {
            for name in engine.volume_prune()? {
                println!("{name}");
            }
            Ok(0)
        }
    }
}
