//! The runtime side of create: fork the intermediate and drive the channel until the
//! init reports Ready.

use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use super::{intermediate, InitConfig};
use crate::channel::{self, Channel, Message};
use crate::error::ContainerError;
use crate::hooks;
use crate::sys::{self, Forked};
use crate::userns;

/// What the parent needs besides the init's configuration.
pub struct ParentHooks<'a> {
    /// Runs the runtime-side create hooks given the init pid; returns the state JSON.
    pub run_create_hooks: &'a dyn Fn(i32) -> Result<String, ContainerError>,
    /// Places the intermediate process in the container's cgroup (when it was not
    /// cloned straight into it).
    pub place_in_cgroup: &'a dyn Fn(i32) -> Result<(), ContainerError>,
    /// The container's cgroup2 directory on a pure v2 host: the intermediate is cloned
    /// into it.
    pub clone_into: Option<std::os::fd::BorrowedFd<'a>>,
    /// Hands the init's seccomp notify fd (pid, fd number in its table) to the listener.
    pub forward_notify_fd: &'a dyn Fn(i32, i32) -> Result<(), ContainerError>,
}

/// Fork, drive the create dance, and return the init's host pid once it is Ready.
/// On error the caller kills whatever pid it learnt through `on_pid`.
pub fn spawn(
    cfg: &InitConfig<'_>,
    parent: &ParentHooks<'_>,
    on_pid: &mut dyn FnMut(i32),
) -> Result<i32, ContainerError> {
    let (ours, theirs) = channel::pair()?;
    // SAFETY: the runtime is single-threaded here, so the child may run arbitrary code.
    let child = match unsafe { sys::fork_maybe_into(parent.clone_into) }
        .map_err(|e| ContainerError::sys("forking", e))?
    {
        Forked::Child => {
            drop(ours);
            intermediate::run(theirs, cfg)
        }
        Forked::Parent(child) => child,
    };
    drop(theirs);
    let result = drive(&ours, cfg.spec, child, parent, on_pid);
    // The intermediate exits right after reporting the init pid (or on error).
    if result.is_err() {
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    }
    let _ = waitpid(child, None);
    result
}

fn drive(
    ch: &Channel,
    spec: &Spec,
    intermediate: Pid,
    parent: &ParentHooks<'_>,
    on_pid: &mut dyn FnMut(i32),
) -> Result<i32, ContainerError> {
    if parent.clone_into.is_none() {
        (parent.place_in_cgroup)(intermediate.as_raw())?;
    }
    ch.send(&Message::Proceed)?;
    let mut init_pid = None;
    loop {
        match ch.recv()? {
            Message::MapIds => {
                let reply = match userns::write_maps(intermediate.as_raw(), spec) {
                    Ok(()) => Message::IdsMapped,
                    Err(e) => Message::Error(e.to_string()),
                };
                ch.send(&reply)?;
            }
            Message::InitPid(pid) => {
                on_pid(pid);
                init_pid = Some(pid);
            }
            Message::RunCreateHooks => {
                let pid = init_pid.ok_or_else(|| protocol("RunCreateHooks before InitPid"))?;
                match (parent.run_create_hooks)(pid) {
                    Ok(state) => ch.send(&Message::HooksDone(state))?,
                    Err(e) => {
                        let _ = ch.send(&Message::Error(e.to_string()));
                        return Err(e);
                    }
                }
            }
            Message::SeccompFd(fd) => {
                let pid = init_pid.ok_or_else(|| protocol("SeccompFd before InitPid"))?;
                reply_notify_fd(ch, (parent.forward_notify_fd)(pid, fd))?;
            }
            Message::Ready => {
                return init_pid.ok_or_else(|| protocol("Ready before InitPid"));
            }
            Message::Error(text) => return Err(ContainerError::Init(text)),
            other => return Err(protocol(&format!("unexpected {other:?}"))),
        }
    }
}

fn protocol(what: &str) -> ContainerError {
    ContainerError::Init(format!("create protocol error: {what}"))
}

/// Run hooks from the runtime side, as the parent does for prestart and createRuntime.
pub fn run_runtime_hooks(spec: &Spec, state: &str) -> Result<(), hooks::HookError> {
    let Some(h) = spec.hooks() else {
        return Ok(());
    };
    #[allow(deprecated)]
    if let Some(list) = h.prestart() {
        hooks::run_all("prestart", list, state)?;
    }
    if let Some(list) = h.create_runtime() {
        hooks::run_all("createRuntime", list, state)?;
    }
    Ok(())
}

/// Tell the container process whether its notify fd reached the listener.
pub(crate) fn reply_notify_fd(
    ch: &Channel,
    result: Result<(), ContainerError>,
) -> Result<(), ContainerError> {
    match result {
        Ok(()) => Ok(ch.send(&Message::SeccompFdSent)?),
        Err(e) => {
            let _ = ch.send(&Message::Error(e.to_string()));
            Err(e)
        }
    }
}

/// Take fd number `fd` from process `pid` and send it to the seccomp agent listening
/// at `linux.seccomp.listenerPath`, with the container state.
pub(crate) fn forward_notify_fd(
    spec: &Spec,
    pid: i32,
    fd: i32,
    state_json: &str,
) -> Result<(), ContainerError> {
    let seccomp = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .ok_or_else(|| protocol("a seccomp notify fd without linux.seccomp"))?;
    let listener = seccomp
        .listener_path()
        .as_ref()
        .ok_or_else(|| protocol("a seccomp notify fd without a listenerPath"))?;
    let pidfd = crate::sys::pidfd_open(pid).map_err(|e| ContainerError::sys("opening pidfd", e))?;
    let notify = crate::sys::pidfd_getfd(&pidfd, fd)
        .map_err(|e| ContainerError::sys("taking the seccomp notify fd", e))?;
    berth_seccomp::send_notify_fd(
        listener,
        seccomp.listener_metadata().as_deref(),
        std::os::fd::AsFd::as_fd(&notify),
        state_json,
    )?;
    Ok(())
}
