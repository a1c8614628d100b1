use anyhow::Result;
use berth_container::Runtime;

use crate::cli::CreateArgs;

/// Foreground: the container's exit status (128+N when killed by signal N).
pub fn run(rt: &Runtime, args: &CreateArgs, detach: bool) -> Result<i32> {
    Ok(rt.run(&super::create_options(args), detach)?)
}
