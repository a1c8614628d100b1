use anyhow::{Context, Result};
use berth_container::checkpoint::RestoreOptions;
use berth_container::Runtime;

use crate::cli::RestoreArgs;

/// Detached: 0 once the container runs; else the restored process's exit status.
pub fn run(rt: &Runtime, args: &RestoreArgs, criu: Option<&str>) -> Result<i32> {
    let opts = RestoreOptions {
        criu: criu.map(Into::into),
        id: args.id.clone(),
        bundle: args.bundle.clone(),
        image_path: args.criu.image_path.clone(),
        work_path: args.criu.work_path.clone(),
        detach: args.detach,
        pid_file: args.pid_file.clone(),
        no_pivot: args.no_pivot,
        flags: super::checkpoint::common_flags(&args.criu)?,
    };
    rt.restore(&opts)
        .with_context(|| format!("restoring {}", args.id))
}
