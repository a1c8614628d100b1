//! After pivot_root: maskedPaths, readonlyPaths and `root.readonly`.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::stat::{fstat, SFlag};

use crate::error::RootfsError;
use crate::mounts::remount_err;
use crate::resolve::Root;
use crate::sys::{self, mount_on};

/// Hide `path`: a read-only tmpfs over a directory, /dev/null over anything else.
/// A missing path is ignored.
pub(crate) fn mask(root: &Root, path: &Path) -> Result<(), RootfsError> {
    let Some(target) = open_optional(root, path)? else {
        return Ok(());
    };
    let mask_err = |errno| RootfsError::Mask {
        path: path.to_owned(),
        errno,
    };
    let st = fstat(&target).map_err(mask_err)?;
    let result = if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR {
        mount_on(
            Some(Path::new("tmpfs")),
            target.as_fd(),
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None,
        )
    } else {
        mount_on(
            Some(Path::new("/dev/null")),
            target.as_fd(),
            None,
            MsFlags::MS_BIND,
            None,
        )
    };
    result.map_err(mask_err)
}

/// Make `path` read-only (and nosuid, nodev, noexec) with a bind mount onto itself.
/// A missing path is ignored.
pub(crate) fn make_readonly(root: &Root, path: &Path) -> Result<(), RootfsError> {
    let Some(target) = open_optional(root, path)? else {
        return Ok(());
    };
    let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount_on(
        Some(&sys::fd_path(target.as_fd())),
        target.as_fd(),
        None,
        flags,
        None,
    )
    .map_err(|errno| RootfsError::mount("read-only bind", path, errno))?;
    let top = root.open_existing(path)?.ok_or(RootfsError::Resolve {
        path: path.to_owned(),
        errno: Errno::ENOENT,
    })?;
    let ro = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    remount_keeping_locked(&top, path, ro)
}

/// `root.readonly`: remount `/` read-only, keeping its other flags.
pub(crate) fn readonly_root(root: &Root) -> Result<(), RootfsError> {
    let top = root
        .open_existing(Path::new("/"))?
        .ok_or(RootfsError::Resolve {
            path: "/".into(),
            errno: Errno::ENOENT,
        })?;
    remount_keeping_locked(&top, Path::new("/"), MsFlags::MS_RDONLY)
}

/// MS_REMOUNT|MS_BIND with `flags` plus the flags the mount already has (which an
/// unprivileged user namespace could not clear anyway).
fn remount_keeping_locked(top: &OwnedFd, path: &Path, flags: MsFlags) -> Result<(), RootfsError> {
    let base = flags | MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
    let locked = sys::locked_flags(top, true).map_err(|errno| remount_err(path, base, errno))?;
    let flags = base | locked;
    mount_on(None, top.as_fd(), None, flags, None).map_err(|errno| remount_err(path, flags, errno))
}

/// Open `path` inside the root; `None` when it (or a parent) does not exist.
fn open_optional(root: &Root, path: &Path) -> Result<Option<OwnedFd>, RootfsError> {
    match root.open_existing(path) {
        Err(RootfsError::Resolve {
            errno: Errno::ENOTDIR,
            ..
        }) => Ok(None),
        other => other,
    }
}
