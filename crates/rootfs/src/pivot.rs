//! Switching the root: runc's pivot_root(".", ".") trick, or MS_MOVE + chroot.

use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, chroot, fchdir, pivot_root};

use crate::error::RootfsError;

/// pivot_root into `rootfs` and detach the old root, without a temporary directory:
/// after pivot_root(".", ".") the old root is mounted on top of the new one.
pub(crate) fn pivot_root_into(rootfs: &Path) -> Result<(), RootfsError> {
    let step_err = |step| {
        move |errno| RootfsError::Pivot {
            rootfs: rootfs.to_owned(),
            step,
            errno,
        }
    };
    let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let old =
        nix::fcntl::open("/", flags, Mode::empty()).map_err(step_err("opening the old root"))?;
    let new =
        nix::fcntl::open(rootfs, flags, Mode::empty()).map_err(step_err("opening the new root"))?;
    fchdir(&new).map_err(step_err("entering the new root"))?;
    pivot_root(".", ".").map_err(step_err("pivot_root"))?;
    fchdir(&old).map_err(step_err("entering the old root"))?;
    // The old root may still be shared with the host: make it a slave first so the
    // unmount below does not propagate there.
    nix::mount::mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(step_err("making the old root rslave"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(step_err("detaching the old root"))?;
    chdir("/").map_err(step_err("entering /"))
}

/// runc's --no-pivot: move the rootfs mount onto `/` and chroot into it.
pub(crate) fn move_root_into(rootfs: &Path) -> Result<(), RootfsError> {
    let step_err = |step| {
        move |errno: Errno| RootfsError::Pivot {
            rootfs: rootfs.to_owned(),
            step,
            errno,
        }
    };
    chdir(rootfs).map_err(step_err("entering the new root"))?;
    nix::mount::mount(
        Some(rootfs),
        "/",
        None::<&str>,
        MsFlags::MS_MOVE,
        None::<&str>,
    )
    .map_err(step_err("moving the rootfs onto /"))?;
    chroot(".").map_err(step_err("chroot"))?;
    chdir("/").map_err(step_err("entering /"))
}
