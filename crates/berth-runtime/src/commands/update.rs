//! `update`: change a live container's limits from flags and/or `-r resources.json`.

use std::io::Read;

use anyhow::{bail, Context, Result};
use berth_container::Runtime;
use serde_json::{json, Map, Value};

use crate::cli::UpdateArgs;

pub fn run(rt: &Runtime, args: &UpdateArgs) -> Result<i32> {
    if args.l3_cache_schema.is_some() || args.mem_bw_schema.is_some() {
        bail!("--l3-cache-schema / --mem-bw-schema: Intel RDT is not supported");
    }
    let value = resources_value(args)?;
    let resources =
        serde_json::from_value(value.clone()).with_context(|| format!("resources {value}"))?;
    rt.update(&args.id, &resources)?;
    Ok(0)
}

/// The resources object: the `-r` file (if any) with the flags laid over it.
pub fn resources_value(args: &UpdateArgs) -> Result<Value> {
    let mut v = match &args.resources {
        None => json!({}),
        Some(path) => {
            let mut text = String::new();
            if path.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("reading resources from stdin")?;
            } else {
                text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
            }
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
    };
    if !v.is_object() {
        bail!("resources must be a JSON object");
    }
    let mut set = |section: &str, key: &str, val: Value| {
        let obj = v.as_object_mut().expect("checked object");
        let sec = obj
            .entry(section)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(sec) = sec.as_object_mut() {
            sec.insert(key.into(), val);
        }
    };
    if let Some(w) = args.blkio_weight {
        set("blockIO", "weight", json!(w));
    }
    for (flag, key, val) in [
        ("cpu-period", "period", args.cpu_period.map(|v| json!(v))),
        ("cpu-quota", "quota", args.cpu_quota.map(|v| json!(v))),
        ("cpu-share", "shares", args.cpu_share.map(|v| json!(v))),
        (
            "cpu-rt-period",
            "realtimePeriod",
            args.cpu_rt_period.map(|v| json!(v)),
        ),
        (
            "cpu-rt-runtime",
            "realtimeRuntime",
            args.cpu_rt_runtime.map(|v| json!(v)),
        ),
        (
            "cpuset-cpus",
            "cpus",
            args.cpuset_cpus.clone().map(|v| json!(v)),
        ),
        (
            "cpuset-mems",
            "mems",
            args.cpuset_mems.clone().map(|v| json!(v)),
        ),
    ] {
        let _ = flag;
        if let Some(val) = val {
            set("cpu", key, val);
        }
    }
    for (flag, key, val) in [
        ("--memory", "limit", &args.memory),
        (
            "--memory-reservation",
            "reservation",
            &args.memory_reservation,
        ),
        ("--memory-swap", "swap", &args.memory_swap),
    ] {
        if let Some(text) = val {
            set("memory", key, json!(parse_bytes(flag, text)?));
        }
    }
    if let Some(p) = args.pids_limit {
        set("pids", "limit", json!(p));
    }
    Ok(v)
}

/// Bytes with an optional k/m/g/t suffix (powers of 1024, like runc); -1 is unlimited.
pub fn parse_bytes(flag: &str, text: &str) -> Result<i64> {
    let t = text.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    match num.parse::<f64>() {
        Ok(n) if n >= 0.0 => Ok((n * mult as f64) as i64),
        _ => bail!("{flag} {text:?}: not a size (use bytes, or a number with k, m, g or t)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("--memory", "100m").unwrap(), 100 << 20);
        assert_eq!(parse_bytes("--memory", "1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("--memory", "4096").unwrap(), 4096);
        assert_eq!(parse_bytes("--memory", "-1").unwrap(), -1);
        assert!(parse_bytes("--memory", "-5").is_err());
        assert!(parse_bytes("--memory", "lots").is_err());
    }
}
