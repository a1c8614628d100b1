//! The crate's error type: every message says what was being done and to what.

use std::path::PathBuf;

use nix::errno::Errno;

/// What went wrong while building the root filesystem.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A path from the spec could not be opened inside the rootfs.
    #[error("resolving {path} inside the rootfs: {errno}")]
    Resolve { path: PathBuf, errno: Errno },
    /// A directory, file or device node could not be created inside the rootfs.
    #[error("creating {path} inside the rootfs: {errno}")]
    Create { path: PathBuf, errno: Errno },
    /// A resolved path ended up outside the rootfs (never expected with openat2).
    #[error("mount destination {path} resolves outside the rootfs")]
    Escape { path: PathBuf },
    /// mount(2) of a filesystem or bind mount failed.
    #[error("mounting {what} at {dest}: {errno}")]
    Mount {
        what: String,
        dest: PathBuf,
        errno: Errno,
    },
    /// Remounting with new flags failed.
    #[error("remounting {dest} with {flags}: {errno}")]
    Remount {
        dest: PathBuf,
        flags: String,
        errno: Errno,
    },
    /// Changing the propagation type of a mount failed.
    #[error("setting propagation {propagation} on {dest}: {errno}")]
    Propagation {
        propagation: String,
        dest: PathBuf,
        errno: Errno,
    },
    /// mount_setattr(2) for the recursive mount attributes failed.
    #[error("setting recursive mount attributes on {dest}: {errno}")]
    MountAttr { dest: PathBuf, errno: Errno },
    /// A mount option berth does not implement.
    #[error("mount option {option} for {dest}: unsupported")]
    Unsupported { option: String, dest: PathBuf },
    /// A malformed entry in the spec.
    #[error("invalid {field}: {reason}")]
    InvalidSpec { field: String, reason: String },
    /// Copying the existing content of a directory into its new tmpfs failed.
    #[error("copying {path} into its tmpfs (tmpcopyup): {errno}")]
    CopyUp { path: PathBuf, errno: Errno },
    /// Creating a symlink inside /dev failed.
    #[error("creating symlink {link} -> {target}: {errno}")]
    Symlink {
        link: PathBuf,
        target: PathBuf,
        errno: Errno,
    },
    /// Asking the cgroup manager for the container's cgroup mounts failed.
    #[error("listing the container's cgroup mounts")]
    Cgroup(#[source] berth_cgroups::CgroupError),
    /// A step of pivot_root (or of the chroot fallback) failed.
    #[error("switching root to {rootfs} ({step}): {errno}")]
    Pivot {
        rootfs: PathBuf,
        step: &'static str,
        errno: Errno,
    },
    /// Masking a path from maskedPaths failed.
    #[error("masking {path}: {errno}")]
    Mask { path: PathBuf, errno: Errno },
    /// Reading /proc/self/mountinfo failed.
    #[error("reading /proc/self/mountinfo: {errno}")]
    MountInfo { errno: Errno },
}

impl RootfsError {
    pub(crate) fn mount(what: impl Into<String>, dest: impl Into<PathBuf>, errno: Errno) -> Self {
        Self::Mount {
            what: what.into(),
            dest: dest.into(),
            errno,
        }
    }
}
