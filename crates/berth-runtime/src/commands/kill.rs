use anyhow::Result;
use berth_container::{signal, Runtime};

pub fn run(rt: &Runtime, id: &str, sig: &str, all: bool) -> Result<i32> {
    let sig = signal::parse(sig)?;
    rt.kill(id, sig, all)?;
    Ok(0)
}
