//! Small wrappers over the syscalls nix does not cover, each `unsafe` documented.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// Exit at once, without running exit handlers (for forked children of the runtime).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process immediately; it touches no Rust-managed state.
    unsafe { libc::_exit(code) }
}

/// The kernel's `struct clone_args` (clone3(2)); libc does not define it for glibc.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Which side of a fork we are on.
pub enum Forked {
    Child,
    Parent(nix::unistd::Pid),
}

/// Fork a child that starts life in the cgroup2 directory `cgroup` (clone3 with
/// CLONE_INTO_CGROUP): no later migration into it is needed.
///
/// # Safety
/// As for fork(2): the caller must be single-threaded, since the child continues
/// with a copy of the address space and only the calling thread.
pub unsafe fn fork_into_cgroup(cgroup: std::os::fd::BorrowedFd<'_>) -> Result<Forked, Errno> {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: clone3 reads `args` (valid for the call, its size passed alongside); with
    // no stack given the child runs on a copy of ours, like fork; the caller guarantees
    // there are no other threads.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match Errno::result(r)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(nix::unistd::Pid::from_raw(pid as i32))),
    }
}

/// Fork, into `cgroup` when given (see [`fork_into_cgroup`]).
///
/// # Safety
/// The caller must be single-threaded (see fork(2)).
pub unsafe fn fork_maybe_into(
    cgroup: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<Forked, Errno> {
    if let Some(fd) = cgroup {
        // SAFETY: forwarded from our caller's guarantee.
        return unsafe { fork_into_cgroup(fd) };
    }
    // SAFETY: forwarded from our caller's guarantee.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child)),
    }
}

/// Mark the calling process non-dumpable, so that processes in the container cannot
/// open its /proc/PID/exe (the host binary) or ptrace it.
pub fn set_dumpable(on: bool) -> Result<(), Errno> {
    // SAFETY: prctl(PR_SET_DUMPABLE) takes an integer argument and touches no memory.
    let r = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(on), 0, 0, 0) };
    Errno::result(r).map(drop)
}

/// Make the caller the reaper of orphaned descendants (so `run` can wait for an init
/// that is its grandchild).
pub fn set_child_subreaper() -> Result<(), Errno> {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes an integer argument and touches no memory.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    Errno::result(r).map(drop)
}

/// Set no_new_privs for the caller and its descendants.
pub fn set_no_new_privs() -> Result<(), Errno> {
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) takes integer arguments and touches no memory.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    Errno::result(r).map(drop)
}

/// Keep permitted capabilities across a setuid away from 0.
pub fn set_keep_caps(on: bool) -> Result<(), Errno> {
    // SAFETY: prctl(PR_SET_KEEPCAPS) takes an integer argument and touches no memory.
    let r = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, libc::c_ulong::from(on), 0, 0, 0) };
    Errno::result(r).map(drop)
}

/// A pidfd for `pid`: signals through it cannot hit a later process reusing the pid.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = Errno::result(fd)? as i32;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Duplicate fd number `target` of the process behind `pidfd` into our table.
pub fn pidfd_getfd(pidfd: &OwnedFd, target: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_getfd takes two fds and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) };
    let fd = Errno::result(fd)? as i32;
    // SAFETY: the kernel just installed this fd for us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Send `sig` to the process behind `pidfd`.
pub fn pidfd_send_signal(pidfd: &OwnedFd, sig: i32) -> Result<(), Errno> {
    // SAFETY: a null siginfo is allowed (the kernel fills it as for kill(2)).
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(r).map(drop)
}

/// Wait up to `timeout` for the process behind `pidfd` to exit. True if it did.
pub fn pidfd_wait_exit(pidfd: &OwnedFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(pidfd),
            PollFlags::POLLIN,
        )];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(n) if n > 0 => return true,
            Ok(_) => return false,
            Err(Errno::EINTR) if !left.is_zero() => continue,
            Err(_) => return false,
        }
    }
}

/// Mark every fd from `first` up as close-on-exec.
pub fn cloexec_from(first: u32) -> Result<(), Errno> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on our own fds.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Errno::result(r).map(drop)
}

/// Clear close-on-exec on `fd` (a preserved fd handed to the container).
pub fn clear_cloexec(fd: i32) -> Result<(), Errno> {
    // SAFETY: F_SETFD on an fd number only changes its flags; a bad fd gives EBADF.
    let r = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    Errno::result(r).map(drop)
}

/// Set the NIS domain name of the caller's UTS namespace.
pub fn set_domainname(name: &str) -> Result<(), Errno> {
    // SAFETY: the pointer and length describe `name`'s bytes, valid for the call.
    let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    Errno::result(r).map(drop)
}

/// Reset every signal's disposition to the default and unblock all signals, so the
/// container's process does not inherit the runtime's (Rust ignores SIGPIPE).
pub fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL for a valid signal number has no memory effects.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let empty = nix::sys::signal::SigSet::empty();
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&empty),
        None,
    );
}

/// What /proc/PID/stat says about a process: its state letter and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub start_time: u64,
}

/// Read /proc/PID/stat; None if the process does not exist.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    // The command name may contain spaces and parens: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 of stat is starttime; `rest` starts at field 3.
    let start_time = fields.get(19)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

/// Whether `pid` is still the process that started at `start_time` and has not exited.
pub fn process_alive(pid: i32, start_time: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    match proc_stat(pid) {
        Some(st) => st.start_time == start_time && st.state != 'Z' && st.state != 'X',
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "1234 (a b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                state: 'S',
                start_time: 98765
            })
        );
    }

    #[test]
    fn own_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = std::process::id() as i32;
        let st = proc_stat(me).unwrap();
        assert!(process_alive(me, st.start_time));
        assert!(!process_alive(me, st.start_time + 1));
        assert!(!process_alive(0, 0));
    }
}
