//! Device nodes inside the rootfs: the spec's default devices, `linux.devices`, and the
//! /dev symlinks. Nodes are mknod'ed in their safely resolved parent directory, or, in a
//! user namespace, bind-mounted from the host over an empty file.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::mount::MsFlags;
use nix::sys::stat::{fchmodat, makedev, mknodat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Spec};

use crate::error::RootfsError;
use crate::resolve::{clean, Root};
use crate::sys::{fd_path, mount_on};

/// One device node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Device {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// The runtime spec's default devices (config-linux.md "Default Devices").
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Every device to create: `linux.devices`, then the defaults they do not override.
pub(crate) fn wanted(spec: &Spec) -> Result<Vec<Device>, RootfsError> {
    let listed = spec.linux().as_ref().and_then(|l| l.devices().as_ref());
    let mut devices = listed
        .into_iter()
        .flatten()
        .map(from_spec)
        .collect::<Result<Vec<_>, _>>()?;
    for (path, major, minor) in DEFAULT_DEVICES {
        if !devices
            .iter()
            .any(|d| clean(&d.path) == clean(Path::new(path)))
        {
            devices.push(default_device(path, major, minor));
        }
    }
    Ok(devices)
}

fn default_device(path: &str, major: u64, minor: u64) -> Device {
    Device {
        path: path.into(),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: None,
        gid: None,
    }
}

fn from_spec(dev: &LinuxDevice) -> Result<Device, RootfsError> {
    let kind = match dev.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(RootfsError::InvalidSpec {
                field: format!("device {}", dev.path().display()),
                reason: "type \"a\" is not a device node type".into(),
            })
        }
    };
    let number = |n: i64, what: &str| {
        u64::try_from(n).map_err(|_| RootfsError::InvalidSpec {
            field: format!("device {}", dev.path().display()),
            reason: format!("negative {what} number {n}"),
        })
    };
    Ok(Device {
        path: dev.path().clone(),
        kind,
        major: number(dev.major(), "major")?,
        minor: number(dev.minor(), "minor")?,
        mode: dev.file_mode().map_or(0o666, |m| m & 0o7777),
        uid: dev.uid(),
        gid: dev.gid(),
    })
}

/// Create `device` inside the rootfs.
pub(crate) fn create(root: &Root, device: &Device, in_user_ns: bool) -> Result<(), RootfsError> {
    if in_user_ns {
        bind_from_host(root, device)
    } else {
        mknod(root, device)
    }
}

/// A user namespace cannot mknod: bind the host's node over an empty file.
fn bind_from_host(root: &Root, device: &Device) -> Result<(), RootfsError> {
    let target = root.create_file(&device.path)?;
    let host = Path::new("/").join(clean(&device.path).iter().collect::<PathBuf>());
    mount_on(Some(&host), target.as_fd(), None, MsFlags::MS_BIND, None).map_err(|errno| {
        RootfsError::mount(format!("bind of {}", host.display()), &device.path, errno)
    })
}

fn mknod(root: &Root, device: &Device) -> Result<(), RootfsError> {
    let create_err = |errno| RootfsError::Create {
        path: device.path.clone(),
        errno,
    };
    let (parent, name) = root.parent_of(&device.path)?;
    let dev = makedev(device.major, device.minor);
    match mknodat(&parent, name.as_os_str(), device.kind, Mode::empty(), dev) {
        Err(Errno::EEXIST) => {
            unlinkat(&parent, name.as_os_str(), UnlinkatFlags::NoRemoveDir).map_err(create_err)?;
            mknodat(&parent, name.as_os_str(), device.kind, Mode::empty(), dev)
                .map_err(create_err)?;
        }
        other => other.map_err(create_err)?,
    }
    let node = open_node(&parent, &name).map_err(create_err)?;
    set_mode_and_owner(&node, device).map_err(create_err)
}

fn open_node(parent: &OwnedFd, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(
        parent,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// chmod (not subject to the umask, unlike mknod) and chown of the new node.
fn set_mode_and_owner(node: &OwnedFd, device: &Device) -> nix::Result<()> {
    let mode = Mode::from_bits_truncate(device.mode);
    fchmodat(
        nix::fcntl::AT_FDCWD,
        &fd_path(node.as_fd()),
        mode,
        FchmodatFlags::FollowSymlink,
    )?;
    if device.uid.is_none() && device.gid.is_none() {
        return Ok(());
    }
    let (uid, gid) = (device.uid.map(Uid::from_raw), device.gid.map(Gid::from_raw));
    fchownat(node, "", uid, gid, AtFlags::AT_EMPTY_PATH)
}

/// True when the spec bind-mounts the host's /dev (then no devices are created).
pub(crate) fn dev_is_host_bind(spec: &Spec) -> bool {
    spec.mounts().iter().flatten().any(|m| {
        let options = m.options().as_deref().unwrap_or(&[]);
        let bind = m.typ().as_deref() == Some("bind")
            || options.iter().any(|o| o == "bind" || o == "rbind");
        bind && clean(m.destination()) == clean(Path::new("/dev"))
    })
}

/// /dev/fd, /dev/std{in,out,err}, /dev/core and (with a devpts at /dev/pts) /dev/ptmx.
pub(crate) fn symlinks(root: &Root, spec: &Spec) -> Result<(), RootfsError> {
    let mut links = vec![
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "/dev/core"));
    }
    for (target, link) in links {
        symlink_in(root, Path::new(link), Path::new(target))?;
    }
    if has_devpts(spec) {
        replace_with_symlink(root, Path::new("/dev/ptmx"), Path::new("pts/ptmx"))?;
    }
    Ok(())
}

fn has_devpts(spec: &Spec) -> bool {
    spec.mounts().iter().flatten().any(|m| {
        m.typ().as_deref() == Some("devpts")
            && clean(m.destination()) == clean(Path::new("/dev/pts"))
    })
}

/// Create the symlink `link` -> `target` inside the rootfs; an existing entry is kept.
pub(crate) fn symlink_in(root: &Root, link: &Path, target: &Path) -> Result<(), RootfsError> {
    let (parent, name) = root.parent_of(link)?;
    match symlinkat(target, &parent, name.as_os_str()) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(errno) => Err(symlink_err(link, target, errno)),
    }
}

fn replace_with_symlink(root: &Root, link: &Path, target: &Path) -> Result<(), RootfsError> {
    let (parent, name) = root.parent_of(link)?;
    match unlinkat(&parent, name.as_os_str(), UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(errno) => return Err(symlink_err(link, target, errno)),
    }
    symlinkat(target, &parent, name.as_os_str()).map_err(|errno| symlink_err(link, target, errno))
}

fn symlink_err(link: &Path, target: &Path, errno: Errno) -> RootfsError {
    RootfsError::Symlink {
        link: link.to_owned(),
        target: target.to_owned(),
        errno,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).expect("spec json")
    }

    #[test]
    fn defaults_are_added_unless_overridden() {
        let s = spec(
            r#"{"ociVersion":"1.2.0","linux":{"devices":[
            {"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":384,"uid":5,"gid":6},
            {"path":"/dev/sda","type":"b","major":8,"minor":0},
            {"path":"/dev/fifo","type":"p"}]}}"#,
        );
        let devices = wanted(&s).unwrap();
        assert_eq!(devices.len(), 3 + 5);
        assert_eq!(devices[0].mode, 0o600);
        assert_eq!((devices[0].uid, devices[0].gid), (Some(5), Some(6)));
        assert_eq!(devices[1].kind, SFlag::S_IFBLK);
        assert_eq!(devices[2].kind, SFlag::S_IFIFO);
        assert_eq!(
            devices
                .iter()
                .filter(|d| d.path == Path::new("/dev/null"))
                .count(),
            1
        );
        assert!(devices
            .iter()
            .any(|d| d.path == Path::new("/dev/tty") && d.major == 5));
    }

    #[test]
    fn type_a_and_negative_numbers_are_rejected() {
        let s =
            spec(r#"{"ociVersion":"1.2.0","linux":{"devices":[{"path":"/dev/x","type":"a"}]}}"#);
        assert!(matches!(wanted(&s), Err(RootfsError::InvalidSpec { .. })));
        let s = spec(
            r#"{"ociVersion":"1.2.0","linux":{"devices":[{"path":"/dev/x","type":"c","major":-1}]}}"#,
        );
        assert!(wanted(&s)
            .unwrap_err()
            .to_string()
            .contains("negative major number -1"));
    }

    #[test]
    fn host_dev_bind_is_detected() {
        let bind = spec(
            r#"{"ociVersion":"1.2.0","mounts":[{"destination":"/dev/","source":"/dev","options":["rbind"]}]}"#,
        );
        assert!(dev_is_host_bind(&bind));
        let tmpfs = spec(
            r#"{"ociVersion":"1.2.0","mounts":[{"destination":"/dev","type":"tmpfs","source":"tmpfs"}]}"#,
        );
        assert!(!dev_is_host_bind(&tmpfs));
    }
}
