//! `events`: stats (and OOM) events as JSON lines, like runc's.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Result};
use berth_container::Runtime;

pub fn run(rt: &Runtime, id: &str, once: bool, interval: &str) -> Result<i32> {
    if once {
        println!("{}", serde_json::to_string(&rt.stats(id)?)?);
        return Ok(0);
    }
    let interval = parse_duration(interval)?;
    let mut out = std::io::stdout();
    rt.events(id, interval, &mut |ev| {
        serde_json::to_writer(&mut out, ev).is_ok() && writeln!(out).is_ok() && out.flush().is_ok()
    })?;
    Ok(0)
}

/// "5s", "500ms", "2m", "1h" or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: f64 = match num.parse() {
        Ok(n) if n > 0.0 => n,
        _ => bail!("--interval {text:?}: not a positive duration"),
    };
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("--interval {text:?}: unknown unit {unit:?} (use ms, s, m or h)"),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
    }
}
