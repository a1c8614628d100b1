//! Control groups for berth containers: v1, v2 (unified) and hybrid hosts.
//!
//! The layout is detected from `/proc/self/mountinfo` and `/proc/self/cgroup`; each
//! controller's files are looked up where the host mounted them. A [`CgroupManager`]
//! owns one container's cgroup across all hierarchies.

use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;

/// What went wrong with a cgroup operation.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Placeholder until the crate is filled in.
    #[error("{0}")]
    Other(String),
}

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
    /// "unified", or empty for a pure v2 host where the whole directory is cgroup2).
    pub name: String,
    /// Host directory of the container's own cgroup in that hierarchy.
    pub host_dir: PathBuf,
    /// True for a cgroup2 hierarchy.
    pub unified: bool,
}

/// One container's cgroup, in every hierarchy the host has.
pub trait CgroupManager: Send + Sync {
    /// Create the cgroup directories (idempotent).
    fn create(&self) -> Result<(), CgroupError>;
    /// Move `pid` into the cgroup in every hierarchy.
    fn add_task(&self, pid: i32) -> Result<(), CgroupError>;
    /// Apply `linux.resources`.
    fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError>;
    /// Freeze or thaw every process in the cgroup.
    fn freeze(&self, state: FreezerState) -> Result<(), CgroupError>;
    /// Current freezer state.
    fn freezer_state(&self) -> Result<FreezerState, CgroupError>;
    /// Pids of every process in the cgroup.
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;
    /// Remove the cgroup directories (processes must be gone).
    fn remove(&self) -> Result<(), CgroupError>;
    /// Mounts the container should get for a `cgroup` mount entry.
    fn container_mounts(&self) -> Result<Vec<ContainerCgroupMount>, CgroupError>;
}

/// Manager for the cgroup at `cgroups_path` (an absolute `linux.cgroupsPath`, or the
/// runtime's default such as `/berth/<id>`).
pub fn manager(cgroups_path: &str) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let _ = cgroups_path;
    Err(CgroupError::Other("cgroups: not yet implemented".into()))
}
