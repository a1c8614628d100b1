use std::io::Write;

use anyhow::Result;
use berth_container::Runtime;

use crate::cli::ListFormat;

pub fn run(rt: &Runtime, format: ListFormat, quiet: bool) -> Result<i32> {
    let all = rt.list()?;
    let mut out = std::io::stdout().lock();
    if quiet {
        for s in &all {
            writeln!(out, "{}", s.id)?;
        }
        return Ok(0);
    }
    match format {
        ListFormat::Json => writeln!(out, "{}", serde_json::to_string(&all)?)?,
        ListFormat::Table => {
            let w = all.iter().map(|s| s.id.len()).max().unwrap_or(2).max(2);
            writeln!(
                out,
                "{:<w$}   {:<8} {:<10} {:<40} {:<30} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            )?;
            for s in &all {
                writeln!(
                    out,
                    "{:<w$}   {:<8} {:<10} {:<40} {:<30} root",
                    s.id,
                    s.pid,
                    s.status.as_str(),
                    s.bundle.display(),
                    s.created
                )?;
            }
        }
    }
    Ok(0)
}
