//! The container's init: builds the container around itself, then waits for `start`
//! on the exec FIFO and execs the user's program.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{chdir, execve, sethostname, setsid};
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use super::InitConfig;
use crate::channel::{Channel, Message};
use crate::console;
use crate::creds;
use crate::hooks;
use crate::state::EXEC_FIFO;
use crate::sys;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why the init could not get the container ready.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Rootfs(#[from] berth_rootfs::RootfsError),
    #[error(transparent)]
    Creds(#[from] creds::CredsError),
    #[error(transparent)]
    Console(#[from] console::ConsoleError),
    #[error(transparent)]
    Hook(#[from] hooks::HookError),
    #[error(transparent)]
    Channel(#[from] crate::channel::ChannelError),
    #[error("{0}")]
    Parent(String),
    #[error("{action}: {source}")]
    Sys { action: String, source: nix::Error },
    #[error("{action}: {source}")]
    Io {
        action: String,
        source: std::io::Error,
    },
    #[error("executable {0:?} not found in $PATH of the container")]
    NotFound(String),
    #[error("{0:?} does not exist in the container or is not an executable file")]
    NotExecutable(String),
    #[error("{0}")]
    Config(String),
}

fn sys_err(action: impl Into<String>) -> impl FnOnce(nix::Error) -> InitError {
    let action = action.into();
    move |source| InitError::Sys { action, source }
}

fn io_err(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> InitError {
    let action = action.into();
    move |source| InitError::Io { action, source }
}

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

/// What to exec once started.
struct Exec {
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
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
    if proc.terminal().unwrap_or(false) {
        setup_terminal(cfg, proc)?;
    }
    if let Some(adj) = proc.oom_score_adj() {
        creds::set_oom_score_adj(adj)?;
    }
    creds::apply_rlimits(
        &creds::RealCredSys,
        proc.rlimits().as_deref().unwrap_or_default(),
    )?;
    if proc.no_new_privileges().unwrap_or(false) {
        sys::set_no_new_privs().map_err(sys_err("setting no_new_privs"))?;
    }
    creds::apply_user_and_caps(&creds::RealCredSys, proc, setgroups_allowed(cfg))?;
    if let Some(mask) = proc.user().umask() {
        umask(Mode::from_bits_truncate(mask));
    }
    chdir(proc.cwd()).map_err(sys_err(format!("changing to cwd {}", proc.cwd().display())))?;
    let exec = resolve_exec(proc)?;
    prepare_fds(cfg)?;
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

fn setup_terminal(cfg: &InitConfig<'_>, proc: &Process) -> Result<(), InitError> {
    let Some(socket) = cfg.console_socket else {
        return Err(InitError::Config(
            "process.terminal is true but no --console-socket was given".into(),
        ));
    };
    let pty = console::open_pty()?;
    if let Some(size) = proc.console_size() {
        console::set_size(
            pty.master.as_raw_fd(),
            size.height() as u16,
            size.width() as u16,
        )?;
    }
    console::attach_slave(&pty.slave_path)?;
    console::send_fd(socket, &pty.slave_path, pty.master.as_raw_fd())?;
    // SAFETY: the console socket fd was opened by the parent for us and is not owned
    // by any other object in this process; we are done with it.
    unsafe { libc::close(socket) };
    Ok(())
}

fn setgroups_allowed(cfg: &InitConfig<'_>) -> bool {
    if !cfg.namespaces.has(LinuxNamespaceType::User) {
        return true;
    }
    std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() == "allow")
        .unwrap_or(false)
}

/// The environment, with PATH and HOME filled in if the spec lacks them.
fn environment(proc: &Process) -> Vec<String> {
    let mut env: Vec<String> = proc.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(proc.user().uid())));
    }
    if let Ok(n) = std::env::var("LISTEN_FDS") {
        env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
        env.push(format!("LISTEN_FDS={n}"));
        env.push(format!("LISTEN_PID={}", std::process::id()));
    }
    env
}

fn home_of(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
            })
        })
        .unwrap_or_else(|| "/".into())
}

fn cstring(s: &str) -> Result<CString, InitError> {
    CString::new(s).map_err(|_| InitError::Config(format!("{s:?} contains a NUL byte")))
}

fn resolve_exec(proc: &Process) -> Result<Exec, InitError> {
    let args = proc.args().clone().unwrap_or_default();
    let env = environment(proc);
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
        .to_string();
    let prog = &args[0];
    let path = if prog.contains('/') {
        let path = PathBuf::from(prog);
        if !is_executable(&path) {
            return Err(InitError::NotExecutable(prog.clone()));
        }
        path
    } else {
        path_var
            .split(':')
            .map(|dir| Path::new(dir).join(prog))
            .find(|p| is_executable(p))
            .ok_or_else(|| InitError::NotFound(prog.clone()))?
    };
    Ok(Exec {
        path: CString::new(path.as_os_str().as_bytes())
            .map_err(|_| InitError::Config(format!("{path:?} contains a NUL byte")))?,
        args: args.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?,
        env: env.iter().map(|e| cstring(e)).collect::<Result<_, _>>()?,
    })
}

fn is_executable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok() && path.is_file()
}

/// Keep fds 0..3+preserve_fds open across exec (LISTEN_FDS adds to them), mark the
/// rest close-on-exec, so no host fd leaks into the container.
fn prepare_fds(cfg: &InitConfig<'_>) -> Result<(), InitError> {
    let listen: u32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let keep = cfg.preserve_fds.max(listen);
    for fd in 3..3 + keep {
        sys::clear_cloexec(fd as i32).map_err(sys_err(format!("preserving fd {fd}")))?;
    }
    sys::cloexec_from(3 + keep).map_err(sys_err("marking fds close-on-exec"))
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
    sys::reset_signals();
    match execve(&exec.path, &exec.args, &exec.env) {
        Err(e) => sys_err(format!("exec {:?}", exec.path))(e),
        Ok(never) => match never {},
    }
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
