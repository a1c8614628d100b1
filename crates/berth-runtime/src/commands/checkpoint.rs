use anyhow::{Context, Result};
use berth_container::checkpoint::{CheckpointOptions, CommonFlags};
use berth_container::Runtime;

use crate::cli::{CheckpointArgs, CriuFlags};

pub fn run(rt: &Runtime, args: &CheckpointArgs, criu: Option<&str>) -> Result<i32> {
    let opts = CheckpointOptions {
        criu: criu.map(Into::into),
        image_path: args.criu.image_path.clone(),
        work_path: args.criu.work_path.clone(),
        leave_running: args.leave_running,
        pre_dump: args.pre_dump,
        parent_path: args.parent_path.clone(),
        flags: common_flags(&args.criu)?,
    };
    rt.checkpoint(&args.id, &opts)
        .with_context(|| format!("checkpointing {}", args.id))?;
    Ok(0)
}

/// The flags `checkpoint` and `restore` share.
pub fn common_flags(flags: &CriuFlags) -> Result<CommonFlags> {
    Ok(CommonFlags {
        tcp_established: flags.tcp_established,
        ext_unix_sk: flags.ext_unix_sk,
        shell_job: flags.shell_job,
        file_locks: flags.file_locks,
        cgroups_mode: flags
            .manage_cgroups_mode
            .parse()
            .map_err(anyhow::Error::msg)?,
    })
}
