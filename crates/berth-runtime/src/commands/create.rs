use anyhow::Result;
use berth_container::Runtime;

use crate::cli::CreateArgs;

pub fn run(rt: &Runtime, args: &CreateArgs) -> Result<i32> {
    rt.create(&super::create_options(args))?;
    Ok(0)
}
