//! The intermediate process: enters and creates namespaces, forks the init.

use std::os::fd::RawFd;

use nix::unistd::{setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::LinuxNamespaceType;

use super::{init, InitConfig};
use crate::channel::{Channel, Message};
use crate::namespaces;
use crate::sys;

/// Body of the intermediate process; never returns.
pub fn run(ch: Channel, cfg: &InitConfig<'_>) -> ! {
    let code = match stage(&ch, cfg) {
        Ok(()) => 0,
        Err(text) => {
            let _ = ch.send(&Message::Error(text));
            1
        }
    };
    sys::exit_now(code)
}

fn close_fd(fd: RawFd) {
    // SAFETY: `fd` is the parent's lock fd, which this process owns a copy of and
    // never uses; closing our copy leaves the parent's lock in place.
    unsafe { libc::close(fd) };
}

fn stage(ch: &Channel, cfg: &InitConfig<'_>) -> Result<(), String> {
    close_fd(cfg.lock_fd);
    sys::set_dumpable(false).map_err(|e| format!("clearing dumpable: {e}"))?;
    ch.expect("Proceed").map_err(|e| e.to_string())??;
    for (kind, path, file) in cfg.joins {
        namespaces::join(*kind, path, file).map_err(|e| e.to_string())?;
        if *kind == LinuxNamespaceType::User {
            become_root()?;
        }
    }
    if cfg.namespaces.creates(LinuxNamespaceType::User) {
        namespaces::create(namespaces::flag(LinuxNamespaceType::User))
            .map_err(|e| e.to_string())?;
        ch.send(&Message::MapIds).map_err(|e| e.to_string())?;
        ch.expect("IdsMapped").map_err(|e| e.to_string())??;
        become_root()?;
    }
    namespaces::create(cfg.namespaces.unshare_flags()).map_err(|e| e.to_string())?;
    if cfg.namespaces.creates(LinuxNamespaceType::Time) {
        write_time_offsets(cfg)?;
    }
    super::fork_reported(ch, "container init", || init::run(ch, cfg))
}

/// In a new or joined user namespace, act as its root if root is mapped.
fn become_root() -> Result<(), String> {
    let root = Gid::from_raw(0);
    // Failing means root is not mapped: carry on as the mapped-to-nobody id.
    if setresgid(root, root, root).is_ok() {
        setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .map_err(|e| format!("becoming root in the user namespace: {e}"))?;
    }
    Ok(())
}

fn write_time_offsets(cfg: &InitConfig<'_>) -> Result<(), String> {
    let Some(offsets) = cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().clone())
    else {
        return Ok(());
    };
    let mut text = String::new();
    for (clock, off) in &offsets {
        let clock = match clock.as_str() {
            "monotonic" | "boottime" => clock.as_str(),
            other => return Err(format!("linux.timeOffsets: unknown clock {other:?}")),
        };
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    std::fs::write("/proc/self/timens_offsets", &text)
        .map_err(|e| format!("writing time namespace offsets {text:?}: {e}"))
}
