//! `berth inspect [--type image|container] NAME...`: a JSON array, one object per
//! name; exit 1 if any name was not found (the others are still printed).

use anyhow::Result;
use berth_engine::{Engine, EngineError};

use crate::cli::InspectArgs;

fn one(engine: &Engine, kind: Option<&str>, name: &str) -> Result<serde_json::Value> {
    let image = |engine: &Engine| -> Result<serde_json::Value> {
        Ok(serde_json::to_value(engine.inspect_image(name)?)?)
    };
    match kind {
        Some("image") => image(engine),
        Some(_) => Ok(serde_json::to_value(engine.inspect_container(name)?)?),
        None => match engine.inspect_container(name) {
            Ok(c) => Ok(serde_json::to_value(c)?),
            Err(EngineError::ContainerNotFound(_)) => image(engine)
                .map_err(|e| anyhow::anyhow!("no such image or container: {name} ({e:#})")),
            Err(e) => Err(e.into()),
        },
    }
}

pub fn run(engine: &Engine, args: &InspectArgs) -> Result<i32> {
    let mut out = Vec::new();
    let mut code = 0;
    for name in &args.names {
        match one(engine, args.kind.as_deref(), name) {
            Ok(v) => out.push(v),
            Err(e) => {
                eprintln!("berth: {e:#}");
                code = 1;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(code)
}
