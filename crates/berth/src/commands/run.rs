//! `berth run [--rm] [--name N] [flags] IMAGE [CMD...]`, in the foreground: the
//! exit status is the container's.

use anyhow::Result;
use berth_engine::{Engine, RunFlags, RunOptions};

use crate::cli::RunArgs;

pub fn run(engine: &Engine, args: RunArgs) -> Result<i32> {
    let opts = RunOptions {
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
        },
    };
    Ok(engine.run(&opts)?)
}
