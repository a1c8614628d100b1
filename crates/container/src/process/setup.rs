//! The last steps every container process takes before exec, shared by the init and
//! by processes `exec`ed into a running container: terminal, rlimits, no_new_privs,
//! user and capabilities, umask, cwd, the executable's path, and fds.

use std::cell::RefCell;
use std::ffi::CString;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::{umask, Mode};
use nix::unistd::{chdir, execve};
use oci_spec::runtime::Process;

use crate::channel::{Channel, Message};
use crate::console;
use crate::creds;
use crate::hooks;
use crate::sys;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why a container process (the init, or one `exec`ed) could not be made ready.
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
    #[error("loading the seccomp filter: {0}")]
    Seccomp(#[from] berth_seccomp::SeccompError),
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

pub(crate) fn sys_err(action: impl Into<String>) -> impl FnOnce(nix::Error) -> InitError {
    let action = action.into();
    move |source| InitError::Sys { action, source }
}

pub(crate) fn io_err(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> InitError {
    let action = action.into();
    move |source| InitError::Io { action, source }
}

/// What a container process needs for its last steps.
pub struct Setup<'a> {
    pub process: &'a Process,
    /// The compiled `linux.seccomp` filter, taken and loaded here.
    pub seccomp: &'a RefCell<Option<berth_seccomp::Filter>>,
    /// The channel to the parent (for the seccomp notify fd).
    pub channel: &'a Channel,
    pub console_socket: Option<RawFd>,
    pub preserve_fds: u32,
    /// setgroups(2) is allowed (false in a user namespace that denies it).
    pub setgroups_allowed: bool,
}

/// What to exec once started.
pub struct Exec {
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
}

/// Terminal, rlimits, no_new_privs, credentials, umask, cwd, executable, fds — in
/// that order: rlimits before dropping capabilities, the executable looked up and
/// checked with the final credentials.
pub fn finish(s: &Setup<'_>) -> Result<Exec, InitError> {
    let proc = s.process;
    if proc.terminal().unwrap_or(false) {
        setup_terminal(s)?;
    }
    creds::apply_rlimits(
        &creds::RealCredSys,
        proc.rlimits().as_deref().unwrap_or_default(),
    )?;
    // With no_new_privs the filter goes in last, as late as possible; without, it needs
    // CAP_SYS_ADMIN, so it goes in before the capabilities are dropped.
    let nnp = proc.no_new_privileges().unwrap_or(false);
    if nnp {
        sys::set_no_new_privs().map_err(sys_err("setting no_new_privs"))?;
    } else {
        load_seccomp(s)?;
    }
    creds::apply_user_and_caps(&creds::RealCredSys, proc, s.setgroups_allowed)?;
    if let Some(mask) = proc.user().umask() {
        umask(Mode::from_bits_truncate(mask));
    }
    chdir(proc.cwd()).map_err(sys_err(format!("changing to cwd {}", proc.cwd().display())))?;
    let exec = resolve_exec(proc)?;
    prepare_fds(s.preserve_fds)?;
    if nnp {
        load_seccomp(s)?;
    }
    Ok(exec)
}

/// Load the seccomp filter; a notify fd is handed to the parent, which passes it on to
/// the listener, and kept open (close-on-exec) until exec.
fn load_seccomp(s: &Setup<'_>) -> Result<(), InitError> {
    let Some(filter) = s.seccomp.borrow_mut().take() else {
        return Ok(());
    };
    if let Some(fd) = filter.load()? {
        s.channel.send(&Message::SeccompFd(fd.as_raw_fd()))?;
        if let Err(text) = s.channel.expect("SeccompFdSent")? {
            return Err(InitError::Parent(text));
        }
        let _ = fd.into_raw_fd();
    }
    Ok(())
}

/// Replace the process with the container's program; returns only on failure.
pub fn exec(exec: &Exec) -> InitError {
    sys::reset_signals();
    match execve(&exec.path, &exec.args, &exec.env) {
        Err(e) => sys_err(format!("exec {:?}", exec.path))(e),
        Ok(never) => match never {},
    }
}

/// Whether setgroups(2) may be called: always outside a user namespace.
pub fn setgroups_allowed(in_user_ns: bool) -> bool {
    !in_user_ns
        || std::fs::read_to_string("/proc/self/setgroups")
            .map(|s| s.trim() == "allow")
            .unwrap_or(false)
}

fn setup_terminal(s: &Setup<'_>) -> Result<(), InitError> {
    let proc = s.process;
    let Some(socket) = s.console_socket else {
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
fn prepare_fds(preserve_fds: u32) -> Result<(), InitError> {
    let listen: u32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let keep = preserve_fds.max(listen);
    for fd in 3..3 + keep {
        sys::clear_cloexec(fd as i32).map_err(sys_err(format!("preserving fd {fd}")))?;
    }
    sys::cloexec_from(3 + keep).map_err(sys_err("marking fds close-on-exec"))
}
