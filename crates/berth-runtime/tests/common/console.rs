//! The receiving end of `--console-socket`: a unix socket that accepts one connection and
//! takes the pty master the runtime sends over it (SCM_RIGHTS).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

pub struct ConsoleSocket {
    path: PathBuf,
    rx: mpsc::Receiver<io::Result<File>>,
}

impl ConsoleSocket {
    /// Binds `path` and starts waiting (in a thread) for the runtime to connect.
    pub fn bind(path: impl AsRef<Path>) -> ConsoleSocket {
        let path = path.as_ref().to_path_buf();
        let listener = UnixListener::bind(&path)
            .unwrap_or_else(|e| panic!("binding console socket {}: {e}", path.display()));
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let got = listener
                .accept()
                .and_then(|(stream, _)| recv_fd(stream.as_raw_fd()));
            let _ = tx.send(got);
        });
        ConsoleSocket { path, rx }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pty master, once the runtime has sent it (panics after `timeout`).
    pub fn master(&self, timeout: Duration) -> File {
        match self.rx.recv_timeout(timeout) {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => panic!("receiving the pty master on {}: {e}", self.path.display()),
            Err(_) => panic!(
                "no pty master received on {} within {timeout:?}",
                self.path.display()
            ),
        }
    }
}

fn recv_fd(sock: i32) -> io::Result<File> {
    let mut name = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: name.as_mut_ptr().cast(),
        iov_len: name.len(),
    };
    // Room for one cmsg carrying one int, 8-aligned.
    let mut cbuf = [0u64; 8];
    // SAFETY: msghdr is plain data; the fields set below point at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    // SAFETY: `msg` and the buffers it points to outlive the call.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR/CMSG_DATA stay within cbuf.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(io::Error::other(
                "no SCM_RIGHTS message on the console socket",
            ));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>());
        Ok(File::from_raw_fd(fd))
    }
}
