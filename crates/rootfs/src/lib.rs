//! The container's root filesystem: mounts, devices, pivot_root, masked and read-only
//! paths. Every path taken from the spec is resolved inside the rootfs, so that a
//! symlink in a hostile rootfs never makes a mount land outside it.
//!
//! Called by the container's init process, already in its new mount namespace, in this
//! order: [`prepare`] → (createRuntime / createContainer hooks) → [`pivot`] → [`finalize`].

use std::path::Path;

use oci_spec::runtime::Spec;

/// What went wrong while building the root filesystem.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// Placeholder until the crate is filled in.
    #[error("{0}")]
    Other(String),
}

/// Options that do not come from the spec.
#[derive(Debug, Clone, Copy)]
pub struct RootfsOptions<'a> {
    /// The rootfs directory on the host (absolute, canonical).
    pub rootfs: &'a Path,
    /// The bundle directory (relative mount sources are resolved against it).
    pub bundle: &'a Path,
    /// chroot instead of pivot_root (runc's --no-pivot).
    pub no_pivot: bool,
    /// The process is in a new user namespace: devices are bind-mounted, not mknod'ed.
    pub in_user_ns: bool,
    /// The container got a new cgroup namespace.
    pub in_cgroup_ns: bool,
}

/// Set mount propagation, make the rootfs a mount point, perform every `mounts` entry,
/// create default and `linux.devices` devices and the /dev symlinks.
pub fn prepare(
    spec: &Spec,
    opts: &RootfsOptions<'_>,
    cgroup: Option<&dyn berth_cgroups::CgroupManager>,
) -> Result<(), RootfsError> {
    let _ = (spec, opts, cgroup);
    Err(RootfsError::Other("rootfs: not yet implemented".into()))
}

/// pivot_root into the rootfs (or chroot with `no_pivot`) and detach the old root.
pub fn pivot(opts: &RootfsOptions<'_>) -> Result<(), RootfsError> {
    let _ = opts;
    Err(RootfsError::Other("rootfs: not yet implemented".into()))
}

/// After pivot: maskedPaths, readonlyPaths, `root.readonly`, rootfsPropagation.
pub fn finalize(spec: &Spec) -> Result<(), RootfsError> {
    let _ = spec;
    Err(RootfsError::Other("rootfs: not yet implemented".into()))
}
