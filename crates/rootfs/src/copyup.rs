//! "tmpcopyup": copy a directory tree (files, directories, symlinks, device nodes,
//! ownership and modes) from the shadowed directory into the new tmpfs, by file
//! descriptor, never following symlinks.

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::OwnedFd;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fchmodat, fstatat, mkdirat, mknodat, FchmodatFlags, FileStat, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, Gid, Uid};

/// Copy every entry of the directory `src` into the directory `dst`.
pub(crate) fn copy_tree(src: &OwnedFd, dst: &OwnedFd) -> nix::Result<()> {
    let dup = src.try_clone().map_err(|e| crate::mounts::io_errno(&e))?;
    let mut dir = Dir::from_fd(dup)?;
    for entry in dir.iter() {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        copy_entry(src, dst, name)?;
    }
    Ok(())
}

fn copy_entry(src: &OwnedFd, dst: &OwnedFd, name: &CStr) -> nix::Result<()> {
    let st = fstatat(src, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    match kind {
        SFlag::S_IFDIR => copy_dir(src, dst, name, mode)?,
        SFlag::S_IFREG => copy_file(src, dst, name, mode)?,
        SFlag::S_IFLNK => symlinkat(readlinkat(src, name)?.as_os_str(), dst, name)?,
        _ => mknodat(dst, name, kind, mode, st.st_rdev)?,
    }
    copy_owner_and_mode(dst, name, &st, kind, mode)
}

fn copy_dir(src: &OwnedFd, dst: &OwnedFd, name: &CStr, mode: Mode) -> nix::Result<()> {
    mkdirat(dst, name, mode)?;
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let from = openat(src, name, flags, Mode::empty())?;
    let to = openat(dst, name, flags, Mode::empty())?;
    copy_tree(&from, &to)
}

fn copy_file(src: &OwnedFd, dst: &OwnedFd, name: &CStr, mode: Mode) -> nix::Result<()> {
    let read = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let write =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut from = File::from(openat(src, name, read, Mode::empty())?);
    let mut to = File::from(openat(dst, name, write, mode)?);
    std::io::copy(&mut from, &mut to).map_err(|e| crate::mounts::io_errno(&e))?;
    Ok(())
}

fn copy_owner_and_mode(
    dst: &OwnedFd,
    name: &CStr,
    st: &FileStat,
    kind: SFlag,
    mode: Mode,
) -> nix::Result<()> {
    let (uid, gid) = (Uid::from_raw(st.st_uid), Gid::from_raw(st.st_gid));
    match fchownat(
        dst,
        name,
        Some(uid),
        Some(gid),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        // Unmapped owner inside a user namespace: keep ours.
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::EPERM) => {}
        Err(errno) => return Err(errno),
    }
    if kind == SFlag::S_IFLNK {
        return Ok(());
    }
    fchmodat(dst, name, mode, FchmodatFlags::FollowSymlink)
}
