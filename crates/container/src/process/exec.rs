//! A process `exec`ed into a running container. Two roles, as for create:
//!
//! - the intermediate joins every namespace of the container's init (its user
//!   namespace first) and forks, so that the child is born in the container's pid and
//!   time namespaces; it reports the child's host pid and exits;
//! - the exec'd process takes the init's root directory, then runs the same last steps
//!   as the init ([`super::setup::finish`]) and execs at once (no FIFO: `exec` is
//!   create and start in one).
//!
//! Both are non-dumpable from their first instruction: while they are the runtime binary
//! inside the container's pid namespace, the container cannot open their /proc/PID/exe.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, RawFd};
use std::path::PathBuf;

use nix::sys::wait::waitpid;
use nix::unistd::{chroot, fchdir, setsid};
use oci_spec::runtime::{LinuxNamespaceType, Process};

use super::setup::{self, sys_err, Exec, InitError, Setup};
use crate::channel::{self, Channel, Message};
use crate::error::ContainerError;
use crate::{namespaces, sys};

/// What the exec'd process needs, prepared by the parent before forking.
pub struct ExecConfig<'a> {
    pub process: &'a Process,
    /// The init's namespaces, opened before the fork; the user namespace first.
    pub joins: &'a [(LinuxNamespaceType, PathBuf, File)],
    /// The init's root directory (/proc/PID/root).
    pub root: &'a File,
    pub console_socket: Option<RawFd>,
    pub preserve_fds: u32,
    /// The parent's locked state directory fd, closed in the children at once.
    pub lock_fd: RawFd,
    pub in_user_ns: bool,
    /// The container's `linux.seccomp`, compiled by the parent.
    pub seccomp: &'a std::cell::RefCell<Option<berth_seccomp::Filter>>,
}

/// Fork the intermediate, place it in the cgroup, and return the exec'd process's host
/// pid once it reports Ready (it then execs immediately).
pub fn spawn(
    cfg: &ExecConfig<'_>,
    clone_into: Option<std::os::fd::BorrowedFd<'_>>,
    place_in_cgroup: &dyn Fn(i32) -> Result<(), ContainerError>,
    forward_notify_fd: &dyn Fn(i32, i32) -> Result<(), ContainerError>,
) -> Result<i32, ContainerError> {
    let (ours, theirs) = channel::pair()?;
    // SAFETY: the runtime is single-threaded here, so the child may run arbitrary code.
    let child = match unsafe { sys::fork_maybe_into(clone_into) }
        .map_err(|e| ContainerError::sys("forking", e))?
    {
        sys::Forked::Child => {
            drop(ours);
            intermediate(theirs, cfg)
        }
        sys::Forked::Parent(child) => child,
    };
    drop(theirs);
    let placed = match clone_into {
        Some(_) => Ok(()),
        None => place_in_cgroup(child.as_raw()),
    };
    let result = placed.and_then(|()| drive(&ours, forward_notify_fd));
    if result.is_err() {
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    }
    let _ = waitpid(child, None);
    result
}

/// Proceed, then InitPid (the exec'd process speaks only after it), a seccomp notify
/// fd if any, and Ready.
fn drive(
    ch: &Channel,
    forward_notify_fd: &dyn Fn(i32, i32) -> Result<(), ContainerError>,
) -> Result<i32, ContainerError> {
    ch.send(&Message::Proceed)?;
    let (mut pid, mut ready) = (None, false);
    while pid.is_none() || !ready {
        match ch.recv()? {
            Message::InitPid(p) => pid = Some(p),
            Message::SeccompFd(fd) => {
                let p =
                    pid.ok_or_else(|| ContainerError::Exec("SeccompFd before InitPid".into()))?;
                super::parent::reply_notify_fd(ch, forward_notify_fd(p, fd))?;
            }
            Message::Ready => ready = true,
            Message::Error(text) => return Err(ContainerError::Exec(text)),
            other => {
                return Err(ContainerError::Exec(format!(
                    "protocol error: unexpected {other:?}"
                )))
            }
        }
    }
    Ok(pid.expect("loop ends with a pid"))
}

fn intermediate(ch: Channel, cfg: &ExecConfig<'_>) -> ! {
    let code = match join_and_fork(&ch, cfg) {
        Ok(()) => 0,
        Err(text) => {
            let _ = ch.send(&Message::Error(text));
            1
        }
    };
    sys::exit_now(code)
}

fn join_and_fork(ch: &Channel, cfg: &ExecConfig<'_>) -> Result<(), String> {
    // SAFETY: `lock_fd` is our copy of the parent's lock fd, never used here.
    unsafe { libc::close(cfg.lock_fd) };
    sys::set_dumpable(false).map_err(|e| format!("clearing dumpable: {e}"))?;
    ch.expect("Proceed").map_err(|e| e.to_string())??;
    for (kind, path, file) in cfg.joins {
        namespaces::join(*kind, path, file).map_err(|e| e.to_string())?;
    }
    super::fork_reported(ch, "exec process", || exec_process(ch, cfg))
}

fn exec_process(ch: &Channel, cfg: &ExecConfig<'_>) -> ! {
    let err = match prepare(ch, cfg) {
        Ok(exec) => setup::exec(&exec),
        Err(e) => e,
    };
    if ch.send(&Message::Error(err.to_string())).is_err() {
        let _ = writeln!(std::io::stderr(), "berth-runtime: {err}");
    }
    sys::exit_now(127)
}

fn prepare(ch: &Channel, cfg: &ExecConfig<'_>) -> Result<Exec, InitError> {
    // The container's root, whether it got there by pivot_root or chroot.
    fchdir(cfg.root.as_fd()).map_err(sys_err("entering the container's root"))?;
    chroot(".").map_err(sys_err("chroot into the container's root"))?;
    nix::unistd::chdir("/").map_err(sys_err("changing to /"))?;
    setsid().map_err(sys_err("starting a new session"))?;
    let exec = setup::finish(&Setup {
        process: cfg.process,
        seccomp: cfg.seccomp,
        channel: ch,
        console_socket: cfg.console_socket,
        preserve_fds: cfg.preserve_fds,
        setgroups_allowed: setup::setgroups_allowed(cfg.in_user_ns),
    })?;
    ch.send(&Message::Ready)?;
    Ok(exec)
}
