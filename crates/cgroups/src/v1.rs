//! cgroup v1: one directory per hierarchy, each holding some controllers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxNetwork, LinuxResources};

use crate::backend::{impl_cgroup_manager, Backend, Group};
use crate::devices;
use crate::error::CgroupError;
use crate::fsutil::{self, write_in};
use crate::layout::V1Hierarchy;
use crate::stats::{self, Stats};
use crate::{validate, ContainerCgroupMount, FreezerState, Layout};

/// A container's cgroup in every v1 hierarchy (`<mount point>/<cgroupsPath>`).
#[derive(Debug, Clone)]
pub struct V1Manager {
    pub(crate) cgroups_path: String,
    rel: PathBuf,
    hierarchies: Vec<V1Hierarchy>,
    /// The container's directory in each hierarchy, in the same order.
    dirs: Vec<PathBuf>,
}

impl V1Manager {
    /// A manager over `hierarchies` (the host's, or fakes in a temporary directory).
    /// Nothing is created until [`crate::CgroupManager::create`].
    pub fn new(hierarchies: Vec<V1Hierarchy>, cgroups_path: &str) -> Result<Self, CgroupError> {
        let rel = validate::relative_cgroups_path(cgroups_path)?;
        let dirs = hierarchies
            .iter()
            .map(|h| h.mount_point.join(&rel))
            .collect();
        Ok(Self {
            cgroups_path: cgroups_path.to_string(),
            rel,
            hierarchies,
            dirs,
        })
    }

    /// The container's directory in the hierarchy holding `controller`.
    pub fn dir(&self, controller: &str) -> Option<&Path> {
        self.hierarchies
            .iter()
            .position(|h| h.has(controller))
            .map(|i| self.dirs[i].as_path())
    }

    /// Controllers of every hierarchy (including "name=..." ones).
    pub fn controllers(&self) -> impl Iterator<Item = &str> {
        self.hierarchies
            .iter()
            .flat_map(|h| h.controllers.iter().map(String::as_str))
    }

    fn group_dir(&self, g: Group) -> Option<&Path> {
        match g {
            Group::Cpuset => self.dir("cpuset"),
            Group::Cpu => self.dir("cpu"),
            Group::Cpuacct => self.dir("cpuacct"),
            Group::Memory => self.dir("memory"),
            Group::Pids => self.dir("pids"),
            Group::Io => self.dir("blkio"),
            Group::Hugetlb => self.dir("hugetlb"),
            Group::Network => self.dir("net_cls").or_else(|| self.dir("net_prio")),
            Group::Devices => self.dir("devices"),
            Group::Freezer => self.dir("freezer"),
        }
    }

    fn required_dir(&self, g: Group) -> Result<&Path, CgroupError> {
        self.group_dir(g).ok_or_else(|| {
            CgroupError::unsupported(format!("{g:?}").to_lowercase(), "controller not mounted")
        })
    }

    pub(crate) fn backends(&self) -> Vec<&dyn Backend> {
        vec![self]
    }

    fn layout_kind(&self) -> Layout {
        Layout::V1
    }
}

impl_cgroup_manager!(V1Manager);

/// mkdir each level below the cpuset mount, copying cpuset.cpus and cpuset.mems down
/// from the parent where they are empty (a task cannot join a cgroup with empty ones).
fn create_cpuset(mount: &Path, rel: &Path) -> Result<(), CgroupError> {
    let files = ["cpuset.cpus", "cpuset.mems"];
    let mut parent: Vec<String> = files
        .iter()
        .map(|f| fsutil::read(&mount.join(f)).map(|v| v.trim().to_string()))
        .collect::<Result<_, _>>()?;
    let mut dir = mount.to_path_buf();
    for c in rel.components() {
        dir.push(c);
        fsutil::mkdir_one(&dir)?;
        for (f, inherited) in files.iter().zip(parent.iter_mut()) {
            let own = fsutil::read(&dir.join(f))?;
            if own.trim().is_empty() {
                write_in(&dir, f, inherited)?;
            } else {
                *inherited = own.trim().to_string();
            }
        }
    }
    Ok(())
}

fn apply_cpu(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(shares) = c.shares().filter(|s| *s != 0) {
        write_in(dir, "cpu.shares", &shares.to_string())?;
    }
    let period = c.period().filter(|p| *p != 0);
    let quota = c.quota().filter(|q| *q != 0);
    if let Some(p) = period {
        // The kernel refuses a period that makes the current quota invalid; setting the
        // quota first and retrying gets past that (as runc does).
        if let Err(e) = write_in(dir, "cpu.cfs_period_us", &p.to_string()) {
            let Some(q) = quota else { return Err(e) };
            write_in(dir, "cpu.cfs_quota_us", &q.to_string())?;
            write_in(dir, "cpu.cfs_period_us", &p.to_string())?;
        }
    }
    if let Some(q) = quota {
        write_in(dir, "cpu.cfs_quota_us", &q.to_string())?;
    }
    if let Some(b) = c.burst() {
        write_in(dir, "cpu.cfs_burst_us", &b.to_string())?;
    }
    if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
        write_in(dir, "cpu.rt_period_us", &p.to_string())?;
    }
    if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
        write_in(dir, "cpu.rt_runtime_us", &r.to_string())?;
    }
    if let Some(idle) = c.idle() {
        write_in(dir, "cpu.idle", &idle.to_string())?;
    }
    Ok(())
}

fn apply_memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    let limit = m.limit().filter(|v| *v != 0);
    let mut swap = m.swap().filter(|v| *v != 0);
    // Unlimited memory with swap unset means unlimited memory+swap too.
    if limit == Some(-1) && swap.is_none() {
        swap = Some(-1);
    }
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    if swap.is_some() && !memsw.exists() {
        // No swap accounting: fine as long as nothing beyond the memory limit is asked.
        if swap != Some(-1) && swap != limit {
            return Err(CgroupError::unsupported(
                "memory.swap",
                format!("{} is missing (swap accounting is off)", memsw.display()),
            ));
        }
        swap = None;
    }
    match (limit, swap) {
        (Some(l), Some(s)) => {
            // memsw must stay >= limit at every step: raise memsw first when growing.
            let current = fsutil::read_i64(&dir.join("memory.limit_in_bytes"))?;
            if s == -1 || s > current {
                fsutil::write(&memsw, &s.to_string())?;
                write_in(dir, "memory.limit_in_bytes", &l.to_string())?;
            } else {
                write_in(dir, "memory.limit_in_bytes", &l.to_string())?;
                fsutil::write(&memsw, &s.to_string())?;
            }
        }
        (Some(l), None) => write_in(dir, "memory.limit_in_bytes", &l.to_string())?,
        (None, Some(s)) => fsutil::write(&memsw, &s.to_string())?,
        (None, None) => {}
    }
    if let Some(r) = m.reservation().filter(|v| *v != 0) {
        write_in(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    if let Some(s) = m.swappiness() {
        write_in(dir, "memory.swappiness", &s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        write_in(dir, "memory.oom_control", "1")?;
    }
    if let Some(tcp) = m.kernel_tcp().filter(|v| *v != 0) {
        write_in(dir, "memory.kmem.tcp.limit_in_bytes", &tcp.to_string())?;
    }
    if m.kernel().is_some() {
        tracing::debug!("memory.kernel is ignored (kernel memory limits are deprecated)");
    }
    Ok(())
}

fn apply_blkio(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    // CFQ has blkio.weight; with BFQ the files are blkio.bfq.*.
    let prefix = if dir.join("blkio.weight").exists() || !dir.join("blkio.bfq.weight").exists() {
        "blkio."
    } else {
        "blkio.bfq."
    };
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        write_in(dir, &format!("{prefix}weight"), &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        write_in(dir, "blkio.leaf_weight", &w.to_string())?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            let v = format!("{}:{} {w}", d.major(), d.minor());
            write_in(dir, &format!("{prefix}weight_device"), &v)?;
        }
        if let Some(w) = d.leaf_weight() {
            let v = format!("{}:{} {w}", d.major(), d.minor());
            write_in(dir, "blkio.leaf_weight_device", &v)?;
        }
    }
    for (file, list) in [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ] {
        for d in list.iter().flatten() {
            let v = format!("{}:{} {}", d.major(), d.minor(), d.rate());
            write_in(dir, file, &v)?;
        }
    }
    Ok(())
}

fn apply_hugetlb(dir: &Path, r: &LinuxResources) -> Result<(), CgroupError> {
    for h in r.hugepage_limits().iter().flatten() {
        let size = validate::hugepage_size(h.page_size())?;
        let value = h.limit().to_string();
        write_in(dir, &format!("hugetlb.{size}.limit_in_bytes"), &value)?;
        let rsvd = dir.join(format!("hugetlb.{size}.rsvd.limit_in_bytes"));
        if rsvd.exists() {
            fsutil::write(&rsvd, &value)?;
        }
    }
    Ok(())
}

impl V1Manager {
    fn apply_network(&self, n: &LinuxNetwork) -> Result<(), CgroupError> {
        if let (Some(id), Some(dir)) = (n.class_id(), self.dir("net_cls")) {
            write_in(dir, "net_cls.classid", &id.to_string())?;
        }
        if let (Some(prios), Some(dir)) = (n.priorities(), self.dir("net_prio")) {
            for p in prios {
                write_in(
                    dir,
                    "net_prio.ifpriomap",
                    &format!("{} {}", p.name(), p.priority()),
                )?;
            }
        }
        Ok(())
    }
}

impl Backend for V1Manager {
    fn has(&self, g: Group) -> bool {
        self.group_dir(g).is_some()
    }

    fn is_unified(&self) -> bool {
        false
    }

    fn create(&self) -> Result<(), CgroupError> {
        for (h, dir) in self.hierarchies.iter().zip(&self.dirs) {
            if h.has("cpuset") {
                create_cpuset(&h.mount_point, &self.rel)?;
            } else {
                fsutil::mkdir_p(dir)?;
            }
        }
        Ok(())
    }

    fn add_task(&self, pid: i32) -> Result<(), CgroupError> {
        let pid = pid.to_string();
        self.dirs
            .iter()
            .try_for_each(|d| write_in(d, "cgroup.procs", &pid))
    }

    fn apply_group(&self, g: Group, r: &LinuxResources) -> Result<(), CgroupError> {
        let dir = self.required_dir(g)?;
        match g {
            Group::Cpuset => r
                .cpu()
                .as_ref()
                .map_or(Ok(()), |c| crate::backend::apply_cpuset(dir, c)),
            Group::Cpu => r.cpu().as_ref().map_or(Ok(()), |c| apply_cpu(dir, c)),
            Group::Memory => r.memory().as_ref().map_or(Ok(()), |m| apply_memory(dir, m)),
            Group::Pids => match r.pids().and_then(|p| crate::convert::pids_max(p.limit())) {
                Some(v) => write_in(dir, "pids.max", &v),
                None => Ok(()),
            },
            Group::Io => r
                .block_io()
                .as_ref()
                .map_or(Ok(()), |b| apply_blkio(dir, b)),
            Group::Hugetlb => apply_hugetlb(dir, r),
            Group::Network => r
                .network()
                .as_ref()
                .map_or(Ok(()), |n| self.apply_network(n)),
            Group::Devices => match r.devices() {
                Some(rules) => devices::apply_v1(dir, &devices::effective_rules(rules)),
                None => Ok(()),
            },
            Group::Cpuacct | Group::Freezer => Ok(()),
        }
    }

    fn apply_unified(&self, _: &HashMap<String, String>) -> Result<(), CgroupError> {
        Err(CgroupError::unsupported(
            "unified resources",
            "this host has no cgroup v2 hierarchy (cgroup v1 only)",
        ))
    }

    fn stats_group(&self, g: Group, s: &mut Stats) -> Result<(), CgroupError> {
        let dir = self.required_dir(g)?;
        match g {
            Group::Cpuacct => stats::v1::cpuacct(dir, s),
            Group::Cpu => stats::v1::cpu(dir, s),
            Group::Memory => stats::v1::memory(dir, s),
            Group::Pids => stats::v1::pids(dir, s),
            Group::Io => stats::v1::blkio(dir, s),
            Group::Hugetlb => stats::v1::hugetlb(dir, s),
            _ => Ok(()),
        }
    }

    fn oom_kill_count(&self) -> Result<u64, CgroupError> {
        stats::v1::oom_kill_count(self.required_dir(Group::Memory)?)
    }

    fn request_freeze(&self, state: FreezerState) -> Result<(), CgroupError> {
        let v = match state {
            FreezerState::Frozen => "FROZEN",
            FreezerState::Thawed => "THAWED",
        };
        write_in(self.required_dir(Group::Freezer)?, "freezer.state", v)
    }

    fn freezer_state(&self) -> Result<FreezerState, CgroupError> {
        let s = fsutil::read(&self.required_dir(Group::Freezer)?.join("freezer.state"))?;
        // FREEZING counts as thawed: not every task is stopped yet.
        Ok(if s.trim() == "FROZEN" {
            FreezerState::Frozen
        } else {
            FreezerState::Thawed
        })
    }

    fn freezer_file(&self) -> PathBuf {
        self.group_dir(Group::Freezer)
            .map(|d| d.join("freezer.state"))
            .unwrap_or_default()
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let dir = self
            .group_dir(Group::Pids)
            .or_else(|| self.dirs.first().map(PathBuf::as_path))
            .ok_or(CgroupError::NoHierarchy)?;
        fsutil::read_pids(&dir.join("cgroup.procs"))
    }

    fn remove(&self) -> Result<(), CgroupError> {
        let mut first = None;
        for d in &self.dirs {
            if let Err(e) = fsutil::rmdir_tree(d) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn mounts(&self) -> Vec<ContainerCgroupMount> {
        self.hierarchies
            .iter()
            .zip(&self.dirs)
            .map(|(h, d)| ContainerCgroupMount {
                name: h.dir_name(),
                host_dir: d.clone(),
                unified: false,
            })
            .collect()
    }

    fn kill_file(&self) -> Option<PathBuf> {
        None
    }
}
