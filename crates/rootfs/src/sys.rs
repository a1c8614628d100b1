//! Thin wrappers over the syscalls nix does not cover (mount_setattr) and over mount(2)
//! on an O_PATH file descriptor through its /proc/self/fd magic link.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::statvfs::{statvfs, FsFlags};

use crate::options::RecAttr;

/// The /proc/self/fd path of `fd`: mount(2) follows it to the file `fd` refers to.
pub(crate) fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// mount(2) onto the file `target` refers to.
pub(crate) fn mount_on(
    source: Option<&Path>,
    target: BorrowedFd<'_>,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> nix::Result<()> {
    nix::mount::mount(source, &fd_path(target), fstype, flags, data)
}

/// Change the propagation type of the mount whose root `target` is.
pub(crate) fn set_propagation(target: BorrowedFd<'_>, flags: MsFlags) -> nix::Result<()> {
    mount_on(None, target, None, flags, None)
}

/// mount_setattr(2) with AT_RECURSIVE on the mount whose root `target` is.
pub(crate) fn mount_setattr_recursive(target: BorrowedFd<'_>, attr: RecAttr) -> nix::Result<()> {
    let mut raw = libc::mount_attr {
        attr_set: attr.set,
        attr_clr: attr.clr,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH | libc::AT_RECURSIVE;
    // SAFETY: the path is a valid NUL-terminated string, `raw` is a live mount_attr
    // whose size is passed alongside; the kernel only reads it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            target.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &mut raw as *mut libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// The flags of the mount `fd` is on that an unprivileged remount must keep (the
/// kernel locks nosuid/nodev/noexec/atime of mounts inherited from a more privileged
/// mount namespace). With `keep_atime` false the access-time flags are left out.
pub(crate) fn locked_flags(fd: impl AsFd, keep_atime: bool) -> nix::Result<MsFlags> {
    let st = statvfs(&fd_path(fd.as_fd()))?;
    let mut pairs = vec![
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ];
    if keep_atime {
        pairs.push((FsFlags::ST_NOATIME, MsFlags::MS_NOATIME));
        pairs.push((FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME));
        pairs.push((FsFlags::ST_RELATIME, MsFlags::MS_RELATIME));
    }
    let flags = st.flags();
    Ok(pairs
        .into_iter()
        .filter(|(st_flag, _)| flags.contains(*st_flag))
        .fold(MsFlags::empty(), |acc, (_, ms)| acc | ms))
}

/// The access-time flags of mount(2).
pub(crate) fn atime_flags() -> MsFlags {
    MsFlags::MS_NOATIME | MsFlags::MS_NODIRATIME | MsFlags::MS_RELATIME | MsFlags::MS_STRICTATIME
}
