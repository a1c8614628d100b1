//! Resource usage, shaped like the `data` of runc's `events --stats` JSON, read from v1
//! or v2 files.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Serialize;

use crate::error::CgroupError;
use crate::fsutil::{self, read_flat_keyed_opt, read_opt, read_u64_opt};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Everything `events --stats` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    /// Keyed by page size ("2MB").
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// CPU time in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty", rename = "ioQueueRecursive")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

fn get(map: &BTreeMap<String, u64>, key: &str) -> u64 {
    map.get(key).copied().unwrap_or(0)
}

fn parse_list(path: &Path, text: &str) -> Result<Vec<u64>, CgroupError> {
    text.split_whitespace()
        .map(|v| fsutil::parse_u64(path, v))
        .collect()
}

/// Page sizes that have `hugetlb.<size>.<suffix>` files in `dir`.
fn hugetlb_sizes(dir: &Path, suffix: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut sizes: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let size = name.strip_prefix("hugetlb.")?.strip_suffix(suffix)?;
            (!size.contains('.')).then(|| size.to_string())
        })
        .collect();
    sizes.sort();
    sizes
}

/// cgroup v1 readers.
pub mod v1 {
    use super::*;

    /// cpuacct: usage totals and per-CPU usage.
    pub fn cpuacct(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
        let u = &mut s.cpu.usage;
        u.total = read_u64_opt(&dir.join("cpuacct.usage"))?.unwrap_or(0);
        for (file, out) in [
            ("cpuacct.usage_percpu", &mut u.percpu),
            ("cpuacct.usage_percpu_sys", &mut u.percpu_kernel),
            ("cpuacct.usage_percpu_user", &mut u.percpu_user),
        ] {
            let p = dir.join(file);
            if let Some(t) = read_opt(&p)? {
                *out = parse_list(&p, &t)?;
            }
        }
        let user = read_u64_opt(&dir.join("cpuacct.usage_user"))?;
        let sys = read_u64_opt(&dir.join("cpuacct.usage_sys"))?;
        if let (Some(user), Some(sys)) = (user, sys) {
            u.user = user;
            u.kernel = sys;
        } else if let Some(st) = read_flat_keyed_opt(&dir.join("cpuacct.stat"))? {
            // USER_HZ ticks.
            let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
                .ok()
                .flatten()
                .filter(|v| *v > 0)
                .unwrap_or(100) as u64;
            u.user = get(&st, "user") * (1_000_000_000 / hz);
            u.kernel = get(&st, "system") * (1_000_000_000 / hz);
        }
        Ok(())
    }

    /// cpu: CFS throttling.
    pub fn cpu(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
        if let Some(st) = read_flat_keyed_opt(&dir.join("cpu.stat"))? {
            s.cpu.throttling = Throttling {
                periods: get(&st, "nr_periods"),
                throttled_periods: get(&st, "nr_throttled"),
                throttled_time: get(&st, "throttled_time"),
            };
        }
        Ok(())
    }

    fn entry(dir: &Path, prefix: &str) -> Result<MemoryEntry, CgroupError> {
        let f = |name: &str| read_u64_opt(&dir.join(format!("{prefix}.{name}")));
        Ok(MemoryEntry {
            limit: f("limit_in_bytes")?.unwrap_or(0),
            usage: f("usage_in_bytes")?.unwrap_or(0),
            max: f("max_usage_in_bytes")?.unwrap_or(0),
            failcnt: f("failcnt")?.unwrap_or(0),
        })
    }

    pub fn memory(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
        let m = &mut s.memory;
        m.usage = entry(dir, "memory")?;
        m.swap = entry(dir, "memory.memsw")?;
        m.kernel = entry(dir, "memory.kmem")?;
        m.kernel_tcp = entry(dir, "memory.kmem.tcp")?;
        m.raw = read_flat_keyed_opt(&dir.join("memory.stat"))?.unwrap_or_default();
        m.cache = m
            .raw
            .get("total_cache")
            .or_else(|| m.raw.get("cache"))
            .copied()
            .unwrap_or(0);
        Ok(())
    }

    pub fn pids(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
        s.pids.current = read_u64_opt(&dir.join("pids.current"))?.unwrap_or(0);
        s.pids.limit = read_u64_opt(&dir.join("pids.max"))?
            .filter(|l| *l != u64::MAX)
            .unwrap_or(0);
        Ok(())
    }

    /// "8:0 Read 4096" lines ("8:0 123" for time and sectors); the "Total" line is skipped.
    pub fn parse_blkio(text: &str) -> Vec<BlkioEntry> {
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let (dev, op, value) = match f.as_slice() {
                    [dev, op, v] => (*dev, op.to_string(), *v),
                    [dev, v] if dev.contains(':') => (*dev, String::new(), *v),
                    _ => return None,
                };
                let (major, minor) = dev.split_once(':')?;
                Some(BlkioEntry {
                    major: major.parse().ok()?,
                    minor: minor.parse().ok()?,
                    op,
                    value: value.parse().ok()?,
                })
            })
            .collect()
    }

    pub fn blkio(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
        // CFQ files, else BFQ, else the throttling layer's (always present).
        let prefix = if dir.join("blkio.io_serviced_recursive").exists() {
            "blkio."
        } else if dir.join("blkio.bfq.io_serviced_recursive").exists() {
            "blkio.bfq."
        } else {
            "blkio.throttle."
        };
        let b = &mut s.blkio;
        for (file, out) in [
            (
                "io_service_bytes_recursive",
                &mut b.io_service_bytes_recursive,
            ),
            ("io_serviced_recursive", &mut b.io_serviced_recursive),
            ("io_queued_recursive", &mut b.io_queued_recursive),
            (
                "io_service_time_recursive",
                &mut b.io_service_time_recursive,
            ),
            ("io_wait_time_recursive", &mut b.io_wait_time_recursive),
            ("io_merged_recursive", &mut b.io_merged_recursive),
            ("time_recursive", &mut b.io_time_recursive),
            ("sectors_recursive", &mut b.sectors_recursive),
        ] {
            if let Some(t) = read_opt(&dir.join(format!("{prefix}{file}")))? {
                *out = parse_blkio(&t);
            }
        }
        Ok(())
    }

    pub fn hugetlb(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
        for size in hugetlb_sizes(dir, ".usage_in_bytes") {
            let f = |n: &str| read_u64_opt(&dir.join(format!("hugetlb.{size}.{n}")));
            let h = Hugetlb {
                usage: f("usage_in_bytes")?.unwrap_or(0),
                max: f("max_usage_in_bytes")?.unwrap_or(0),
                failcnt: f("failcnt")?.unwrap_or(0),
            };
            s.hugetlb.insert(size, h);
        }
        Ok(())
    }

    /// memory.oom_control's oom_kill counter (kernel 4.13+).
    pub fn oom_kill_count(dir: &Path) -> Result<u64, CgroupError> {
        let p = dir.join("memory.oom_control");
        let map = fsutil::parse_flat_keyed(&fsutil::read(&p)?);
        map.get("oom_kill").copied().ok_or(CgroupError::Parse {
            path: p,
            reason: "no oom_kill line (kernel older than 4.13?)".into(),
        })
    }
}

/// cgroup v2 readers.
pub mod v2 {
    use super::*;

    /// cpu.stat: usage (always there) and throttling (with the cpu controller).
    pub fn cpu(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
        let Some(st) = read_flat_keyed_opt(&dir.join("cpu.stat"))? else {
            return Ok(());
        };
        s.cpu.usage.total = get(&st, "usage_usec") * 1000;
        s.cpu.usage.user = get(&st, "user_usec") * 1000;
        s.cpu.usage.kernel = get(&st, "system_usec") * 1000;
        s.cpu.throttling = Throttling {
            periods: get(&st, "nr_periods"),
            throttled_periods: get(&st, "nr_throttled"),
            throttled_time: get(&st, "throttled_usec") * 1000,
        };
        Ok(())
    }

    pub fn memory(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
        let f = |n: &str| read_u64_opt(&dir.join(n));
        let m = &mut s.memory;
        let usage = f("memory.current")?.unwrap_or(0);
        let limit = f("memory.max")?.unwrap_or(u64::MAX);
        let events = read_flat_keyed_opt(&dir.join("memory.events"))?.unwrap_or_default();
        m.usage = MemoryEntry {
            limit,
            usage,
            max: f("memory.peak")?.unwrap_or(0),
            failcnt: get(&events, "max"),
        };
        // Like runc: report swap as memory+swap, as v1's memsw did.
        if let Some(swap) = f("memory.swap.current")? {
            let swap_limit = f("memory.swap.max")?.unwrap_or(u64::MAX);
            m.swap = MemoryEntry {
                limit: swap_limit.saturating_add(limit),
                usage: swap.saturating_add(usage),
                max: 0,
                failcnt: 0,
            };
        }
        m.raw = read_flat_keyed_opt(&dir.join("memory.stat"))?.unwrap_or_default();
        m.cache = get(&m.raw, "file");
        m.kernel.usage = get(&m.raw, "kernel");
        Ok(())
    }

    pub fn pids(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
        super::v1::pids(dir, s)
    }

    /// io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0".
    pub fn parse_io_stat(text: &str, b: &mut Blkio) {
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let Some((major, minor)) = it.next().and_then(|d| d.split_once(':')) else {
                continue;
            };
            let (Ok(major), Ok(minor)) = (major.parse::<u64>(), minor.parse::<u64>()) else {
                continue;
            };
            for kv in it {
                let Some((k, v)) = kv.split_once('=') else {
                    continue;
                };
                let Ok(value) = v.parse::<u64>() else {
                    continue;
                };
                let (list, op) = match k {
                    "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                    "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                    "dbytes" => (&mut b.io_service_bytes_recursive, "Discard"),
                    "rios" => (&mut b.io_serviced_recursive, "Read"),
                    "wios" => (&mut b.io_serviced_recursive, "Write"),
                    "dios" => (&mut b.io_serviced_recursive, "Discard"),
                    _ => continue,
                };
                list.push(BlkioEntry {
                    major,
                    minor,
                    op: op.to_string(),
                    value,
                });
            }
        }
    }

    pub fn io(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
        if let Some(t) = read_opt(&dir.join("io.stat"))? {
            parse_io_stat(&t, &mut s.blkio);
        }
        Ok(())
    }

    pub fn hugetlb(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
        for size in hugetlb_sizes(dir, ".current") {
            let f = |n: &str| dir.join(format!("hugetlb.{size}.{n}"));
            let events = read_flat_keyed_opt(&f("events"))?.unwrap_or_default();
            let h = Hugetlb {
                usage: read_u64_opt(&f("current"))?.unwrap_or(0),
                max: 0,
                failcnt: get(&events, "max"),
            };
            s.hugetlb.insert(size, h);
        }
        Ok(())
    }

    /// memory.events' oom_kill counter.
    pub fn oom_kill_count(dir: &Path) -> Result<u64, CgroupError> {
        let p = dir.join("memory.events");
        Ok(get(
            &fsutil::parse_flat_keyed(&fsutil::read(&p)?),
            "oom_kill",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkio_lines() {
        let t = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:16 Async 1\nTotal 12288\n";
        let e = v1::parse_blkio(t);
        assert_eq!(e.len(), 4);
        assert_eq!(
            e[1],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Write".into(),
                value: 8192
            }
        );
        let t = v1::parse_blkio("8:0 1234\n");
        assert_eq!(t[0].op, "");
        assert_eq!(t[0].value, 1234);
    }

    #[test]
    fn io_stat_lines() {
        let mut b = Blkio::default();
        v2::parse_io_stat(
            "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n253:1 rbytes=5\n",
            &mut b,
        );
        assert_eq!(b.io_service_bytes_recursive.len(), 4);
        assert_eq!(b.io_serviced_recursive.len(), 3);
        assert_eq!(b.io_service_bytes_recursive[3].major, 253);
    }

    #[test]
    fn json_shape() {
        let mut s = Stats::default();
        s.memory.kernel_tcp.limit = 5;
        s.cpu.throttling.throttled_periods = 2;
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["memory"]["kernelTCP"]["limit"], 5);
        assert_eq!(j["cpu"]["throttling"]["throttledPeriods"], 2);
        assert_eq!(j["cpu"]["usage"]["kernel"], 0);
        assert!(j["cpu"]["usage"].get("total").is_none());
    }
}
