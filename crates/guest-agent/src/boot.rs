//! Bringing the guest up and down: mounts, kernel modules, the root disk, power off.

use std::ffi::CString;
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_guest_agent::protocol::{GuestFile, GuestMount, MODULE_LIST, SHARE_MODULE_LIST};
use nix::mount::{mount, MsFlags};

use crate::error::AgentError;

/// Where the root disk is mounted before the command is chrooted into it.
pub const NEW_ROOT: &str = "/newroot";
/// The root disk (the first virtio-blk device).
const ROOT_DISK: &str = "/dev/vda";

fn sys<T>(what: impl Into<String>, r: nix::Result<T>) -> Result<T, AgentError> {
    r.map_err(|source| AgentError::Sys {
        what: what.into(),
        source,
    })
}

fn mount_fs(fstype: &str, target: &str, flags: MsFlags) -> Result<(), AgentError> {
    let _ = std::fs::create_dir_all(target);
    sys(
        format!("mounting {fstype} at {target}"),
        mount(Some(fstype), target, Some(fstype), flags, None::<&str>),
    )
}

/// Mounts /proc, /sys, /dev (devtmpfs) and /dev/pts (for `-t`) in the initramfs.
pub fn early_mounts() -> Result<(), AgentError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    mount_fs("proc", "/proc", flags)?;
    mount_fs("sysfs", "/sys", flags)?;
    mount_fs("devtmpfs", "/dev", MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC)?;
    let _ = std::fs::create_dir_all("/dev/pts");
    sys(
        "mounting devpts at /dev/pts",
        mount(
            Some("devpts"),
            "/dev/pts",
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("mode=0620,ptmxmode=0666"),
        ),
    )
}

/// Loads the modules listed in [`MODULE_LIST`], in order (dependencies first).
pub fn load_modules() -> Result<(), AgentError> {
    load_module_list(MODULE_LIST)
}

/// Loads the modules listed in `list_path`, in order.
pub(crate) fn load_module_list(list_path: &str) -> Result<(), AgentError> {
    let list = std::fs::read_to_string(list_path).map_err(|source| AgentError::Io {
        what: format!("reading {list_path}"),
        source,
    })?;
    for path in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let file = File::open(path).map_err(|source| AgentError::Io {
            what: format!("opening module {path}"),
            source,
        })?;
        let params = CString::default();
        match nix::kmod::finit_module(&file, &params, nix::kmod::ModuleInitFlags::empty()) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(source) => {
                return Err(AgentError::Sys {
                    what: format!("loading module {path}"),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Polls until `path` exists (devices appear asynchronously after their module loads).
pub fn wait_for(path: &Path, what: &str) -> Result<(), AgentError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        if Instant::now() > deadline {
            return Err(AgentError::Timeout(what.to_owned()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Mounts the root disk at [`NEW_ROOT`] (ext4 read-write — the host gives each VM its
/// own copy-on-write overlay — or erofs read-only), with /proc, /sys, /dev and /dev/pts inside.
pub fn mount_root() -> Result<(), AgentError> {
    wait_for(Path::new(ROOT_DISK), ROOT_DISK)?;
    let _ = std::fs::create_dir_all(NEW_ROOT);
    let ext4 = mount(
        Some(ROOT_DISK),
        NEW_ROOT,
        Some("ext4"),
        MsFlags::empty(),
        None::<&str>,
    );
    if let Err(e) = ext4 {
        let erofs = mount(
            Some(ROOT_DISK),
            NEW_ROOT,
            Some("erofs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        );
        sys(format!("mounting {ROOT_DISK} (ext4: {e}; erofs)"), erofs)?;
    }
    // mount_fs makes the directories the image lacks (on the VM's own overlay).
    for (fstype, dir) in [("proc", "proc"), ("sysfs", "sys"), ("devtmpfs", "dev")] {
        mount_fs(fstype, &format!("{NEW_ROOT}/{dir}"), MsFlags::MS_NOSUID)?;
    }
    // The agent's ptys (the devtmpfs is the same one: dev/pts is there already).
    let pts = format!("{NEW_ROOT}/dev/pts");
    sys(
        format!("mounting /dev/pts at {pts}"),
        mount(
            Some("/dev/pts"),
            pts.as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ),
    )
}

/// Mounts the request's shares and tmpfs in the root disk. A destination is a path
/// in the guest's own disk (the guest kernel is the boundary; nothing here reaches
/// the host), made if missing.
pub fn mount_extra(mounts: &[GuestMount]) -> Result<(), AgentError> {
    if mounts.iter().any(|m| matches!(m, GuestMount::Share { .. })) {
        load_module_list(SHARE_MODULE_LIST)?;
    }
    for m in mounts {
        let (source, fstype, destination, flags, data) = match m {
            GuestMount::Share {
                tag,
                destination,
                readonly,
            } => (
                tag.as_str(),
                "9p",
                destination,
                if *readonly {
                    MsFlags::MS_RDONLY
                } else {
                    MsFlags::empty()
                },
                "trans=virtio,version=9p2000.L,msize=262144",
            ),
            GuestMount::Tmpfs { destination } => (
                "tmpfs",
                "tmpfs",
                destination,
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                "mode=1777",
            ),
        };
        let target = format!("{NEW_ROOT}/{}", destination.trim_start_matches('/'));
        std::fs::create_dir_all(&target).map_err(|source| AgentError::Io {
            what: format!("making {destination}"),
            source,
        })?;
        sys(
            format!("mounting {fstype} {source} at {destination}"),
            mount(
                Some(source),
                target.as_str(),
                Some(fstype),
                flags,
                Some(data),
            ),
        )?;
    }
    Ok(())
}

/// Writes the request's files into the root disk. What is there is removed first: a
/// symlink (`/etc/resolv.conf` often is one) would be followed outside the disk.
pub fn write_files(files: &[GuestFile]) -> Result<(), AgentError> {
    for f in files {
        let path = Path::new(NEW_ROOT).join(f.path.trim_start_matches('/'));
        let io = |source| AgentError::Io {
            what: format!("writing {}", f.path),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, &f.contents).map_err(io)?;
    }
    Ok(())
}

/// Remounts the root disk read-only (`--read-only`); what is mounted on it stays as
/// it is.
pub fn root_readonly() -> Result<(), AgentError> {
    sys(
        "remounting the root read-only",
        mount(
            None::<&str>,
            NEW_ROOT,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        ),
    )
}

/// Syncs and powers the guest off; QEMU then exits. Never returns.
pub fn power_off() -> ! {
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    // QEMU runs with -no-reboot: a restart ends it too.
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
    // Exiting PID 1 panics the kernel, and panic=-1 with -no-reboot ends QEMU.
    std::process::exit(1)
}
