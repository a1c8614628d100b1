//! The command: spawned chrooted into the root disk (on a pty with `-t`), signalled,
//! reaped.

use std::ffi::CString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use berth_guest_agent::protocol::{ExitStatus, HostMessage, RunRequest};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{Gid, Pid, Uid};

use crate::boot::NEW_ROOT;
use crate::error::AgentError;

/// `args[0]` as a path inside `root`: as given if it has a slash, else the first PATH
/// entry holding it (symlinks are not followed here: they point inside the disk).
fn resolve(root: &Path, request: &RunRequest) -> Result<String, AgentError> {
    let name = request
        .args
        .first()
        .ok_or_else(|| AgentError::Protocol("the run request has no args".into()))?;
    if name.contains('/') {
        return Ok(name.clone());
    }
    request
        .path_var()
        .split(':')
        .filter(|dir| dir.starts_with('/'))
        .map(|dir| format!("{}/{name}", dir.trim_end_matches('/')))
        .find(|p| {
            root.join(p.trim_start_matches('/'))
                .symlink_metadata()
                .is_ok()
        })
        .ok_or_else(|| AgentError::Protocol(format!("{name}: not found in PATH")))
}

fn cstring(s: &str, what: &str) -> Result<CString, AgentError> {
    CString::new(s).map_err(|_| AgentError::Protocol(format!("{what} contains a NUL byte")))
}

/// The pty a command with a terminal runs on, seen from the agent.
pub struct Pty {
    master: Arc<OwnedFd>,
    exited: Arc<AtomicBool>,
    output: JoinHandle<()>,
}

impl Pty {
    /// The master, for [`HostMessage::Resize`].
    pub fn master(&self) -> Arc<OwnedFd> {
        Arc::clone(&self.master)
    }

    /// Once the command has ended: passes on what it left in the pty, then returns.
    pub fn finish(self) {
        self.exited.store(true, Ordering::Relaxed);
        let _ = self.output.join();
    }
}

/// The command once spawned.
pub struct Spawned {
    /// Its pid.
    pub pid: Pid,
    /// Its pty, with a terminal.
    pub pty: Option<Pty>,
}

fn sys(what: &str) -> impl FnOnce(nix::errno::Errno) -> AgentError + '_ {
    move |source| AgentError::Sys {
        what: what.into(),
        source,
    }
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> AgentError + '_ {
    move |source| AgentError::Io {
        what: what.into(),
        source,
    }
}

/// Copies the pty's output to `out` until every slave is closed, or the command has
/// ended (`exited`) and nothing is left to read (a background process may keep the
/// slave open).
fn relay_output(master: File, mut out: File, exited: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut master = master;
        let mut buf = [0u8; 8192];
        loop {
            let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(50u8)) {
                Ok(0) if exited.load(Ordering::Relaxed) => return,
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(_) => return,
            }
            match master.read(&mut buf) {
                // EIO: no slave is open any more.
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if out.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    })
}

/// Copies the host's input to the pty; at its end, sends the pty's end-of-file
/// character (^D) so that a reader in canonical mode sees its end too.
fn relay_input(mut input: File, mut master: File) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match input.read(&mut buf) {
                Ok(0) => {
                    let _ = master.write_all(b"\x04");
                    return;
                }
                Ok(n) => {
                    if master.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    });
}

/// A pty pair of `window` rows and columns, both ends close-on-exec (the command
/// gets the slave as its stdio).
fn open_pty(window: Option<(u16, u16)>) -> Result<(OwnedFd, OwnedFd), AgentError> {
    let size = window.map(|(rows, cols)| nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    });
    let pty = nix::pty::openpty(size.as_ref(), None).map_err(sys("opening a pty"))?;
    for fd in [&pty.master, &pty.slave] {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(sys("setting FD_CLOEXEC"))?;
    }
    Ok((pty.master, pty.slave))
}

/// Starts the command as the request says: its stdin is `stdin` (else /dev/null),
/// or with `request.terminal` a new pty relayed to `stdout` and from `stdin`.
pub fn spawn(
    request: &RunRequest,
    stdin: Option<File>,
    stdout: File,
    stderr: File,
) -> Result<Spawned, AgentError> {
    let program = resolve(Path::new(NEW_ROOT), request)?;
    let root = cstring(NEW_ROOT, "the root")?;
    let cwd = cstring(&request.cwd, "cwd")?;
    let (uid, gid) = (Uid::from_raw(request.uid), Gid::from_raw(request.gid));
    let groups: Vec<Gid> = request
        .additional_gids
        .iter()
        .copied()
        .map(Gid::from_raw)
        .collect();
    let mut cmd = Command::new(&program);
    cmd.args(&request.args[1..])
        .env_clear()
        .envs(request.env.iter().filter_map(|e| e.split_once('=')));
    let terminal = request.terminal;
    let mut relay = None;
    if terminal {
        let (master, slave) = open_pty(request.window)?;
        let clone = |fd: &OwnedFd| fd.try_clone().map_err(io("duplicating the pty"));
        cmd.stdin(clone(&slave)?)
            .stdout(clone(&slave)?)
            .stderr(slave);
        relay = Some((master, stdout, stdin));
    } else {
        match stdin {
            Some(f) => cmd.stdin(f),
            None => cmd.stdin(Stdio::null()),
        };
        cmd.stdout(stdout).stderr(stderr);
    }
    // SAFETY: the agent is single-threaded here (the signal thread starts after spawn),
    // so the child may run any code; the closure only makes system calls on data
    // prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if terminal {
                nix::unistd::setsid()?;
                // SAFETY: TIOCSCTTY takes an int argument; fd 0 is the pty's slave.
                if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            nix::unistd::chroot(root.as_c_str())?;
            nix::unistd::chdir(cwd.as_c_str())?;
            nix::unistd::setgroups(&groups)?;
            nix::unistd::setgid(gid)?;
            nix::unistd::setuid(uid)?;
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| AgentError::Io {
        what: format!("starting {program}"),
        source,
    })?;
    // The slave's copies went with `cmd`'s stdio, closed in here once it spawned.
    drop(cmd);
    let pid = Pid::from_raw(child.id() as i32);
    let pty = match relay {
        None => None,
        Some((master, stdout, stdin)) => {
            let file = |fd: &OwnedFd| {
                fd.try_clone()
                    .map(File::from)
                    .map_err(io("duplicating the pty"))
            };
            let exited = Arc::new(AtomicBool::new(false));
            let output = relay_output(file(&master)?, stdout, Arc::clone(&exited));
            if let Some(stdin) = stdin {
                relay_input(stdin, file(&master)?);
            }
            Some(Pty {
                master: Arc::new(master),
                exited,
                output,
            })
        }
    };
    Ok(Spawned { pid, pty })
}

/// Sets the size of the pty whose master is `master`.
fn resize(master: &OwnedFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that lives for the call.
    let _ = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// Acts on the messages read from the control port, on a thread: a
/// [`HostMessage::Signal`] goes to `pid`, a [`HostMessage::Resize`] to the pty.
pub fn serve_messages(reader: BufReader<File>, pid: Pid, pty: Option<Arc<OwnedFd>>) {
    std::thread::spawn(move || {
        for line in reader.lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str(&line) {
                Ok(HostMessage::Signal(n)) => {
                    if let Ok(sig) = Signal::try_from(n) {
                        let _ = kill(pid, sig);
                    }
                }
                Ok(HostMessage::Resize { rows, cols }) => {
                    if let Some(master) = &pty {
                        resize(master, rows, cols);
                    }
                }
                _ => {}
            }
        }
    });
}

/// Reaps every child (PID 1 inherits orphans) until `pid` ends; returns how it ended.
pub fn wait(pid: Pid) -> Result<ExitStatus, AgentError> {
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => return Ok(ExitStatus::Code(code)),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => {
                return Ok(ExitStatus::Signal(sig as i32))
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(source) => {
                return Err(AgentError::Sys {
                    what: "waiting for the command".into(),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_in_the_root_by_path() {
        let root = std::env::temp_dir().join(format!("agent-resolve-{}", std::process::id()));
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/tool"), b"").unwrap();
        // A dangling (absolute) symlink still counts: it resolves inside the guest.
        let _ = std::os::unix::fs::symlink("/bin/busybox", root.join("bin/sh"));
        let mut r = RunRequest::new(["sh", "-c", "true"]);
        assert_eq!(resolve(&root, &r).unwrap(), "/bin/sh");
        r.args[0] = "tool".into();
        assert_eq!(resolve(&root, &r).unwrap(), "/usr/bin/tool");
        r.env = vec!["PATH=/bin".into()];
        assert!(resolve(&root, &r)
            .unwrap_err()
            .to_string()
            .contains("not found"));
        r.args[0] = "./rel/x".into();
        assert_eq!(resolve(&root, &r).unwrap(), "./rel/x");
        r.args.clear();
        assert!(resolve(&root, &r).is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
