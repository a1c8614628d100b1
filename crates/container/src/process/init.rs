//! The container's init: builds the container around itself, then waits for `start`
//! on the exec FIFO and execs the user's program.

use std::io::Write;
use std::path::PathBuf;

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{sethostname, setsid};
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

pub use super::setup::InitError;
use super::setup::{self, io_err, sys_err, Exec, Setup};
use super::InitConfig;
use crate::channel::{Channel, Message};
use crate::creds;
use crate::hooks;
use crate::state::EXEC_FIFO;
use crate::sys;

/// Body of the init process; never returns.
pub fn run(ch: &Channel, cfg: &InitConfig<'_>) -> ! {
    let err = match prepare(ch, cfg) {
        Ok((exec, state)) => exec_when_started(cfg, exec, state),
        Err(e) => e,
    };
    // Before Ready the parent is listening; after it, only stderr is left.
    if ch.send(&Message::Error(err.to_string())).is_err() {
        let _ = writeln!(std::io::stderr(), "berth-runtime: {err}");
    }
    sys::exit_now(127)
}

fn process(spec: &Spec) -> &Process {
    spec.process()
        .as_ref()
        .expect("validated: spec has a process")
}

/// Everything up to Ready: after this returns, the parent has been told.
fn prepare(ch: &Channel, cfg: &InitConfig<'_>) -> Result<(Exec, Option<String>), InitError> {
    let spec = cfg.spec;
    setsid().map_err(sys_err("starting a new session"))?;
    set_names(cfg)?;
    let opts = berth_rootfs::RootfsOptions {
        rootfs: cfg.rootfs,
        bundle: cfg.bundle,
        no_pivot: cfg.no_pivot,
        in_user_ns: cfg.namespaces.has(LinuxNamespaceType::User),
        in_cgroup_ns: cfg.namespaces.has(LinuxNamespaceType::Cgroup),
    };
    let cgroup = if wants_cgroup_mount(spec) {
        berth_cgroups::manager(cfg.cgroup_path).ok()
    } else {
        None
    };
    berth_rootfs::prepare(spec, &opts, cgroup.as_deref())?;
    let state_json = create_hooks(ch, spec)?;
    berth_rootfs::pivot(&opts)?;
    write_sysctls(spec)?;
    berth_rootfs::finalize(spec)?;
    let proc = process(spec);
    if let Some(adj) = proc.oom_score_adj() {
        creds::set_oom_score_adj(adj)?;
    }
    let exec = setup::finish(&Setup {
        process: proc,
        seccomp: cfg.seccomp,
        channel: ch,
        console_socket: cfg.console_socket,
        preserve_fds: cfg.preserve_fds,
        setgroups_allowed: setup::setgroups_allowed(cfg.namespaces.has(LinuxNamespaceType::User)),
    })?;
    ch.send(&Message::Ready)?;
    Ok((exec, state_json))
}

fn wants_cgroup_mount(spec: &Spec) -> bool {
    spec.mounts()
        .iter()
        .flatten()
        .any(|m| matches!(m.typ().as_deref(), Some("cgroup") | Some("cgroup2")))
}

fn set_names(cfg: &InitConfig<'_>) -> Result<(), InitError> {
    let spec = cfg.spec;
    let uts = cfg.namespaces.has(LinuxNamespaceType::Uts);
    for (field, value) in [
        ("hostname", spec.hostname()),
        ("domainname", spec.domainname()),
    ] {
        let Some(name) = value.as_deref() else {
            continue;
        };
        if !uts {
            return Err(InitError::Config(format!(
                "{field} {name:?} needs a new uts namespace"
            )));
        }
        if field == "hostname" {
            sethostname(name).map_err(sys_err(format!("setting hostname {name:?}")))?;
        } else {
            sys::set_domainname(name).map_err(sys_err(format!("setting domainname {name:?}")))?;
        }
    }
    Ok(())
}

/// Ask the parent to run prestart/createRuntime hooks, then run createContainer here,
/// in the container's namespaces before pivot_root. Returns the state JSON for hooks.
fn create_hooks(ch: &Channel, spec: &Spec) -> Result<Option<String>, InitError> {
    let Some(hooks) = spec.hooks() else {
        return Ok(None);
    };
    let any = |h: &Option<Vec<_>>| h.as_ref().is_some_and(|v: &Vec<_>| !v.is_empty());
    #[allow(deprecated)]
    let runtime_side = any(hooks.prestart()) || any(hooks.create_runtime());
    if !runtime_side && !any(hooks.create_container()) && !any(hooks.start_container()) {
        return Ok(None);
    }
    ch.send(&Message::RunCreateHooks)?;
    let state = match ch.expect("HooksDone")? {
        Ok(Message::HooksDone(state)) => state,
        Ok(_) => unreachable!("expect checks the kind"),
        Err(text) => return Err(InitError::Parent(text)),
    };
    if let Some(list) = hooks.create_container() {
        hooks::run_all("createContainer", list, &state)?;
    }
    Ok(Some(state))
}

fn write_sysctls(spec: &Spec) -> Result<(), InitError> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    for (key, value) in sysctl {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value).map_err(io_err(format!("setting sysctl {key}={value}")))?;
    }
    Ok(())
}

/// Block on the exec FIFO until `start`, run startContainer hooks, exec.
fn exec_when_started(cfg: &InitConfig<'_>, exec: Exec, state: Option<String>) -> InitError {
    // Opening the FIFO for writing blocks until `start` opens it for reading.
    let fifo = match openat(
        cfg.state_dir,
        EXEC_FIFO,
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => return sys_err("opening the exec fifo")(e),
    };
    let mut fifo = std::fs::File::from(fifo);
    if let Err(e) = fifo.write_all(b"0") {
        return io_err("writing the exec fifo")(e);
    }
    // The FIFO stays open (close-on-exec) until execve: `start` waits for it to close
    // before it runs poststart hooks, which must follow the process's start.
    let hooks = cfg
        .spec
        .hooks()
        .as_ref()
        .and_then(|h| h.start_container().clone());
    if let (Some(list), Some(state)) = (hooks, state) {
        let state = with_status(&state, "created");
        if let Err(e) = hooks::run_all("startContainer", &list, &state) {
            return e.into();
        }
    }
    setup::exec(&exec)
}

/// The state JSON with its status replaced.
fn with_status(state: &str, status: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(state) {
        Ok(mut v) => {
            v["status"] = status.into();
            v.to_string()
        }
        Err(_) => state.to_string(),
    }
}
