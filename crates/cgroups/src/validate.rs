//! Checks on `linux.resources` and `cgroupsPath` done before anything is created.

use std::path::PathBuf;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use crate::error::CgroupError;

/// Reject values the kernel would refuse or misread, before any cgroup is created.
pub fn validate(resources: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(m) = resources.memory() {
        validate_memory(m)?;
    }
    if let Some(c) = resources.cpu() {
        validate_cpu(c)?;
    }
    if let Some(p) = resources.pids() {
        at_least_minus_one("pids.limit", p.limit())?;
    }
    if let Some(b) = resources.block_io() {
        validate_block_io(b)?;
    }
    for h in resources.hugepage_limits().iter().flatten() {
        hugepage_size(h.page_size())?;
        at_least_minus_one("hugepageLimits.limit", h.limit())?;
    }
    for d in resources.devices().iter().flatten() {
        if let Some(a) = d.access() {
            if a.chars().any(|c| !"rwm".contains(c)) {
                return Err(CgroupError::invalid(
                    "devices.access",
                    a,
                    "only r, w and m are allowed",
                ));
            }
        }
        for (field, v) in [("devices.major", d.major()), ("devices.minor", d.minor())] {
            if let Some(v) = v {
                if !(-1..=i64::from(u32::MAX)).contains(&v) {
                    return Err(CgroupError::invalid(field, v, "out of range"));
                }
            }
        }
    }
    for (key, value) in resources.unified().iter().flatten() {
        unified_key(key)?;
        if value.contains('\n') {
            return Err(CgroupError::invalid(
                format!("unified[{key}]"),
                value,
                "must be a single line",
            ));
        }
    }
    Ok(())
}

fn at_least_minus_one(field: &str, v: i64) -> Result<(), CgroupError> {
    if v < -1 {
        return Err(CgroupError::invalid(
            field,
            v,
            "must be -1 (unlimited) or a non-negative number",
        ));
    }
    Ok(())
}

fn validate_memory(m: &LinuxMemory) -> Result<(), CgroupError> {
    for (field, v) in [
        ("memory.limit", m.limit()),
        ("memory.reservation", m.reservation()),
        ("memory.swap", m.swap()),
        ("memory.kernel", m.kernel()),
        ("memory.kernelTCP", m.kernel_tcp()),
    ] {
        if let Some(v) = v {
            at_least_minus_one(field, v)?;
        }
    }
    if let (Some(limit), Some(swap)) = (m.limit(), m.swap()) {
        if limit > 0 && swap > 0 && swap < limit {
            return Err(CgroupError::invalid(
                "memory.swap",
                swap,
                format!("memory+swap must be at least memory.limit {limit}"),
            ));
        }
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(CgroupError::invalid(
                "memory.swappiness",
                s,
                "must be 0..=100",
            ));
        }
    }
    Ok(())
}

fn validate_cpu(c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(q) = c.quota() {
        at_least_minus_one("cpu.quota", q)?;
        if (1..1000).contains(&q) {
            return Err(CgroupError::invalid(
                "cpu.quota",
                q,
                "must be at least 1000 microseconds",
            ));
        }
    }
    if let Some(p) = c.period() {
        if p != 0 && !(1000..=1_000_000).contains(&p) {
            return Err(CgroupError::invalid(
                "cpu.period",
                p,
                "must be 1000..=1000000 microseconds",
            ));
        }
    }
    if let Some(s) = c.shares() {
        if s > crate::convert::CPU_SHARES_MAX {
            return Err(CgroupError::invalid(
                "cpu.shares",
                s,
                "must be at most 262144",
            ));
        }
    }
    if let Some(r) = c.realtime_runtime() {
        at_least_minus_one("cpu.realtimeRuntime", r)?;
    }
    if let Some(i) = c.idle() {
        if !(0..=1).contains(&i) {
            return Err(CgroupError::invalid("cpu.idle", i, "must be 0 or 1"));
        }
    }
    if let Some(cpus) = c.cpus() {
        cpu_list("cpu.cpus", cpus)?;
    }
    if let Some(mems) = c.mems() {
        cpu_list("cpu.mems", mems)?;
    }
    Ok(())
}

fn validate_block_io(b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let weight = |field: &str, w: Option<u16>| match w {
        Some(w) if w != 0 && !(10..=1000).contains(&w) => {
            Err(CgroupError::invalid(field, w, "must be 10..=1000"))
        }
        _ => Ok(()),
    };
    weight("blockIO.weight", b.weight())?;
    weight("blockIO.leafWeight", b.leaf_weight())?;
    for d in b.weight_device().iter().flatten() {
        device_numbers("blockIO.weightDevice", d.major(), d.minor())?;
        weight("blockIO.weightDevice.weight", d.weight())?;
        weight("blockIO.weightDevice.leafWeight", d.leaf_weight())?;
    }
    for list in [
        b.throttle_read_bps_device(),
        b.throttle_write_bps_device(),
        b.throttle_read_iops_device(),
        b.throttle_write_iops_device(),
    ] {
        for d in list.iter().flatten() {
            device_numbers("blockIO.throttle device", d.major(), d.minor())?;
        }
    }
    Ok(())
}

fn device_numbers(field: &str, major: i64, minor: i64) -> Result<(), CgroupError> {
    if major < 0 || minor < 0 {
        return Err(CgroupError::invalid(
            field,
            format!("{major}:{minor}"),
            "major and minor must not be negative",
        ));
    }
    Ok(())
}

/// Check a cpuset list such as "0-3,7" (empty means unset).
pub fn cpu_list(field: &str, list: &str) -> Result<(), CgroupError> {
    let bad = |why: &str| CgroupError::invalid(field, list, why);
    let t = list.trim();
    if t.is_empty() {
        return Ok(());
    }
    for part in t.split(',') {
        let num = |s: &str| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("expected numbers or ranges like 0-3,7"));
            }
            s.parse::<u32>().map_err(|_| bad("number too large"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                if num(a)? > num(b)? {
                    return Err(bad("range start is after its end"));
                }
            }
            None => {
                num(part)?;
            }
        }
    }
    Ok(())
}

/// A hugepage size such as "2MB" or "1GB"; returns it unchanged for use in file names.
pub fn hugepage_size(size: &str) -> Result<&str, CgroupError> {
    let digits = size.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &size[digits.len()..];
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !["KB", "MB", "GB", "TB", "PB"].contains(&unit)
    {
        return Err(CgroupError::invalid(
            "hugepageLimits.pageSize",
            size,
            "expected a size like 2MB or 1GB",
        ));
    }
    Ok(size)
}

/// A `unified` key must name a file directly in the cgroup directory.
pub fn unified_key(key: &str) -> Result<(), CgroupError> {
    let bad = |why: &str| CgroupError::invalid("unified key", key, why);
    if key.is_empty() || key.contains('/') || key.contains("..") || key.contains('\0') {
        return Err(bad("must be a plain file name without '/' or '..'"));
    }
    let Some((controller, file)) = key.split_once('.') else {
        return Err(bad("expected <controller>.<file>"));
    };
    if controller.is_empty() || file.is_empty() {
        return Err(bad("expected <controller>.<file>"));
    }
    if matches!(key, "cgroup.procs" | "cgroup.threads" | "cgroup.kill") {
        return Err(bad("moving or killing processes is not a resource"));
    }
    Ok(())
}

/// Check an absolute `cgroupsPath` and return it relative to a hierarchy's root
/// ("/berth/x" → "berth/x").
pub fn relative_cgroups_path(path: &str) -> Result<PathBuf, CgroupError> {
    let bad = |reason| CgroupError::InvalidPath {
        path: path.to_string(),
        reason,
    };
    if path.is_empty() {
        return Err(bad("must not be empty"));
    }
    if !path.starts_with('/') {
        return Err(bad(
            "must be absolute, like /berth/<id> (systemd slice:prefix:name paths are not supported)",
        ));
    }
    let mut rel = PathBuf::new();
    for c in path.split('/').filter(|c| !c.is_empty()) {
        match c {
            ".." => return Err(bad("must not contain \"..\" components")),
            "." => return Err(bad("must not contain \".\" components")),
            _ if c.contains('\0') || c.contains('\n') => {
                return Err(bad("must not contain NUL or newline characters"))
            }
            _ => rel.push(c),
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(bad("must not be the root cgroup"));
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxHugepageLimitBuilder,
        LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    };
    use std::collections::HashMap;

    fn with_mem(b: LinuxMemoryBuilder) -> LinuxResources {
        LinuxResourcesBuilder::default()
            .memory(b.build().unwrap())
            .build()
            .unwrap()
    }
    fn with_cpu(b: LinuxCpuBuilder) -> LinuxResources {
        LinuxResourcesBuilder::default()
            .cpu(b.build().unwrap())
            .build()
            .unwrap()
    }

    #[test]
    fn accepts_defaults_and_unlimited() {
        validate(&LinuxResources::default()).unwrap();
        validate(&with_mem(LinuxMemoryBuilder::default().limit(-1).swap(-1))).unwrap();
        validate(&with_mem(
            LinuxMemoryBuilder::default().limit(1 << 20).swap(2 << 20),
        ))
        .unwrap();
        validate(&with_cpu(
            LinuxCpuBuilder::default().quota(-1).cpus("0-1,3").mems("0"),
        ))
        .unwrap();
    }

    #[test]
    fn rejects_bad_memory() {
        let e = validate(&with_mem(LinuxMemoryBuilder::default().limit(-2))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid memory.limit \"-2\": must be -1 (unlimited) or a non-negative number"
        );
        assert!(validate(&with_mem(
            LinuxMemoryBuilder::default().limit(2 << 20).swap(1 << 20)
        ))
        .is_err());
        assert!(validate(&with_mem(LinuxMemoryBuilder::default().swappiness(101u64))).is_err());
    }

    #[test]
    fn rejects_bad_cpu() {
        assert!(validate(&with_cpu(LinuxCpuBuilder::default().quota(999))).is_err());
        assert!(validate(&with_cpu(LinuxCpuBuilder::default().period(10u64))).is_err());
        assert!(validate(&with_cpu(LinuxCpuBuilder::default().idle(2))).is_err());
        for bad in ["1-", "a", "3-1", "1,,2", "-1", "0-1 2"] {
            assert!(
                validate(&with_cpu(LinuxCpuBuilder::default().cpus(bad))).is_err(),
                "{bad}"
            );
        }
        assert!(validate(&with_cpu(LinuxCpuBuilder::default().mems("x"))).is_err());
    }

    #[test]
    fn rejects_other_bad_values() {
        let pids = LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(-5).build().unwrap())
            .build()
            .unwrap();
        assert!(validate(&pids).is_err());
        let blkio = LinuxResourcesBuilder::default()
            .block_io(LinuxBlockIoBuilder::default().weight(5u16).build().unwrap())
            .build()
            .unwrap();
        assert!(validate(&blkio).is_err());
        let huge = LinuxResourcesBuilder::default()
            .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
                .page_size("2M")
                .limit(1)
                .build()
                .unwrap()])
            .build()
            .unwrap();
        assert!(validate(&huge).is_err());
        let dev = LinuxResourcesBuilder::default()
            .devices(vec![LinuxDeviceCgroupBuilder::default()
                .access("rwx")
                .build()
                .unwrap()])
            .build()
            .unwrap();
        assert!(validate(&dev).is_err());
    }

    #[test]
    fn unified_keys() {
        for bad in [
            "../memory.max",
            "memory/max",
            "memory..max",
            "",
            "nodot",
            "cgroup.procs",
        ] {
            let r = LinuxResourcesBuilder::default()
                .unified(HashMap::from([(bad.to_string(), "1".to_string())]))
                .build()
                .unwrap();
            assert!(validate(&r).is_err(), "{bad}");
        }
        unified_key("memory.high").unwrap();
        unified_key("io.bfq.weight").unwrap();
    }

    #[test]
    fn cgroups_paths() {
        assert_eq!(
            relative_cgroups_path("/berth/abc").unwrap(),
            PathBuf::from("berth/abc")
        );
        assert_eq!(
            relative_cgroups_path("//berth//abc/").unwrap(),
            PathBuf::from("berth/abc")
        );
        for bad in [
            "",
            "berth/abc",
            "/berth/../etc",
            "/",
            "/a/./b",
            "system.slice:berth:x",
        ] {
            assert!(relative_cgroups_path(bad).is_err(), "{bad}");
        }
        let e = relative_cgroups_path("/a/../../b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid cgroups path \"/a/../../b\": must not contain \"..\" components"
        );
    }
}
