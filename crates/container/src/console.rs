//! The container's terminal: a pty made inside the container (from its own devpts),
//! whose master is sent to the caller's console socket over SCM_RIGHTS, as runc does.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt, PtyMaster};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::unistd::dup2_raw;

/// What went wrong setting up the terminal.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("{action}: {source}")]
    Sys {
        action: &'static str,
        source: nix::Error,
    },
    #[error("opening pty slave {path}: {source}")]
    Slave {
        path: String,
        source: std::io::Error,
    },
}

fn sys(action: &'static str) -> impl FnOnce(nix::Error) -> ConsoleError {
    move |source| ConsoleError::Sys { action, source }
}

/// A new pty: the master and the slave's path.
pub struct Pty {
    pub master: PtyMaster,
    pub slave_path: String,
}

/// Open a pty from /dev/ptmx of the current root.
pub fn open_pty() -> Result<Pty, ConsoleError> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).map_err(sys(
        "opening /dev/ptmx (does the container mount devpts at /dev/pts?)",
    ))?;
    grantpt(&master).map_err(sys("granting the pty"))?;
    unlockpt(&master).map_err(sys("unlocking the pty"))?;
    let slave_path = ptsname_r(&master).map_err(sys("naming the pty slave"))?;
    Ok(Pty { master, slave_path })
}

/// Set the window size of a terminal.
pub fn set_size(fd: RawFd, rows: u16, cols: u16) -> Result<(), ConsoleError> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that lives for the call.
    let r = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
    nix::errno::Errno::result(r)
        .map(drop)
        .map_err(sys("setting the terminal size"))
}

/// Send `fd` over the unix socket `socket`, with `name` as the message body.
pub fn send_fd(socket: RawFd, name: &str, fd: RawFd) -> Result<(), ConsoleError> {
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(socket, &iov, &cmsg, MsgFlags::empty(), None)
        .map(drop)
        .map_err(sys("sending the pty master to the console socket"))
}

/// Make the pty slave at `path` the caller's controlling terminal and stdio.
pub fn attach_slave(path: &str) -> Result<(), ConsoleError> {
    let slave: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| ConsoleError::Slave {
            path: path.to_string(),
            source,
        })?
        .into();
    // SAFETY: TIOCSCTTY takes an integer argument; the fd is a terminal we own.
    let r = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
    nix::errno::Errno::result(r).map_err(sys("making the pty the controlling terminal"))?;
    for target in 0..3 {
        // SAFETY: dup2 onto 0..2 replaces our stdio; nothing else holds those fd numbers
        // as owned Rust objects in this process.
        let fd =
            unsafe { dup2_raw(&slave, target) }.map_err(sys("duplicating the pty onto stdio"))?;
        // The new fd is our stdio from now on: keep it open rather than let it drop.
        let _ = fd.into_raw_fd();
    }
    Ok(())
}
