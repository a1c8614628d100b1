//! The `mounts` entries of the spec: bind mounts, filesystems, tmpfs with copy-up.
//! Every destination is resolved (and created) inside the rootfs by [`Root`], and the
//! mount is made on the resolved file descriptor.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::Mount;

use crate::cgroup::CgroupSource;
use crate::error::RootfsError;
use crate::options::{flag_names, MountOptions};
use crate::resolve::Root;
use crate::sys::{self, fd_path, mount_on};
use crate::{copyup, RootfsOptions};

/// Performs mounts inside one rootfs.
pub(crate) struct Mounter<'a> {
    pub root: &'a Root,
    pub opts: &'a RootfsOptions<'a>,
}

impl Mounter<'_> {
    /// Perform one `mounts` entry of the spec.
    pub fn entry(&self, mount: &Mount, cgroup: CgroupSource<'_>) -> Result<(), RootfsError> {
        let dest = mount.destination();
        let typ = mount.typ().as_deref().unwrap_or("");
        let mut options = MountOptions::parse(mount.options().as_deref().unwrap_or(&[]));
        if typ == "bind" && !options.is_bind() {
            options.flags |= MsFlags::MS_BIND;
        }
        reject_idmap(mount, &options)?;
        if typ == "cgroup" {
            return crate::cgroup::mount(self, dest, &options, cgroup);
        }
        if options.is_bind() {
            let source = self.bind_source(mount)?;
            return self.bind(&source, dest, &options);
        }
        let source = mount.source().as_deref().map(Path::to_owned);
        let source = source.unwrap_or_else(|| PathBuf::from(typ));
        if typ == "tmpfs" && options.tmpcopyup {
            return self.tmpfs_copyup(&source, dest, &options);
        }
        self.filesystem(typ, &source, dest, &options)
    }

    /// Bind-mount the host path `source` at `dest`, then apply flags and propagation.
    pub fn bind(
        &self,
        source: &Path,
        dest: &Path,
        options: &MountOptions,
    ) -> Result<(), RootfsError> {
        let is_dir = std::fs::metadata(source)
            .map_err(|e| RootfsError::Resolve {
                path: source.to_owned(),
                errno: io_errno(&e),
            })?
            .is_dir();
        let target = if is_dir {
            self.root.mkdir_all(dest)?
        } else {
            self.root.create_file(dest)?
        };
        let flags = options.flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
        mount_on(Some(source), target.as_fd(), None, flags, None).map_err(|errno| {
            RootfsError::mount(format!("bind of {}", source.display()), dest, errno)
        })?;
        let top = self.reopen(dest)?;
        if options.needs_bind_remount() {
            remount_bind(&top, dest, options)?;
        }
        self.finish(&top, dest, options)
    }

    /// Mount a filesystem of type `fstype` (proc, sysfs, tmpfs, devpts, ...) at `dest`.
    pub fn filesystem(
        &self,
        fstype: &str,
        source: &Path,
        dest: &Path,
        options: &MountOptions,
    ) -> Result<(), RootfsError> {
        let target = self.root.mkdir_all(dest)?;
        let fstype_arg = (!fstype.is_empty()).then_some(fstype);
        let data = options.data();
        mount_on(
            Some(source),
            target.as_fd(),
            fstype_arg,
            options.flags,
            data.as_deref(),
        )
        .map_err(|errno| RootfsError::mount(fstype, dest, errno))?;
        let top = self.reopen(dest)?;
        self.finish(&top, dest, options)
    }

    /// A tmpfs that starts with a copy of what the rootfs had at `dest`.
    fn tmpfs_copyup(
        &self,
        source: &Path,
        dest: &Path,
        options: &MountOptions,
    ) -> Result<(), RootfsError> {
        let target = self.root.mkdir_all(dest)?;
        let lower = open_dir(&target).map_err(|errno| RootfsError::CopyUp {
            path: dest.to_owned(),
            errno,
        })?;
        let mut writable = options.clone();
        writable.flags -= MsFlags::MS_RDONLY;
        let data = options.data();
        mount_on(
            Some(source),
            target.as_fd(),
            Some("tmpfs"),
            writable.flags,
            data.as_deref(),
        )
        .map_err(|errno| RootfsError::mount("tmpfs", dest, errno))?;
        let top = self.reopen(dest)?;
        let upper = open_dir(&top).map_err(|errno| RootfsError::CopyUp {
            path: dest.to_owned(),
            errno,
        })?;
        copyup::copy_tree(&lower, &upper).map_err(|errno| RootfsError::CopyUp {
            path: dest.to_owned(),
            errno,
        })?;
        if options.flags.contains(MsFlags::MS_RDONLY) {
            let flags = options.flags | MsFlags::MS_REMOUNT;
            mount_on(None, top.as_fd(), None, flags, data.as_deref())
                .map_err(|errno| remount_err(dest, flags, errno))?;
        }
        self.finish(&top, dest, options)
    }

    /// Open `dest` again after a mount, to get the root of the new mount.
    pub fn reopen(&self, dest: &Path) -> Result<OwnedFd, RootfsError> {
        self.root
            .open_existing(dest)?
            .ok_or_else(|| RootfsError::Resolve {
                path: dest.to_owned(),
                errno: Errno::ENOENT,
            })
    }

    /// Propagation changes and recursive attributes, after the mount itself.
    pub fn finish(
        &self,
        top: &OwnedFd,
        dest: &Path,
        options: &MountOptions,
    ) -> Result<(), RootfsError> {
        for &propagation in &options.propagation {
            sys::set_propagation(top.as_fd(), propagation).map_err(|errno| {
                RootfsError::Propagation {
                    propagation: propagation_name(propagation),
                    dest: dest.to_owned(),
                    errno,
                }
            })?;
        }
        if !options.rec_attr.is_empty() {
            sys::mount_setattr_recursive(top.as_fd(), options.rec_attr).map_err(|errno| {
                RootfsError::MountAttr {
                    dest: dest.to_owned(),
                    errno,
                }
            })?;
        }
        Ok(())
    }

    /// A bind source: relative paths are relative to the bundle directory.
    fn bind_source(&self, mount: &Mount) -> Result<PathBuf, RootfsError> {
        let source = mount
            .source()
            .as_deref()
            .ok_or_else(|| RootfsError::InvalidSpec {
                field: format!("mount {}", mount.destination().display()),
                reason: "bind mount without a source".into(),
            })?;
        Ok(self.opts.bundle.join(source))
    }
}

/// Apply the flags of a bind mount with MS_REMOUNT|MS_BIND. When the kernel refuses
/// (EPERM: flags locked by a more privileged mount namespace), keep the locked flags.
pub(crate) fn remount_bind(
    top: &OwnedFd,
    dest: &Path,
    options: &MountOptions,
) -> Result<(), RootfsError> {
    let flags = options.flags | MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
    match mount_on(None, top.as_fd(), None, flags, None) {
        Err(Errno::EPERM) => {}
        other => return other.map_err(|errno| remount_err(dest, flags, errno)),
    }
    let atime_given = !((options.flags | options.cleared) & sys::atime_flags()).is_empty();
    let locked =
        sys::locked_flags(top, !atime_given).map_err(|errno| remount_err(dest, flags, errno))?;
    let flags = flags | locked;
    mount_on(None, top.as_fd(), None, flags, None).map_err(|errno| remount_err(dest, flags, errno))
}

pub(crate) fn remount_err(dest: &Path, flags: MsFlags, errno: Errno) -> RootfsError {
    RootfsError::Remount {
        dest: dest.to_owned(),
        flags: flag_names(flags),
        errno,
    }
}

fn reject_idmap(mount: &Mount, options: &MountOptions) -> Result<(), RootfsError> {
    let option = match (&options.idmap, mount.uid_mappings(), mount.gid_mappings()) {
        (Some(option), _, _) => option.clone(),
        (None, Some(_), _) | (None, _, Some(_)) => "uidMappings/gidMappings".to_owned(),
        (None, None, None) => return Ok(()),
    };
    Err(RootfsError::Unsupported {
        option,
        dest: mount.destination().to_owned(),
    })
}

pub(crate) fn propagation_name(flags: MsFlags) -> String {
    let rec = if flags.contains(MsFlags::MS_REC) {
        "r"
    } else {
        ""
    };
    let kind = if flags.contains(MsFlags::MS_SHARED) {
        "shared"
    } else if flags.contains(MsFlags::MS_SLAVE) {
        "slave"
    } else if flags.contains(MsFlags::MS_UNBINDABLE) {
        "unbindable"
    } else {
        "private"
    };
    format!("{rec}{kind}")
}

/// Open the directory an O_PATH descriptor refers to for reading.
fn open_dir(fd: &OwnedFd) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    nix::fcntl::open(&fd_path(fd.as_fd()), flags, Mode::empty())
}

pub(crate) fn io_errno(err: &std::io::Error) -> Errno {
    Errno::from_raw(err.raw_os_error().unwrap_or(libc::EIO))
}
