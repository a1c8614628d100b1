//! One file per verb; `dispatch` routes the parsed command line to it.

mod checkpoint;
mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
mod ps;
mod restore;
mod run;
mod spec;
mod start;
mod state;
mod update;

use anyhow::{bail, Result};
use berth_container::{CreateOptions, Runtime};

use crate::cli::{Cli, Command, CreateArgs};

/// Run the command; the Ok value is the process exit code.
pub fn dispatch(cli: Cli) -> Result<i32> {
    if cli.global.systemd_cgroup {
        bail!("--systemd-cgroup: the systemd cgroup driver is not supported yet; use the cgroupfs driver (the default)");
    }
    let rt = Runtime::new(&cli.global.root);
    match cli.command {
        Command::Create(args) => create::run(&rt, &args),
        Command::Start { id } => start::run(&rt, &id),
        Command::State { id } => state::run(&rt, &id),
        Command::Kill { all, id, signal } => kill::run(&rt, &id, &signal, all),
        Command::Delete { force, id } => delete::run(&rt, &id, force),
        Command::Run { create, detach, .. } => run::run(&rt, &create, detach),
        Command::List { format, quiet } => list::run(&rt, format, quiet),
        Command::Spec { bundle, rootless } => spec::run(&bundle, rootless),
        Command::Features => features::run(),
        Command::Exec(args) => exec::run(&rt, &args),
        Command::Update(args) => update::run(&rt, &args),
        Command::Pause { id } => pause::pause(&rt, &id),
        Command::Resume { id } => pause::resume(&rt, &id),
        Command::Ps {
            format,
            id,
            ps_args,
        } => ps::run(&rt, &id, format, &ps_args),
        Command::Events {
            stats,
            interval,
            id,
        } => events::run(&rt, &id, stats, &interval),
        Command::Checkpoint(args) => checkpoint::run(&rt, &args, cli.global.criu.as_deref()),
        Command::Restore(args) => restore::run(&rt, &args, cli.global.criu.as_deref()),
    }
}

fn create_options(args: &CreateArgs) -> CreateOptions {
    CreateOptions {
        id: args.id.clone(),
        bundle: args.bundle.clone(),
        pid_file: args.pid_file.clone(),
        console_socket: args.console_socket.clone(),
        no_pivot: args.no_pivot,
        preserve_fds: args.preserve_fds,
        console_fd: None,
        transient: false,
    }
}
