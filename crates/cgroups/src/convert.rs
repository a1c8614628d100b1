//! Value conversions between OCI (cgroup v1 semantics) and cgroup v2 files, as runc
//! documents them.

use crate::error::CgroupError;

/// Lowest and highest cgroup v1 cpu.shares.
pub const CPU_SHARES_MIN: u64 = 2;
/// Highest cgroup v1 cpu.shares.
pub const CPU_SHARES_MAX: u64 = 262_144;

/// cpu.shares (2..262144) → cpu.weight (1..10000): `1 + ((shares-2)*9999)/262142`.
/// Shares outside the range are clamped, like the kernel does on v1; 0 means unset.
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let s = shares.clamp(CPU_SHARES_MIN, CPU_SHARES_MAX);
    1 + ((s - 2) * 9999) / 262_142
}

/// blkio.weight (10..1000) → io.weight (1..10000): `1 + (w-10)*9999/990`; 0 means unset.
pub fn blkio_weight_to_io_weight(weight: u64) -> u64 {
    if weight == 0 {
        return 0;
    }
    let w = weight.clamp(10, 1000);
    1 + (w - 10) * 9999 / 990
}

/// A v2 limit: negative (-1) is "max".
pub fn v2_limit(value: i64) -> String {
    if value < 0 {
        "max".to_string()
    } else {
        value.to_string()
    }
}

/// OCI `memory.swap` is memory+swap (the v1 memsw limit); v2's memory.swap.max is swap
/// alone. Returns the value for memory.swap.max, or `None` to leave it alone
/// (runc's `ConvertMemorySwapToCgroupV2Value`).
pub fn v2_swap_max(swap: i64, memory: i64) -> Result<Option<String>, CgroupError> {
    // Memory unlimited and swap unset means both unlimited, as on v1.
    if memory == -1 && swap == 0 {
        return Ok(Some("max".into()));
    }
    match swap {
        0 => return Ok(None),
        -1 => return Ok(Some("max".into())),
        _ => {}
    }
    if memory == 0 || memory == -1 {
        return Err(CgroupError::invalid(
            "memory.swap",
            swap,
            "a swap limit needs a memory limit",
        ));
    }
    if swap < memory {
        return Err(CgroupError::invalid(
            "memory.swap",
            swap,
            format!("memory+swap must be at least the memory limit {memory}"),
        ));
    }
    Ok(Some((swap - memory).to_string()))
}

/// cpu.max from quota and period: "max" for an unset or negative quota.
pub fn v2_cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    let quota = quota.filter(|q| *q != 0);
    let period = period.filter(|p| *p != 0);
    if quota.is_none() && period.is_none() {
        return None;
    }
    let mut s = match quota {
        Some(q) if q > 0 => q.to_string(),
        _ => "max".to_string(),
    };
    if let Some(p) = period {
        s.push(' ');
        s.push_str(&p.to_string());
    }
    Some(s)
}

/// pids.max: positive is the limit, negative is "max", 0 is unset.
pub fn pids_max(limit: i64) -> Option<String> {
    match limit {
        0 => None,
        l if l < 0 => Some("max".into()),
        l => Some(l.to_string()),
    }
}

/// The v2 name of a v1 controller (blkio → io, cpuacct → cpu).
pub fn v1_to_v2_controller(name: &str) -> &str {
    match name {
        "blkio" => "io",
        "cpuacct" => "cpu",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_to_weight() {
        assert_eq!(cpu_shares_to_weight(0), 0);
        assert_eq!(cpu_shares_to_weight(2), 1);
        assert_eq!(cpu_shares_to_weight(1), 1);
        assert_eq!(cpu_shares_to_weight(1024), 39);
        assert_eq!(cpu_shares_to_weight(262_144), 10_000);
        assert_eq!(cpu_shares_to_weight(1_000_000), 10_000);
    }

    #[test]
    fn blkio_to_io_weight() {
        assert_eq!(blkio_weight_to_io_weight(0), 0);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }

    #[test]
    fn swap_arithmetic() {
        assert_eq!(v2_swap_max(0, -1).unwrap().as_deref(), Some("max"));
        assert_eq!(v2_swap_max(0, 100).unwrap(), None);
        assert_eq!(v2_swap_max(-1, 100).unwrap().as_deref(), Some("max"));
        assert_eq!(v2_swap_max(300, 100).unwrap().as_deref(), Some("200"));
        assert_eq!(v2_swap_max(100, 100).unwrap().as_deref(), Some("0"));
        assert!(v2_swap_max(50, 100).is_err());
        assert!(v2_swap_max(50, 0).is_err());
    }

    #[test]
    fn cpu_max_and_pids() {
        assert_eq!(v2_cpu_max(None, None), None);
        assert_eq!(v2_cpu_max(Some(50_000), None).as_deref(), Some("50000"));
        assert_eq!(
            v2_cpu_max(Some(50_000), Some(100_000)).as_deref(),
            Some("50000 100000")
        );
        assert_eq!(
            v2_cpu_max(Some(-1), Some(100_000)).as_deref(),
            Some("max 100000")
        );
        assert_eq!(v2_limit(-1), "max");
        assert_eq!(pids_max(0), None);
        assert_eq!(pids_max(-1).as_deref(), Some("max"));
        assert_eq!(pids_max(32).as_deref(), Some("32"));
    }
}
