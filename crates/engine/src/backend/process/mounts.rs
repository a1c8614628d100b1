//! What a chroot needs, mounted in the host's mount namespace under the rootfs:
//! a fresh `/proc`, the host's `/dev` (recursive bind, as a slave), a read-only
//! sysfs, and the config's bind and tmpfs mounts. Destinations are resolved inside
//! the rootfs (berth-rootfs's `Root`: openat2 `RESOLVE_IN_ROOT`) and mounted
//! through `/proc/self/fd/N`, so a symlink in the image cannot point a mount at
//! the host. The rootfs mount is made private first so nothing propagates out.
//! [`crate::mounts::unmount_below`] takes them all off.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_rootfs::Root;
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::{Mount, Spec};

use super::ProcessError;

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn mount_err(dest: &Path) -> impl FnOnce(Errno) -> ProcessError + '_ {
    move |errno| ProcessError::Mount {
        dest: dest.to_owned(),
        errno,
    }
}

/// Mounts everything `spec` asks for that a plain process can use, under `rootfs`.
pub(super) fn mount_all(spec: &Spec, rootfs: &Path) -> Result<(), ProcessError> {
    // The engine mounted the rootfs; keep our mounts from propagating anywhere.
    match mount(
        None::<&str>,
        rootfs,
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    ) {
        Ok(()) | Err(Errno::EINVAL) => {} // EINVAL: not a mount point
        Err(e) => return Err(mount_err(rootfs)(e)),
    }
    let root = Root::open(rootfs)?;
    for m in spec.mounts().iter().flatten() {
        mount_one(&root, m)?;
    }
    let readonly = spec.root().as_ref().and_then(|r| r.readonly()) == Some(true);
    if readonly {
        let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
        mount(None::<&str>, rootfs, None::<&str>, flags, None::<&str>)
            .map_err(mount_err(rootfs))?;
    }
    Ok(())
}

fn mount_one(root: &Root, m: &Mount) -> Result<(), ProcessError> {
    let dest = m.destination().as_path();
    let options = m.options().clone().unwrap_or_default();
    let has = |o: &str| options.iter().any(|x| x == o);
    let typ = m.typ().as_deref().unwrap_or("");
    let is_bind = typ == "bind" || has("bind") || has("rbind");
    if dest == Path::new("/proc") {
        let target = root.mkdir_all(dest)?;
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        return mount(
            Some("proc"),
            &fd_path(&target),
            Some("proc"),
            flags,
            None::<&str>,
        )
        .map_err(mount_err(dest));
    }
    if dest == Path::new("/dev") {
        let target = root.mkdir_all(dest)?;
        return bind(root, Path::new("/dev"), &target, dest, true, false);
    }
    if dest == Path::new("/sys") {
        let target = root.mkdir_all(dest)?;
        let flags =
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
        return mount(
            Some("sysfs"),
            &fd_path(&target),
            Some("sysfs"),
            flags,
            None::<&str>,
        )
        .map_err(mount_err(dest));
    }
    if dest.starts_with("/dev") || dest.starts_with("/sys") {
        return Ok(()); // devpts, shm, mqueue, cgroup: the host's /dev and sysfs have them
    }
    if is_bind {
        let source = m.source().clone().unwrap_or_default();
        let target = if source.is_dir() {
            root.mkdir_all(dest)?
        } else {
            root.create_file(dest)?
        };
        return bind(root, &source, &target, dest, has("rbind"), has("ro"));
    }
    if typ == "tmpfs" {
        let data: Vec<&str> = options
            .iter()
            .map(String::as_str)
            .filter(|o| !matches!(*o, "nosuid" | "nodev" | "noexec" | "ro" | "rw"))
            .collect();
        let mut flags = MsFlags::empty();
        for (name, flag) in [
            ("nosuid", MsFlags::MS_NOSUID),
            ("nodev", MsFlags::MS_NODEV),
            ("noexec", MsFlags::MS_NOEXEC),
            ("ro", MsFlags::MS_RDONLY),
        ] {
            if has(name) {
                flags |= flag;
            }
        }
        let data = data.join(",");
        let target = root.mkdir_all(dest)?;
        return mount(
            Some("tmpfs"),
            &fd_path(&target),
            Some("tmpfs"),
            flags,
            Some(data.as_str()),
        )
        .map_err(mount_err(dest));
    }
    tracing::debug!(
        "process isolation: skipping the {typ} mount at {}",
        dest.display()
    );
    Ok(())
}

/// Binds `source` on `target` (the fd of `dest` in the rootfs); the new mount is a
/// slave (host events reach it, none leave it), read-only with `ro`.
fn bind(
    root: &Root,
    source: &Path,
    target: &OwnedFd,
    dest: &Path,
    recursive: bool,
    ro: bool,
) -> Result<(), ProcessError> {
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    let none = None::<&str>;
    mount(Some(source), &fd_path(target), none, flags, none).map_err(mount_err(dest))?;
    // Reopen: the old fd names the directory under the new mount.
    let mounted = root
        .open_existing(dest)?
        .ok_or_else(|| mount_err(dest)(Errno::ENOENT))?;
    let path = fd_path(&mounted);
    let slave = MsFlags::MS_REC | MsFlags::MS_SLAVE;
    mount(none, &path, none, slave, none).map_err(mount_err(dest))?;
    if ro {
        let ro = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
        mount(none, &path, none, ro, none).map_err(mount_err(dest))?;
    }
    Ok(())
}
