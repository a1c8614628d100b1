use anyhow::Result;
use berth_container::Runtime;

pub fn run(rt: &Runtime, id: &str, force: bool) -> Result<i32> {
    rt.delete(id, force)?;
    Ok(0)
}
