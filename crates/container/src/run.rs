//! Foreground `run`: create, start, forward signals to the init, reap it, delete,
//! and return its exit status the way a shell reports it. With `process.terminal`
//! and no console socket, the runtime takes the pty itself and relays it to its own
//! stdin/stdout, as runc does.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::container::{CreateOptions, Runtime};
use crate::error::ContainerError;
use crate::{console, spec, sys};

/// How the container's process ended, as a shell exit code (signal N → 128+N).
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

impl Runtime {
    /// Create and start; with `detach` return at once, otherwise wait for the init
    /// (forwarding signals to it), delete the container and return its exit code.
    pub fn run(&self, opts: &CreateOptions, detach: bool) -> Result<i32, ContainerError> {
        if detach {
            self.create(opts)?;
            return self.start_or_delete(&opts.id).map(|()| 0);
        }
        sys::set_child_subreaper().map_err(|e| ContainerError::sys("becoming subreaper", e))?;
        crate::id::validate(&opts.id)?;
        let loaded = spec::load(&opts.bundle)?;
        let terminal = loaded
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        let mut opts = opts.clone();
        // Deleted when it ends, by us: nothing of it needs to survive a crash.
        opts.transient = true;
        let relay = if opts.console_socket.is_none() && terminal {
            let (ours, theirs) = console_pair()?;
            opts.console_fd = Some(theirs);
            Some(ours)
        } else {
            None
        };
        let pid = self.create_loaded(&opts, &loaded)?;
        opts.console_fd = None;
        let master = match relay.as_ref().map(receive_fd).transpose() {
            Ok(m) => m,
            Err(e) => {
                let _ = self.delete(&opts.id, true);
                return Err(e);
            }
        };
        // Block the signals we forward before the init can exit, so none is lost.
        let set = block_forwarded()?;
        self.start_or_delete(&opts.id)?;
        let code = supervise(pid, &set, master.as_ref())?;
        self.delete_stopped(&opts.id)?;
        Ok(code)
    }

    fn start_or_delete(&self, id: &str) -> Result<(), ContainerError> {
        self.start(id).inspect_err(|_| {
            let _ = self.delete(id, true);
        })
    }
}

/// A socketpair standing in for a console socket: we keep one end, the container
/// process gets the other.
pub(crate) fn console_pair() -> Result<(UnixStream, Arc<OwnedFd>), ContainerError> {
    let (ours, theirs) = UnixStream::pair().map_err(|source| ContainerError::Io {
        action: "creating a console socketpair",
        path: "/".into(),
        source,
    })?;
    Ok((ours, Arc::new(OwnedFd::from(theirs))))
}

/// Block every signal we forward (they are then read from a signalfd).
pub fn block_forwarded() -> Result<SigSet, ContainerError> {
    let set = forwarded_signals();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(|e| ContainerError::sys("blocking signals", e))?;
    Ok(set)
}

/// Wait for `pid` (a descendant we reap as subreaper), forwarding signals and relaying
/// the pty if there is one; its exit code.
pub fn supervise(pid: i32, set: &SigSet, master: Option<&OwnedFd>) -> Result<i32, ContainerError> {
    let _raw = master.and_then(|_| RawMode::enter());
    if let Some(m) = master {
        copy_window_size(m);
    }
    wait_forwarding(pid, set, master)
}

/// Receive the pty master the container process sends over the console socket.
pub(crate) fn receive_fd(sock: &UnixStream) -> Result<OwnedFd, ContainerError> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| ContainerError::sys("receiving the pty master", e))?;
    for cmsg in msg
        .cmsgs()
        .map_err(|e| ContainerError::sys("reading control message", e))?
    {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel installed this fd in our table for this message.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(ContainerError::Init(
        "no pty master arrived on the console socket".into(),
    ))
}

/// Our terminal in raw mode for as long as this lives (only when stdin is a tty).
struct RawMode(Termios);

impl RawMode {
    fn enter() -> Option<Self> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(Self(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.0);
    }
}

fn copy_window_size(master: &OwnedFd) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize struct that lives for the call.
    let r = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    if r == 0 {
        let _ = console::set_size(master.as_raw_fd(), ws.ws_row, ws.ws_col);
    }
}

pub(crate) fn forwarded_signals() -> SigSet {
    let mut set = SigSet::all();
    for s in [
        Signal::SIGKILL,
        Signal::SIGSTOP,
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
    ] {
        set.remove(s);
    }
    set
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Signal,
    Stdin,
    Pty,
}

/// Relay the pty (if any) and signals until the init exits; return its exit code.
pub(crate) fn wait_forwarding(
    init: i32,
    set: &SigSet,
    master: Option<&OwnedFd>,
) -> Result<i32, ContainerError> {
    let init = Pid::from_raw(init);
    let sfd = SignalFd::new(set).map_err(|e| ContainerError::sys("creating signalfd", e))?;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let (mut stdin_open, mut pty_open) = (master.is_some(), master.is_some());
    loop {
        if let Some(code) = reap(init) {
            if let Some(m) = master {
                drain(m.as_fd(), stdout.as_fd());
            }
            return Ok(code);
        }
        let mut sources = vec![(Source::Signal, sfd.as_fd())];
        if let Some(m) = master {
            if stdin_open {
                sources.push((Source::Stdin, stdin.as_fd()));
            }
            if pty_open {
                sources.push((Source::Pty, m.as_fd()));
            }
        }
        let mut fds: Vec<PollFd> = sources
            .iter()
            .map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(ContainerError::sys("waiting for the container", e)),
            Ok(_) => {}
        }
        let ready: Vec<Source> = sources
            .iter()
            .zip(&fds)
            .filter(|(_, p)| p.revents().is_some_and(|r| !r.is_empty()))
            .map(|((s, _), _)| *s)
            .collect();
        for source in ready {
            match (source, master) {
                (Source::Signal, _) => forward(&sfd, init, master),
                (Source::Stdin, Some(m)) => stdin_open = pump(stdin.as_fd(), m.as_fd()),
                (Source::Pty, Some(m)) => pty_open = pump(m.as_fd(), stdout.as_fd()),
                _ => {}
            }
        }
    }
}

/// Pass one pending signal on to the init (SIGWINCH resizes the pty instead).
fn forward(sfd: &SignalFd, init: Pid, master: Option<&OwnedFd>) {
    let Ok(Some(info)) = sfd.read_signal() else {
        return;
    };
    match Signal::try_from(info.ssi_signo as i32) {
        Ok(Signal::SIGCHLD) | Err(_) => {}
        Ok(Signal::SIGWINCH) if master.is_some() => copy_window_size(master.expect("checked")),
        Ok(sig) => {
            let _ = nix::sys::signal::kill(init, sig);
        }
    }
}

/// Copy one read's worth from `from` to `to`; false at end of input or on error.
fn pump(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 16 * 1024];
    match nix::unistd::read(from, &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => write_all(to, &buf[..n]),
    }
}

fn write_all(to: BorrowedFd<'_>, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match nix::unistd::write(to, data) {
            Ok(n) => data = &data[n..],
            Err(nix::Error::EINTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Copy whatever output the pty still holds after the process exited. The tty layer
/// pushes the last writes to the master asynchronously, so read until EIO (every
/// slave closed and the buffer empty), waiting briefly for data still on its way.
fn drain(master: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    loop {
        let mut fds = [PollFd::new(master, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(200u8)) {
            Ok(n) if n > 0 => {
                if !pump(master, to) {
                    return;
                }
            }
            Err(nix::Error::EINTR) => {}
            _ => return,
        }
    }
}

/// Reap every exited child; the init's exit code if it was among them.
fn reap(init: Pid) -> Option<i32> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(status) if status.pid() == Some(init) => {
                if let Some(code) = exit_code(status) {
                    return Some(code);
                }
            }
            Ok(_) => {}
        }
    }
}
