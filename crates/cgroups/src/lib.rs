//! Control groups for berth containers: v1, v2 (unified) and hybrid hosts.
//!
//! The layout is detected from `/proc/self/mountinfo` (parsed once per process); each
//! controller's files are looked up where the host mounted them. A [`CgroupManager`]
//! owns one container's cgroup across all hierarchies:
//!
//! ```text
//! manager(path) ──► V1Manager      one directory per v1 hierarchy
//!               ├─► V2Manager      one directory in the unified hierarchy (+ eBPF devices)
//!               └─► HybridManager  both: v1 for what v1 mounts, v2 for the rest
//! ```
//!
//! Lifecycle: [`validate`] the resources → [`manager`] (creates nothing) →
//! [`CgroupManager::create`] → [`CgroupManager::apply`] → [`CgroupManager::add_task`] →
//! ... → [`CgroupManager::kill_all`] → [`CgroupManager::remove`]. Later commands call
//! [`manager`] (or [`load`]) again with the same path to act on the existing cgroup.
//!
//! Device rules: `apply` with `devices: Some(rules)` installs deny-all, then `rules`,
//! then the devices every container gets (/dev/null, /dev/zero, /dev/full, /dev/random,
//! /dev/urandom, /dev/tty, /dev/console, /dev/ptmx, /dev/pts/*, mknod of any). With
//! `devices: None` device access is left as it is (what `update` wants); at create time
//! pass `Some(vec![])` at least, so that a container never keeps the host's full access.

mod backend;
pub mod convert;
pub mod devices;
mod error;
mod fsutil;
pub mod hybrid;
pub mod layout;
pub mod stats;
pub mod v1;
pub mod v2;
mod validate;

use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;

pub use error::CgroupError;
pub use fsutil::parse_flat_keyed;
pub use hybrid::HybridManager;
pub use layout::{
    detect, layout_from_proc_cgroup, parse_proc_cgroup, process_cgroups, Hierarchies, Layout,
    ProcCgroup, V1Hierarchy,
};
pub use stats::Stats;
pub use v1::V1Manager;
pub use v2::V2Manager;
pub use validate::{relative_cgroups_path, validate};

/// Freezer state of a cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    Thawed,
    Frozen,
}

/// A cgroup mount the container should see at `/sys/fs/cgroup` (used by the rootfs crate
/// to build the container's cgroup mount).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerCgroupMount {
    /// Name under /sys/fs/cgroup inside the container ("cpu,cpuacct", "memory",
    /// "systemd", "unified", or empty for a pure v2 host where the whole directory is
    /// cgroup2).
    pub name: String,
    /// Host directory of the container's own cgroup in that hierarchy.
    pub host_dir: PathBuf,
    /// True for a cgroup2 hierarchy.
    pub unified: bool,
}

/// One container's cgroup, in every hierarchy the host has. Object safe; a systemd
/// driver can implement it later.
pub trait CgroupManager: Send + Sync {
    /// Create the cgroup directories (idempotent). On v1, cpuset.cpus/mems are copied
    /// down from the parent; on v2, controllers are enabled in the ancestors.
    fn create(&self) -> Result<(), CgroupError>;
    /// Move `pid` into the cgroup in every hierarchy.
    fn add_task(&self, pid: i32) -> Result<(), CgroupError>;
    /// Apply `linux.resources` (validated first, so nothing is half-written because of a
    /// bad value). Only the settings present are written.
    fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError>;
    /// Freeze or thaw every process in the cgroup, waiting until the kernel reports it.
    fn freeze(&self, state: FreezerState) -> Result<(), CgroupError>;
    /// Current freezer state (a cgroup still freezing reports `Thawed`).
    fn freezer_state(&self) -> Result<FreezerState, CgroupError>;
    /// Pids of every process in the cgroup.
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;
    /// Remove the cgroup directories, sub-cgroups first (processes must be gone; EBUSY is
    /// retried briefly, a missing directory is fine).
    fn remove(&self) -> Result<(), CgroupError>;
    /// Mounts the container should get for a `cgroup` mount entry.
    fn container_mounts(&self) -> Result<Vec<ContainerCgroupMount>, CgroupError>;
    /// Resource usage, shaped like runc's `events --stats` data.
    fn stats(&self) -> Result<Stats, CgroupError>;
    /// How many processes the OOM killer killed in this cgroup.
    fn oom_kill_count(&self) -> Result<u64, CgroupError>;
    /// Send `signal` to every process of the cgroup (SIGKILL through cgroup.kill where the
    /// kernel has it, else with the cgroup frozen meanwhile).
    fn kill_all(&self, signal: i32) -> Result<(), CgroupError>;
    /// The layout this manager drives.
    fn layout(&self) -> Layout;
    /// The cgroups path it was made for ("/berth/<id>").
    fn cgroups_path(&self) -> &str;
    /// On a pure cgroup2 host, the container's cgroup directory: a child can be created
    /// in it with clone3(CLONE_INTO_CGROUP), which skips the migration that writing
    /// cgroup.procs costs (the cgroup_threadgroup_rwsem write side waits for an RCU
    /// grace period). None where v1 hierarchies need cgroup.procs writes anyway.
    fn clone_into_dir(&self) -> Option<PathBuf>;
}

/// Manager for the cgroup at `cgroups_path` (an absolute `linux.cgroupsPath`, or the
/// runtime's default such as `/berth/<id>`), in the host's layout. The cgroup is at that
/// path below each hierarchy's mount point, not below the caller's own cgroup. Creates
/// nothing.
pub fn manager(cgroups_path: &str) -> Result<Box<dyn CgroupManager>, CgroupError> {
    validate::relative_cgroups_path(cgroups_path)?;
    manager_for(Hierarchies::host()?, cgroups_path)
}

/// Same as [`manager`]: for commands acting on an existing cgroup.
pub fn load(cgroups_path: &str) -> Result<Box<dyn CgroupManager>, CgroupError> {
    manager(cgroups_path)
}

/// Manager for `cgroups_path` over the given hierarchies (fakes in tests).
pub fn manager_for(
    hierarchies: &Hierarchies,
    cgroups_path: &str,
) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let unified = || hierarchies.unified.clone().ok_or(CgroupError::NoHierarchy);
    Ok(match hierarchies.layout()? {
        Layout::V1 => Box::new(V1Manager::new(hierarchies.v1.clone(), cgroups_path)?),
        Layout::V2 => Box::new(V2Manager::new(unified()?, cgroups_path)?),
        Layout::Hybrid => Box::new(HybridManager::new(
            V1Manager::new(hierarchies.v1.clone(), cgroups_path)?,
            V2Manager::new(unified()?, cgroups_path)?,
        )?),
    })
}
