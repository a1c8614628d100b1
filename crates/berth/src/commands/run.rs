//! `berth run [-d] [--rm] [--name N] [flags] IMAGE [CMD...]`: in the foreground the
//! exit status is the container's; with `-d` the id is printed once it runs.

use anyhow::{Context, Result};
use berth_engine::security::SecurityOpts;
use berth_engine::{Engine, Isolation, NetFlags, RunFlags, RunOptions};

use crate::cli::RunArgs;

pub fn run(engine: &Engine, args: RunArgs) -> Result<i32> {
    let detach = args.detach;
    if detach {
        no_detached_tty(&args)?;
    }
    if !args.interactive && !detach {
        let null = std::fs::File::open("/dev/null").context("opening /dev/null")?;
        nix::unistd::dup2_stdin(&null).context("making stdin /dev/null")?;
    }
    let opts = options(args)?;
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

/// A detached container has nobody to relay its pty (no attach yet).
pub fn no_detached_tty(args: &RunArgs) -> Result<()> {
    if args.tty {
        anyhow::bail!(
            "-t needs the foreground: a detached or created container cannot have a terminal yet"
        );
    }
    Ok(())
}

/// The engine's options from the flags (shared with `create`).
pub fn options(args: RunArgs) -> Result<RunOptions> {
    let mut security = SecurityOpts::default();
    for opt in &args.security_opt {
        security.add(opt).map_err(anyhow::Error::msg)?;
    }
    Ok(RunOptions {
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
            cap_add: args.cap_add,
            cap_drop: args.cap_drop,
            security,
            tty: args.tty,
            net: NetFlags {
                ip: args.ip,
                publish: args.publish,
                publish_all: args.publish_all,
                dns: args.dns,
                add_hosts: args.add_host,
            },
            accel: args.accel,
        },
    })
}
