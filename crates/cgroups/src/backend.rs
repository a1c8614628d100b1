//! What a hierarchy driver (v1 or v2) offers, and the routing that sends each resource to
//! the hierarchy that holds its controller. V1, v2 and hybrid managers are all this
//! routing over one or two backends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use crate::error::CgroupError;
use crate::stats::Stats;
use crate::{fsutil, validate, ContainerCgroupMount, FreezerState};

/// A group of settings or statistics that lives in one controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    Cpuset,
    Cpu,
    /// CPU usage accounting (v1 cpuacct, v2 cpu.stat).
    Cpuacct,
    Memory,
    Pids,
    /// v1 blkio, v2 io.
    Io,
    Hugetlb,
    Network,
    Devices,
    Freezer,
}

impl Group {
    /// Resource groups in the order they are applied.
    pub(crate) const APPLY_ORDER: [Group; 8] = [
        Group::Cpuset,
        Group::Cpu,
        Group::Memory,
        Group::Pids,
        Group::Io,
        Group::Hugetlb,
        Group::Network,
        Group::Devices,
    ];
    pub(crate) const STATS: [Group; 6] = [
        Group::Cpuacct,
        Group::Cpu,
        Group::Memory,
        Group::Pids,
        Group::Io,
        Group::Hugetlb,
    ];

    fn requested(self, r: &LinuxResources) -> bool {
        match self {
            Group::Cpuset => r.cpu().as_ref().is_some_and(|c| {
                c.cpus().as_deref().is_some_and(|s| !s.trim().is_empty())
                    || c.mems().as_deref().is_some_and(|s| !s.trim().is_empty())
            }),
            Group::Cpu => r.cpu().as_ref().is_some_and(|c| {
                c.shares().is_some_and(|v| v != 0)
                    || c.quota().is_some_and(|v| v != 0)
                    || c.period().is_some_and(|v| v != 0)
                    || c.realtime_runtime().is_some_and(|v| v != 0)
                    || c.realtime_period().is_some_and(|v| v != 0)
                    || c.idle().is_some()
                    || c.burst().is_some()
            }),
            Group::Memory => r.memory().is_some(),
            Group::Pids => r.pids().is_some_and(|p| p.limit() != 0),
            Group::Io => r.block_io().is_some(),
            Group::Hugetlb => r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()),
            Group::Network => r.network().is_some(),
            Group::Devices => r.devices().is_some(),
            Group::Cpuacct | Group::Freezer => false,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Group::Cpuset => "cpuset (cpus, mems)",
            Group::Cpu => "cpu limits",
            Group::Cpuacct => "cpu accounting",
            Group::Memory => "memory limits",
            Group::Pids => "pids limit",
            Group::Io => "block io limits",
            Group::Hugetlb => "hugepage limits",
            Group::Network => "network classID/priorities",
            Group::Devices => "device rules",
            Group::Freezer => "freezer",
        }
    }
}

/// One hierarchy driver's view of the container's cgroup.
pub(crate) trait Backend {
    /// True if this backend holds `group`'s controller.
    fn has(&self, group: Group) -> bool;
    /// True for the cgroup2 hierarchy.
    fn is_unified(&self) -> bool;
    fn create(&self) -> Result<(), CgroupError>;
    fn add_task(&self, pid: i32) -> Result<(), CgroupError>;
    fn apply_group(&self, group: Group, r: &LinuxResources) -> Result<(), CgroupError>;
    /// Raw v2 key/values.
    fn apply_unified(&self, values: &HashMap<String, String>) -> Result<(), CgroupError>;
    fn stats_group(&self, group: Group, s: &mut Stats) -> Result<(), CgroupError>;
    fn oom_kill_count(&self) -> Result<u64, CgroupError>;
    /// Write the freezer file (no waiting).
    fn request_freeze(&self, state: FreezerState) -> Result<(), CgroupError>;
    fn freezer_state(&self) -> Result<FreezerState, CgroupError>;
    /// The file that reports the freezer state, for messages.
    fn freezer_file(&self) -> PathBuf;
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;
    fn remove(&self) -> Result<(), CgroupError>;
    fn mounts(&self) -> Vec<ContainerCgroupMount>;
    /// cgroup.kill, where the kernel has it.
    fn kill_file(&self) -> Option<PathBuf>;
    /// The cgroup2 directory, for the cgroup2 backend.
    fn unified_dir(&self) -> Option<&std::path::Path> {
        None
    }
}

/// The directory a child can be cloned straight into (CLONE_INTO_CGROUP): only when
/// the whole cgroup is one cgroup2 directory.
pub(crate) fn clone_into_dir(bs: &[&dyn Backend]) -> Option<PathBuf> {
    match bs {
        [only] => only.unified_dir().map(std::path::Path::to_path_buf),
        _ => None,
    }
}

pub(crate) fn create(bs: &[&dyn Backend]) -> Result<(), CgroupError> {
    bs.iter().try_for_each(|b| b.create())
}

pub(crate) fn add_task(bs: &[&dyn Backend], pid: i32) -> Result<(), CgroupError> {
    bs.iter().try_for_each(|b| b.add_task(pid))
}

fn owner<'a>(bs: &[&'a dyn Backend], g: Group) -> Option<&'a dyn Backend> {
    bs.iter().copied().find(|b| b.has(g))
}

pub(crate) fn apply(bs: &[&dyn Backend], r: &LinuxResources) -> Result<(), CgroupError> {
    validate::validate(r)?;
    for g in Group::APPLY_ORDER {
        if !g.requested(r) {
            continue;
        }
        match owner(bs, g) {
            Some(b) => b.apply_group(g, r)?,
            None if g == Group::Network => {
                tracing::debug!("no net_cls/net_prio hierarchy: network settings ignored");
            }
            None => {
                return Err(CgroupError::unsupported(
                    g.describe(),
                    "the host has no cgroup hierarchy with this controller",
                ))
            }
        }
    }
    if let Some(unified) = r.unified().as_ref().filter(|u| !u.is_empty()) {
        let b = bs.iter().find(|b| b.is_unified()).ok_or_else(|| {
            CgroupError::unsupported(
                "unified resources",
                "this host has no cgroup v2 hierarchy (cgroup v1 only)",
            )
        })?;
        b.apply_unified(unified)?;
    }
    Ok(())
}

pub(crate) fn stats(bs: &[&dyn Backend]) -> Result<Stats, CgroupError> {
    let mut s = Stats::default();
    for g in Group::STATS {
        if let Some(b) = owner(bs, g) {
            b.stats_group(g, &mut s)?;
        }
    }
    Ok(s)
}

pub(crate) fn oom_kill_count(bs: &[&dyn Backend]) -> Result<u64, CgroupError> {
    owner(bs, Group::Memory)
        .ok_or_else(|| CgroupError::unsupported("oom kill count", "no memory controller"))?
        .oom_kill_count()
}

fn freezer<'a>(bs: &[&'a dyn Backend]) -> Result<&'a dyn Backend, CgroupError> {
    owner(bs, Group::Freezer)
        .ok_or_else(|| CgroupError::unsupported("freezing", "no freezer controller"))
}

/// Freeze or thaw and wait until the kernel reports the state. Freezing that does not
/// complete within two seconds is undone and reported as a timeout.
pub(crate) fn freeze(bs: &[&dyn Backend], state: FreezerState) -> Result<(), CgroupError> {
    let b = freezer(bs)?;
    b.request_freeze(state)?;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut delay = Duration::from_micros(100);
    let mut tries = 0u32;
    loop {
        if b.freezer_state()? == state {
            return Ok(());
        }
        if Instant::now() >= deadline {
            if state == FreezerState::Frozen {
                let _ = b.request_freeze(FreezerState::Thawed);
            }
            return Err(CgroupError::Timeout {
                path: b.freezer_file(),
                expected: format!("{state:?}").to_lowercase(),
            });
        }
        sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(10));
        tries += 1;
        // A v1 freezer can stay FREEZING while tasks fork; asking again helps.
        if tries.is_multiple_of(10) {
            b.request_freeze(state)?;
        }
    }
}

pub(crate) fn freezer_state(bs: &[&dyn Backend]) -> Result<FreezerState, CgroupError> {
    freezer(bs)?.freezer_state()
}

pub(crate) fn pids(bs: &[&dyn Backend]) -> Result<Vec<i32>, CgroupError> {
    bs.first().ok_or(CgroupError::NoHierarchy)?.pids()
}

/// Remove in every hierarchy; every hierarchy is tried, the first error is returned.
pub(crate) fn remove(bs: &[&dyn Backend]) -> Result<(), CgroupError> {
    let mut first = None;
    for b in bs {
        if let Err(e) = b.remove() {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

pub(crate) fn mounts(bs: &[&dyn Backend]) -> Vec<ContainerCgroupMount> {
    bs.iter().flat_map(|b| b.mounts()).collect()
}

/// Signal every process. SIGKILL goes through cgroup.kill when the kernel has it;
/// otherwise the cgroup is frozen while the signals are sent, so that no fork escapes.
pub(crate) fn kill_all(bs: &[&dyn Backend], signal: i32) -> Result<(), CgroupError> {
    let sig = Signal::try_from(signal)
        .map_err(|_| CgroupError::invalid("signal", signal, "not a signal number"))?;
    if sig == Signal::SIGKILL {
        if let Some(f) = bs.iter().find_map(|b| b.kill_file()) {
            return fsutil::write(&f, "1");
        }
    }
    let was_thawed = freezer_state(bs).ok() == Some(FreezerState::Thawed);
    let froze = sig == Signal::SIGKILL && was_thawed && freeze(bs, FreezerState::Frozen).is_ok();
    let result = pids(bs).and_then(|pids| {
        pids.into_iter()
            .try_for_each(|pid| match kill(Pid::from_raw(pid), sig) {
                Ok(()) | Err(Errno::ESRCH) => Ok(()),
                Err(errno) => Err(CgroupError::Signal { pid, signal, errno }),
            })
    });
    if froze {
        freeze(bs, FreezerState::Thawed)?;
    }
    result
}

/// Implement [`crate::CgroupManager`] for a type with `fn backends(&self) -> Vec<&dyn Backend>`.
macro_rules! impl_cgroup_manager {
    ($ty:ty) => {
        impl $crate::CgroupManager for $ty {
            fn create(&self) -> Result<(), $crate::CgroupError> {
                $crate::backend::create(&self.backends())
            }
            fn add_task(&self, pid: i32) -> Result<(), $crate::CgroupError> {
                $crate::backend::add_task(&self.backends(), pid)
            }
            fn apply(
                &self,
                resources: &oci_spec::runtime::LinuxResources,
            ) -> Result<(), $crate::CgroupError> {
                $crate::backend::apply(&self.backends(), resources)
            }
            fn freeze(&self, state: $crate::FreezerState) -> Result<(), $crate::CgroupError> {
                $crate::backend::freeze(&self.backends(), state)
            }
            fn freezer_state(&self) -> Result<$crate::FreezerState, $crate::CgroupError> {
                $crate::backend::freezer_state(&self.backends())
            }
            fn pids(&self) -> Result<Vec<i32>, $crate::CgroupError> {
                $crate::backend::pids(&self.backends())
            }
            fn remove(&self) -> Result<(), $crate::CgroupError> {
                $crate::backend::remove(&self.backends())
            }
            fn container_mounts(
                &self,
            ) -> Result<Vec<$crate::ContainerCgroupMount>, $crate::CgroupError> {
                Ok($crate::backend::mounts(&self.backends()))
            }
            fn stats(&self) -> Result<$crate::Stats, $crate::CgroupError> {
                $crate::backend::stats(&self.backends())
            }
            fn oom_kill_count(&self) -> Result<u64, $crate::CgroupError> {
                $crate::backend::oom_kill_count(&self.backends())
            }
            fn kill_all(&self, signal: i32) -> Result<(), $crate::CgroupError> {
                $crate::backend::kill_all(&self.backends(), signal)
            }
            fn layout(&self) -> $crate::Layout {
                self.layout_kind()
            }
            fn cgroups_path(&self) -> &str {
                &self.cgroups_path
            }
            fn clone_into_dir(&self) -> Option<std::path::PathBuf> {
                $crate::backend::clone_into_dir(&self.backends())
            }
        }
    };
}
pub(crate) use impl_cgroup_manager;

/// cpuset.cpus and cpuset.mems, the same files in v1 and v2. Mems first: a cpus change
/// may need memory nodes already present.
pub(crate) fn apply_cpuset(
    dir: &std::path::Path,
    c: &oci_spec::runtime::LinuxCpu,
) -> Result<(), CgroupError> {
    if let Some(mems) = c.mems().as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        crate::fsutil::write_in(dir, "cpuset.mems", mems)?;
    }
    if let Some(cpus) = c.cpus().as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        crate::fsutil::write_in(dir, "cpuset.cpus", cpus)?;
    }
    Ok(())
}
