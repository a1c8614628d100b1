//! The `cgroup` mount type, built as runc does from the manager's cgroup mounts:
//! a pure cgroup2 host gets cgroup2 (own cgroup namespace) or a bind of the container's
//! cgroup; a v1/hybrid host gets a tmpfs with one bind per hierarchy plus symlinks for
//! comma-joined controllers.

use std::path::{Path, PathBuf};

use berth_cgroups::{CgroupManager, ContainerCgroupMount};
use nix::errno::Errno;
use nix::mount::MsFlags;

use crate::devices::symlink_in;
use crate::error::RootfsError;
use crate::mounts::{remount_err, Mounter};
use crate::options::MountOptions;
use crate::sys::mount_on;

/// Where the container's cgroup mounts come from.
#[derive(Clone, Copy)]
pub(crate) enum CgroupSource<'a> {
    /// Ask the manager.
    Manager(&'a dyn CgroupManager),
    /// Given directly (tests).
    Fixed(&'a [ContainerCgroupMount]),
    /// No manager: cgroup2 or nothing.
    None,
}

impl CgroupSource<'_> {
    fn mounts(&self) -> Option<Result<Vec<ContainerCgroupMount>, RootfsError>> {
        match self {
            Self::Manager(manager) => Some(manager.container_mounts().map_err(RootfsError::Cgroup)),
            Self::Fixed(mounts) => Some(Ok(mounts.to_vec())),
            Self::None => None,
        }
    }
}

/// Mount the container's cgroups at `dest`.
pub(crate) fn mount(
    mounter: &Mounter<'_>,
    dest: &Path,
    options: &MountOptions,
    source: CgroupSource<'_>,
) -> Result<(), RootfsError> {
    let Some(mounts) = source.mounts() else {
        return cgroup2_or_skip(mounter, dest, options);
    };
    let mounts = mounts?;
    match mounts.as_slice() {
        [only] if only.unified && only.name.is_empty() => unified(mounter, dest, options, only),
        _ => hybrid(mounter, dest, options, &mounts),
    }
}

/// No manager: cgroup2 if the kernel lets us, otherwise no cgroup mount at all.
fn cgroup2_or_skip(
    mounter: &Mounter<'_>,
    dest: &Path,
    options: &MountOptions,
) -> Result<(), RootfsError> {
    match mounter.filesystem("cgroup2", Path::new("cgroup2"), dest, options) {
        Err(RootfsError::Mount { errno, .. }) => {
            tracing::warn!(dest = %dest.display(), %errno, "no cgroup manager and cgroup2 cannot be mounted: skipping the cgroup mount");
            Ok(())
        }
        other => other,
    }
}

/// Pure cgroup2 host.
fn unified(
    mounter: &Mounter<'_>,
    dest: &Path,
    options: &MountOptions,
    mount: &ContainerCgroupMount,
) -> Result<(), RootfsError> {
    if mounter.opts.in_cgroup_ns {
        match mounter.filesystem("cgroup2", Path::new("cgroup2"), dest, options) {
            Err(RootfsError::Mount {
                errno: Errno::EPERM | Errno::EBUSY,
                ..
            }) => {}
            other => return other,
        }
    }
    mounter.bind(&mount.host_dir, dest, &bind_options(options))
}

/// cgroup v1 or hybrid host: tmpfs, then one bind per hierarchy.
fn hybrid(
    mounter: &Mounter<'_>,
    dest: &Path,
    options: &MountOptions,
    mounts: &[ContainerCgroupMount],
) -> Result<(), RootfsError> {
    let tmpfs = MountOptions {
        flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        data: vec!["mode=755".into()],
        propagation: options.propagation.clone(),
        ..MountOptions::default()
    };
    mounter.filesystem("tmpfs", Path::new("tmpfs"), dest, &tmpfs)?;
    for mount in mounts {
        mounter.bind(
            &mount.host_dir,
            &dest.join(&mount.name),
            &bind_options(options),
        )?;
    }
    controller_symlinks(mounter, dest, mounts)?;
    if options.flags.contains(MsFlags::MS_RDONLY) {
        remount_tmpfs_ro(mounter, dest, &tmpfs)?;
    }
    Ok(())
}

/// "cpu,cpuacct" also reachable as "cpu" and "cpuacct".
fn controller_symlinks(
    mounter: &Mounter<'_>,
    dest: &Path,
    mounts: &[ContainerCgroupMount],
) -> Result<(), RootfsError> {
    for mount in mounts.iter().filter(|m| m.name.contains(',')) {
        for controller in mount.name.split(',') {
            symlink_in(
                mounter.root,
                &dest.join(controller),
                &PathBuf::from(&mount.name),
            )?;
        }
    }
    Ok(())
}

fn remount_tmpfs_ro(
    mounter: &Mounter<'_>,
    dest: &Path,
    tmpfs: &MountOptions,
) -> Result<(), RootfsError> {
    let top = mounter.reopen(dest)?;
    let flags = tmpfs.flags | MsFlags::MS_RDONLY | MsFlags::MS_REMOUNT;
    let data = tmpfs.data();
    mount_on(
        None,
        std::os::fd::AsFd::as_fd(&top),
        None,
        flags,
        data.as_deref(),
    )
    .map_err(|errno| remount_err(dest, flags, errno))
}

/// The entry's flags on a recursive bind.
fn bind_options(options: &MountOptions) -> MountOptions {
    let mut bind = options.clone();
    bind.flags |= MsFlags::MS_BIND | MsFlags::MS_REC;
    bind.data.clear();
    bind
}
