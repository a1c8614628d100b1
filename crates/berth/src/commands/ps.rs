//! `berth ps [-a] [--format json]`.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use berth_engine::{Engine, Phase, Record};

use crate::cli::PsArgs;

pub fn run(engine: &Engine, args: &PsArgs) -> Result<i32> {
    let json = super::json_format(&args.format)?;
    let containers = engine.list_containers(args.all)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&containers)?);
        return Ok(0);
    }
    println!(
        "{:<14} {:<32} {:<24} {:<28} NAMES",
        "CONTAINER ID", "IMAGE", "COMMAND", "STATUS"
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for c in containers {
        let r = &c.record;
        let status = status_text(c.status, r, now);
        let mut command = r.command.join(" ");
        if command.len() > 22 {
            command = format!("{}…", command.chars().take(21).collect::<String>());
        }
        println!(
            "{:<14} {:<32} {:<24} {:<28} {}",
            &r.id[..12],
            r.image,
            format!("\"{command}\""),
            status,
            r.name
        );
    }
    Ok(0)
}

/// Docker's rough durations: "3 seconds", "About a minute", "2 hours".
fn human_duration(secs: u64) -> String {
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    match secs {
        0 => "Less than a second".into(),
        1..=59 => plural(secs, "second"),
        60..=119 => "About a minute".into(),
        120..=3599 => plural(secs / 60, "minute"),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => plural(secs / 3600, "hour"),
        _ => plural(secs / 86_400, "day"),
    }
}

/// "Up 3 seconds", "Exited (0) 2 seconds ago", "Created".
fn status_text(status: Phase, r: &Record, now: u64) -> String {
    let since = |t: Option<u64>| t.map(|t| human_duration(now.saturating_sub(t)));
    match status {
        Phase::Created => "Created".into(),
        Phase::Running => match since(r.started) {
            Some(d) => format!("Up {d}"),
            None => "Up".into(),
        },
        Phase::Exited => {
            let code = r.exit_code.map_or("?".into(), |c| c.to_string());
            match since(r.finished) {
                Some(d) => format!("Exited ({code}) {d} ago"),
                None => format!("Exited ({code})"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn durations_read_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(3), "3 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(300), "5 minutes");
        assert_eq!(human_duration(4000), "About an hour");
        assert_eq!(human_duration(3 * 86_400), "3 days");
    }
}
