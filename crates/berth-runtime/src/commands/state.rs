use anyhow::Result;
use berth_container::Runtime;

pub fn run(rt: &Runtime, id: &str) -> Result<i32> {
    let state = rt.state(id)?;
    println!("{}", serde_json::to_string_pretty(&state)?);
    Ok(0)
}
