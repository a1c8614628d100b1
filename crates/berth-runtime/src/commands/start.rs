use anyhow::Result;
use berth_container::Runtime;

pub fn run(rt: &Runtime, id: &str) -> Result<i32> {
    rt.start(id)?;
    Ok(0)
}
