//! The forked child of `--isolation process`: everything it needs is prepared
//! before the fork ([`Plan`]), so after it the child only makes system calls.
//!
//! ```text
//! parent (create)                         child
//! ───────────────                         ─────
//! mkfifo exec.fifo, Plan::new
//! fork ─────────────────────────────────▶ reset signals, setsid, [pty → 0 1 2]
//! add child to the cgroup                 rlimits, chroot(rootfs), groups, gid, uid,
//!                                         chdir(cwd), find argv0 on PATH
//! ◀── sync pipe: Ready or (stage, errno)
//! state.json                              openat(state dir, exec.fifo, O_WRONLY)
//!                                         … blocks until start …
//! start: open fifo O_RDONLY, read "0" ◀── write "0"; execve
//! ```
//!
//! An exec into a running process container takes the same steps without the
//! FIFO.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::{pipe2, ForkResult};
use oci_spec::runtime::Spec;

use super::ProcessError;

/// What failed in the child, sent as one byte before the errno.
const STAGES: [&str; 10] = [
    "starting a session",
    "opening the terminal",
    "making the terminal the controlling one",
    "connecting stdio to the terminal",
    "setting rlimits",
    "changing root",
    "setting groups",
    "setting the user",
    "changing to the working directory",
    "finding the executable",
];

/// The child's whole job, computed before the fork.
pub(super) struct Plan {
    rootfs: CString,
    cwd: CString,
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
    rlimits: Vec<(libc::__rlimit_resource_t, libc::rlimit)>,
    /// Where argv[0] may be, in PATH order (itself when it has a slash).
    candidates: Vec<CString>,
    argv: Vec<CString>,
    env: Vec<CString>,
    /// The pty's slave when the process gets a terminal.
    tty: Option<CString>,
    /// The state directory (O_PATH), to open exec.fifo after chroot; `None` for
    /// an exec, which runs at once.
    state_dir: Option<OwnedFd>,
}

fn cstring(what: &str, bytes: &[u8]) -> Result<CString, ProcessError> {
    CString::new(bytes).map_err(|_| ProcessError::Config(format!("{what} contains a NUL byte")))
}

fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        _ => return None,
    })
}

impl Plan {
    /// The plan for `spec`'s process in `rootfs`; `tty` is the pty slave's path.
    pub fn new(
        spec: &Spec,
        rootfs: &Path,
        state_dir: Option<OwnedFd>,
        tty: Option<&Path>,
    ) -> Result<Self, ProcessError> {
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| ProcessError::Config("no process".into()))?;
        let args = process.args().clone().unwrap_or_default();
        let Some(argv0) = args.first() else {
            return Err(ProcessError::Config("no command".into()));
        };
        let env = process.env().clone().unwrap_or_default();
        let path = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        let candidates = if argv0.contains('/') {
            vec![argv0.clone()]
        } else {
            path.split(':')
                .filter(|d| !d.is_empty())
                .map(|d| format!("{}/{argv0}", d.trim_end_matches('/')))
                .collect()
        };
        let user = process.user();
        let rlimits = process
            .rlimits()
            .iter()
            .flatten()
            .filter_map(|r| {
                let name = serde_json::to_value(r.typ()).ok()?;
                let resource = rlimit_resource(name.as_str()?)?;
                let limit = libc::rlimit {
                    rlim_cur: r.soft(),
                    rlim_max: r.hard(),
                };
                Some((resource, limit))
            })
            .collect();
        Ok(Self {
            rootfs: cstring("rootfs", rootfs.as_os_str().as_bytes())?,
            cwd: cstring("cwd", process.cwd().as_os_str().as_bytes())?,
            uid: user.uid(),
            gid: user.gid(),
            groups: user.additional_gids().clone().unwrap_or_default(),
            rlimits,
            candidates: candidates
                .iter()
                .map(|c| cstring("command", c.as_bytes()))
                .collect::<Result<_, _>>()?,
            argv: args
                .iter()
                .map(|a| cstring("argument", a.as_bytes()))
                .collect::<Result<_, _>>()?,
            env: env
                .iter()
                .map(|e| cstring("environment", e.as_bytes()))
                .collect::<Result<_, _>>()?,
            tty: tty
                .map(|t| cstring("tty", t.as_os_str().as_bytes()))
                .transpose()?,
            state_dir,
        })
    }
}

/// Forks the child and waits until it is ready to exec (blocked on exec.fifo);
/// `place` puts it in its cgroup meanwhile. Returns its pid.
pub(super) fn spawn(
    plan: &Plan,
    place: impl FnOnce(i32) -> Result<(), ProcessError>,
) -> Result<i32, ProcessError> {
    let (sync_r, sync_w) = pipe2(OFlag::O_CLOEXEC).map_err(ProcessError::sys("making a pipe"))?;
    let argv = pointers(&plan.argv);
    let envp = pointers(&plan.env);
    // SAFETY: the child only makes system calls on memory prepared before the fork
    // (`plan`, `argv`, `envp`) and ends in execve or _exit.
    match unsafe { nix::unistd::fork() }.map_err(ProcessError::sys("forking"))? {
        ForkResult::Child => {
            drop(sync_r);
            child(plan, sync_w.as_raw_fd(), &argv, &envp)
        }
        ForkResult::Parent { child } => {
            drop(sync_w);
            let pid = child.as_raw();
            let ready = place(pid).and_then(|()| read_sync(&sync_r));
            if ready.is_err() {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(child, None);
            }
            ready.map(|()| pid)
        }
    }
}

fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Ready (one 0 byte), or a stage byte and the errno.
fn read_sync(fd: &OwnedFd) -> Result<(), ProcessError> {
    let mut buf = [0u8; 5];
    let mut got = 0;
    while got < buf.len() {
        match nix::unistd::read(fd, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(ProcessError::sys("reading from the child")(e)),
        }
        if got >= 1 && buf[0] == 0 {
            return Ok(());
        }
    }
    match (got, buf[0]) {
        (5, stage) => {
            let errno = Errno::from_raw(i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]));
            let stage = STAGES.get(usize::from(stage - 1)).copied().unwrap_or("?");
            Err(ProcessError::Child { stage, errno })
        }
        _ => Err(ProcessError::Child {
            stage: "preparing",
            errno: Errno::UnknownErrno,
        }),
    }
}

/// Reports failure at `stage` (1-based index in [`STAGES`]) and exits.
fn fail(sync: RawFd, stage: u8, errno: i32) -> ! {
    let e = errno.to_le_bytes();
    let msg = [stage, e[0], e[1], e[2], e[3]];
    // SAFETY: writes 5 bytes from a live stack buffer; _exit never returns.
    unsafe {
        libc::write(sync, msg.as_ptr().cast(), msg.len());
        libc::_exit(1)
    }
}

fn check(sync: RawFd, stage: u8, r: libc::c_int) {
    if r < 0 {
        fail(sync, stage, Errno::last_raw());
    }
}

fn child(
    plan: &Plan,
    sync: RawFd,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> ! {
    berth_container::sys::reset_signals();
    // SAFETY: plain system calls on NUL-terminated strings and arrays prepared
    // before the fork, which live until execve or _exit; no allocation.
    unsafe {
        check(sync, 1, libc::setsid());
        if let Some(tty) = &plan.tty {
            let fd = libc::open(tty.as_ptr(), libc::O_RDWR);
            check(sync, 2, fd);
            check(sync, 3, libc::ioctl(fd, libc::TIOCSCTTY, 0));
            for target in 0..3 {
                check(sync, 4, libc::dup2(fd, target));
            }
            if fd > 2 {
                libc::close(fd);
            }
        }
        for (resource, limit) in &plan.rlimits {
            check(sync, 5, libc::setrlimit(*resource, limit));
        }
        check(sync, 6, libc::chroot(plan.rootfs.as_ptr()));
        check(sync, 6, libc::chdir(c"/".as_ptr()));
        check(
            sync,
            7,
            libc::setgroups(plan.groups.len(), plan.groups.as_ptr()),
        );
        check(sync, 8, libc::setresgid(plan.gid, plan.gid, plan.gid));
        check(sync, 8, libc::setresuid(plan.uid, plan.uid, plan.uid));
        check(sync, 9, libc::chdir(plan.cwd.as_ptr()));
        let Some(exe) = plan
            .candidates
            .iter()
            .find(|c| libc::access(c.as_ptr(), libc::X_OK) == 0)
        else {
            fail(sync, 10, libc::ENOENT)
        };
        libc::write(sync, [0u8].as_ptr().cast(), 1);
        libc::close(sync);
        if let Some(dir) = &plan.state_dir {
            let fifo = libc::openat(
                dir.as_raw_fd(),
                c"exec.fifo".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            if fifo < 0 {
                libc::_exit(126);
            }
            libc::write(fifo, c"0".as_ptr().cast(), 1);
            libc::close(fifo);
            libc::close(dir.as_raw_fd());
        }
        libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
        let msg = b"berth: exec failed\n";
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}
