//! `berth run [-d] [--rm] [--name N] [flags] IMAGE [CMD...]`: in the foreground the
//! exit status is the container's; with `-d` the id is printed once it runs.

use anyhow::Result;
use berth_engine::{Engine, Isolation, RunFlags, RunOptions};

use crate::cli::RunArgs;

pub fn run(engine: &Engine, args: RunArgs) -> Result<i32> {
    let detach = args.detach;
    let opts = options(args);
    if opts.isolation == Isolation::Vm && opts.flags.accel.is_none() {
        if let Some(notice) = berth_engine::accel_notice() {
            eprintln!("{notice}");
        }
    }
    if detach {
        println!("{}", engine.run_detached(&opts)?.id);
        return Ok(0);
    }
    Ok(engine.run(&opts)?)
}

/// The engine's options from the flags (shared with `create`).
pub fn options(args: RunArgs) -> RunOptions {
    RunOptions {
        image: args.image,
        name: args.name,
        remove: args.rm,
        isolation: args.isolation,
        flags: RunFlags {
            entrypoint: args.entrypoint,
            command: args.command,
            env: args.env,
            env_files: args.env_file,
            workdir: args.workdir,
            user: args.user,
            hostname: args.hostname,
            read_only: args.read_only,
            network: args.network,
            memory: args.memory,
            cpus: args.cpus,
            pids_limit: args.pids_limit,
            volumes: args.volume,
            tmpfs: args.tmpfs,
            accel: args.accel,
        },
    }
}
