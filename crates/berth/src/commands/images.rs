//! `berth images`.

use anyhow::Result;
use berth_engine::Engine;

use crate::cli::FormatArgs;

/// `1.9MB`-style sizes, like docker (powers of 1000).
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < units.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
            + units[unit]
    }
}

pub fn run(engine: &Engine, args: &FormatArgs) -> Result<i32> {
    let json = super::json_format(&args.format)?;
    let images = engine.list_images()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&images)?);
        return Ok(0);
    }
    println!(
        "{:<40} {:<16} {:<14} {:>10}",
        "REPOSITORY", "TAG", "IMAGE ID", "SIZE"
    );
    for i in images {
        println!(
            "{:<40} {:<16} {:<14} {:>10}",
            i.repository,
            i.tag,
            &i.id.hex()[..12],
            human_size(i.size)
        );
    }
    Ok(0)
}
