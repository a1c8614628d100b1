//! cgroup v2: one unified hierarchy; controllers must be enabled in every ancestor's
//! cgroup.subtree_control, and devices are controlled by an eBPF program.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use crate::backend::{impl_cgroup_manager, Backend, Group};
use crate::convert;
use crate::devices::{self, bpf};
use crate::error::CgroupError;
use crate::fsutil::{self, write_in};
use crate::layout::dir_name;
use crate::stats::{self, Stats};
use crate::{validate, ContainerCgroupMount, FreezerState, Layout};

/// A container's cgroup in the unified hierarchy (`<root>/<cgroupsPath>`).
#[derive(Debug, Clone)]
pub struct V2Manager {
    pub(crate) cgroups_path: String,
    rel: PathBuf,
    root: PathBuf,
    dir: PathBuf,
    /// Controllers this manager enables and drives (all of the root's on a v2 host,
    /// those v1 did not take on a hybrid one).
    owned: Vec<String>,
    /// Name of the mount inside the container: "" on a v2 host, "unified" on hybrid.
    mount_name: String,
    attacher: Arc<dyn bpf::DeviceFilterAttacher>,
}

impl V2Manager {
    /// A manager for `cgroups_path` in the cgroup2 hierarchy mounted at `root`; reads
    /// `root/cgroup.controllers` (a missing file means no controllers). Nothing is
    /// created until [`crate::CgroupManager::create`].
    pub fn new(root: PathBuf, cgroups_path: &str) -> Result<Self, CgroupError> {
        let rel = validate::relative_cgroups_path(cgroups_path)?;
        let owned = fsutil::read_opt(&root.join("cgroup.controllers"))?
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        Ok(Self {
            cgroups_path: cgroups_path.to_string(),
            dir: root.join(&rel),
            rel,
            root,
            owned,
            mount_name: String::new(),
            attacher: Arc::new(bpf::KernelAttacher),
        })
    }

    /// Use `attacher` for device filter programs (tests record them instead of loading).
    pub fn with_attacher(mut self, attacher: Arc<dyn bpf::DeviceFilterAttacher>) -> Self {
        self.attacher = attacher;
        self
    }

    /// The container's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Controllers this manager enables and drives.
    pub fn controllers(&self) -> &[String] {
        &self.owned
    }

    /// On a hybrid host: leave the controllers v1 holds to v1, and appear as "unified"
    /// (the mount directory's name) inside the container.
    pub(crate) fn for_hybrid<'a>(mut self, v1: impl Iterator<Item = &'a str>) -> Self {
        let taken: Vec<&str> = v1.map(convert::v1_to_v2_controller).collect();
        self.owned.retain(|c| !taken.contains(&c.as_str()));
        self.mount_name = dir_name(&self.root);
        self
    }

    fn owns(&self, c: &str) -> bool {
        self.owned.iter().any(|o| o == c)
    }

    /// Enable the owned controllers in `dir`'s cgroup.subtree_control, in one write when
    /// possible; controllers the kernel refuses are logged and left to fail when used.
    fn enable_controllers(&self, dir: &Path) -> Result<(), CgroupError> {
        if self.owned.is_empty() {
            return Ok(());
        }
        let file = dir.join("cgroup.subtree_control");
        let Some(current) = fsutil::read_opt(&file)? else {
            return Ok(());
        };
        let enabled: Vec<&str> = current.split_whitespace().collect();
        let missing: Vec<String> = self
            .owned
            .iter()
            .filter(|c| !enabled.contains(&c.as_str()))
            .map(|c| format!("+{c}"))
            .collect();
        if missing.is_empty() || fsutil::write(&file, &missing.join(" ")).is_ok() {
            return Ok(());
        }
        for m in &missing {
            if let Err(e) = fsutil::write(&file, m) {
                tracing::warn!("{e}");
            }
        }
        Ok(())
    }

    pub(crate) fn backends(&self) -> Vec<&dyn Backend> {
        vec![self]
    }

    fn layout_kind(&self) -> Layout {
        Layout::V2
    }
}

impl_cgroup_manager!(V2Manager);

fn apply_memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    let limit = m.limit().unwrap_or(0);
    if let Some(v) = convert::v2_swap_max(m.swap().unwrap_or(0), limit)? {
        let file = dir.join("memory.swap.max");
        if file.exists() {
            fsutil::write(&file, &v)?;
        } else if v != "max" {
            return Err(CgroupError::unsupported(
                "memory.swap",
                format!("{} is missing (swap accounting is off)", file.display()),
            ));
        }
    }
    if limit != 0 {
        write_in(dir, "memory.max", &convert::v2_limit(limit))?;
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        write_in(dir, "memory.low", &convert::v2_limit(r))?;
    }
    if m.swappiness().is_some() || m.disable_oom_killer().is_some() || m.kernel().is_some() {
        tracing::debug!("swappiness, disableOOMKiller and kernel have no cgroup v2 file; ignored");
    }
    Ok(())
}

fn apply_cpu(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if c.realtime_runtime().is_some_and(|v| v != 0) || c.realtime_period().is_some_and(|v| v != 0) {
        return Err(CgroupError::unsupported(
            "cpu.realtimeRuntime/realtimePeriod",
            "cgroup v2 has no realtime cpu controller",
        ));
    }
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        write_in(
            dir,
            "cpu.weight",
            &convert::cpu_shares_to_weight(s).to_string(),
        )?;
    }
    if let Some(v) = convert::v2_cpu_max(c.quota(), c.period()) {
        write_in(dir, "cpu.max", &v)?;
    }
    if let Some(b) = c.burst() {
        write_in(dir, "cpu.max.burst", &b.to_string())?;
    }
    if let Some(i) = c.idle() {
        write_in(dir, "cpu.idle", &i.to_string())?;
    }
    Ok(())
}

fn apply_io(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    // With BFQ the weight keeps v1's 10..1000 scale; io.weight is 1..10000.
    let bfq = dir.join("io.bfq.weight").exists();
    let (file, conv): (&str, fn(u64) -> u64) = if bfq {
        ("io.bfq.weight", |w| w)
    } else {
        ("io.weight", convert::blkio_weight_to_io_weight)
    };
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        write_in(dir, file, &conv(u64::from(w)).to_string())?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight().filter(|w| *w != 0) {
            let v = format!("{}:{} {}", d.major(), d.minor(), conv(u64::from(w)));
            write_in(dir, file, &v)?;
        }
    }
    if b.leaf_weight().is_some() {
        tracing::debug!("blockIO.leafWeight has no cgroup v2 file; ignored");
    }
    for (key, list) in [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ] {
        for d in list.iter().flatten() {
            // 0 removes the limit on v1; "max" does on v2.
            let rate = match d.rate() {
                0 => "max".to_string(),
                r => r.to_string(),
            };
            write_in(
                dir,
                "io.max",
                &format!("{}:{} {key}={rate}", d.major(), d.minor()),
            )?;
        }
    }
    Ok(())
}

fn apply_hugetlb(dir: &Path, r: &LinuxResources) -> Result<(), CgroupError> {
    for h in r.hugepage_limits().iter().flatten() {
        let size = validate::hugepage_size(h.page_size())?;
        let value = convert::v2_limit(h.limit());
        write_in(dir, &format!("hugetlb.{size}.max"), &value)?;
        let rsvd = dir.join(format!("hugetlb.{size}.rsvd.max"));
        if rsvd.exists() {
            fsutil::write(&rsvd, &value)?;
        }
    }
    Ok(())
}

impl Backend for V2Manager {
    fn unified_dir(&self) -> Option<&Path> {
        Some(&self.dir)
    }
    fn has(&self, g: Group) -> bool {
        match g {
            Group::Cpuset => self.owns("cpuset"),
            Group::Cpu => self.owns("cpu"),
            Group::Memory => self.owns("memory"),
            Group::Pids => self.owns("pids"),
            Group::Io => self.owns("io"),
            Group::Hugetlb => self.owns("hugetlb"),
            Group::Network => false,
            // cpu.stat, cgroup.freeze and device programs need no controller.
            Group::Cpuacct | Group::Devices | Group::Freezer => true,
        }
    }

    fn is_unified(&self) -> bool {
        true
    }

    fn create(&self) -> Result<(), CgroupError> {
        let mut dir = self.root.clone();
        for c in self.rel.components() {
            self.enable_controllers(&dir)?;
            dir.push(c);
            fsutil::mkdir_one(&dir)?;
        }
        Ok(())
    }

    fn add_task(&self, pid: i32) -> Result<(), CgroupError> {
        write_in(&self.dir, "cgroup.procs", &pid.to_string())
    }

    fn apply_group(&self, g: Group, r: &LinuxResources) -> Result<(), CgroupError> {
        let dir = &self.dir;
        match g {
            Group::Cpuset => r
                .cpu()
                .as_ref()
                .map_or(Ok(()), |c| crate::backend::apply_cpuset(dir, c)),
            Group::Cpu => r.cpu().as_ref().map_or(Ok(()), |c| apply_cpu(dir, c)),
            Group::Memory => r.memory().as_ref().map_or(Ok(()), |m| apply_memory(dir, m)),
            Group::Pids => match r.pids().and_then(|p| convert::pids_max(p.limit())) {
                Some(v) => write_in(dir, "pids.max", &v),
                None => Ok(()),
            },
            Group::Io => r.block_io().as_ref().map_or(Ok(()), |b| apply_io(dir, b)),
            Group::Hugetlb => apply_hugetlb(dir, r),
            Group::Devices => match r.devices() {
                Some(rules) => {
                    let program = bpf::device_filter(&devices::effective_rules(rules));
                    self.attacher.attach(dir, &program)
                }
                None => Ok(()),
            },
            Group::Network | Group::Cpuacct | Group::Freezer => Ok(()),
        }
    }

    fn apply_unified(&self, values: &HashMap<String, String>) -> Result<(), CgroupError> {
        let mut keys: Vec<&String> = values.keys().collect();
        keys.sort();
        for k in keys {
            validate::unified_key(k)?;
            write_in(&self.dir, k, &values[k])?;
        }
        Ok(())
    }

    fn stats_group(&self, g: Group, s: &mut Stats) -> Result<(), CgroupError> {
        let dir = &self.dir;
        match g {
            Group::Cpuacct | Group::Cpu => stats::v2::cpu(dir, s),
            Group::Memory => stats::v2::memory(dir, s),
            Group::Pids => stats::v2::pids(dir, s),
            Group::Io => stats::v2::io(dir, s),
            Group::Hugetlb => stats::v2::hugetlb(dir, s),
            _ => Ok(()),
        }
    }

    fn oom_kill_count(&self) -> Result<u64, CgroupError> {
        stats::v2::oom_kill_count(&self.dir)
    }

    fn request_freeze(&self, state: FreezerState) -> Result<(), CgroupError> {
        let v = match state {
            FreezerState::Frozen => "1",
            FreezerState::Thawed => "0",
        };
        write_in(&self.dir, "cgroup.freeze", v)
    }

    fn freezer_state(&self) -> Result<FreezerState, CgroupError> {
        let events = fsutil::parse_flat_keyed(&fsutil::read(&self.freezer_file())?);
        Ok(if events.get("frozen") == Some(&1) {
            FreezerState::Frozen
        } else {
            FreezerState::Thawed
        })
    }

    fn freezer_file(&self) -> PathBuf {
        self.dir.join("cgroup.events")
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        fsutil::read_pids(&self.dir.join("cgroup.procs"))
    }

    fn remove(&self) -> Result<(), CgroupError> {
        fsutil::rmdir_tree(&self.dir)
    }

    fn mounts(&self) -> Vec<ContainerCgroupMount> {
        vec![ContainerCgroupMount {
            name: self.mount_name.clone(),
            host_dir: self.dir.clone(),
            unified: true,
        }]
    }

    fn kill_file(&self) -> Option<PathBuf> {
        let f = self.dir.join("cgroup.kill");
        f.exists().then_some(f)
    }
}
