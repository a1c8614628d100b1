//! Thin wrappers over the few libc calls std does not offer.

use std::ffi::CStr;
use std::io;

use serde::Serialize;

/// Result of an attempted operation, for the report: success, or the errno and its text.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Outcome {
    pub fn ok() -> Self {
        Outcome {
            ok: true,
            ..Outcome::default()
        }
    }

    pub fn from_io(e: &io::Error) -> Self {
        Outcome {
            ok: false,
            errno: e.raw_os_error(),
            error: Some(errno_name(e)),
        }
    }

    pub fn of<T>(r: &io::Result<T>) -> Self {
        match r {
            Ok(_) => Outcome::ok(),
            Err(e) => Outcome::from_io(e),
        }
    }
}

/// `EACCES`-style name of an error if it is a well-known errno, else its text.
pub fn errno_name(e: &io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::EPERM) => "EPERM",
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::ESRCH) => "ESRCH",
        Some(libc::EIO) => "EIO",
        Some(libc::EBADF) => "EBADF",
        Some(libc::EAGAIN) => "EAGAIN",
        Some(libc::ENOMEM) => "ENOMEM",
        Some(libc::EACCES) => "EACCES",
        Some(libc::EBUSY) => "EBUSY",
        Some(libc::EEXIST) => "EEXIST",
        Some(libc::ENOTDIR) => "ENOTDIR",
        Some(libc::EISDIR) => "EISDIR",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::ENOSPC) => "ENOSPC",
        Some(libc::ETXTBSY) => "ETXTBSY",
        Some(libc::EROFS) => "EROFS",
        Some(libc::ENOSYS) => "ENOSYS",
        Some(libc::ENXIO) => "ENXIO",
        Some(libc::ENOTTY) => "ENOTTY",
        Some(libc::ELOOP) => "ELOOP",
        _ => return e.to_string(),
    };
    name.to_owned()
}

/// Turns a `-1`-on-error return value into an `io::Result`.
pub fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Real, effective and saved ids.
#[derive(Debug, Clone, Serialize)]
pub struct Ids {
    pub real: u32,
    pub effective: u32,
    pub saved: u32,
}

pub fn resuid() -> Ids {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: the three pointers are valid for writes for the duration of the call.
    unsafe { libc::getresuid(&mut r, &mut e, &mut s) };
    Ids {
        real: r,
        effective: e,
        saved: s,
    }
}

pub fn resgid() -> Ids {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: the three pointers are valid for writes for the duration of the call.
    unsafe { libc::getresgid(&mut r, &mut e, &mut s) };
    Ids {
        real: r,
        effective: e,
        saved: s,
    }
}

pub fn groups() -> io::Result<Vec<u32>> {
    // SAFETY: a zero size with a null list only asks for the count.
    let n = check(unsafe { libc::getgroups(0, std::ptr::null_mut()) }.into())?;
    let mut list = vec![0; n as usize];
    // SAFETY: `list` has room for `n` gids.
    let n = check(unsafe { libc::getgroups(n as libc::c_int, list.as_mut_ptr()) }.into())?;
    list.truncate(n as usize);
    Ok(list)
}

pub struct Uname {
    pub nodename: String,
    pub domainname: String,
}

pub fn uname() -> io::Result<Uname> {
    // SAFETY: utsname is plain old data; all-zero is a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is valid for writes.
    check(unsafe { libc::uname(&mut u) }.into())?;
    let field = |f: &[libc::c_char]| {
        // SAFETY: the kernel NUL-terminates every utsname field within its array.
        unsafe { CStr::from_ptr(f.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    Ok(Uname {
        nodename: field(&u.nodename),
        domainname: field(&u.domainname),
    })
}

/// Seconds on clock `id` as a float.
pub fn clock_secs(id: libc::clockid_t) -> io::Result<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid for writes.
    check(unsafe { libc::clock_gettime(id, &mut ts) }.into())?;
    Ok(ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
}

/// Soft and hard limit of one resource (RLIM_INFINITY is u64::MAX, as in the OCI config).
#[derive(Debug, Clone, Serialize)]
pub struct Rlimit {
    pub soft: u64,
    pub hard: u64,
}

pub fn rlimit(resource: libc::__rlimit_resource_t) -> io::Result<Rlimit> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is valid for writes.
    check(unsafe { libc::getrlimit(resource, &mut r) }.into())?;
    Ok(Rlimit {
        soft: r.rlim_cur,
        hard: r.rlim_max,
    })
}

pub fn no_new_privs() -> io::Result<bool> {
    // SAFETY: PR_GET_NO_NEW_PRIVS takes no pointers.
    let r = check(unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) }.into())?;
    Ok(r == 1)
}

pub fn isatty(fd: libc::c_int) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

pub fn ttyname(fd: libc::c_int) -> io::Result<String> {
    let mut buf = [0 as libc::c_char; 256];
    // SAFETY: `buf` is valid for `buf.len()` bytes.
    let r = unsafe { libc::ttyname_r(fd, buf.as_mut_ptr(), buf.len()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    // SAFETY: on success ttyname_r NUL-terminated the name within `buf`.
    Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned())
}

/// Terminal size of `fd` as (rows, cols).
pub fn winsize(fd: libc::c_int) -> io::Result<(u16, u16)> {
    // SAFETY: winsize is plain old data.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize into the valid pointer.
    check(unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) }.into())?;
    Ok((ws.ws_row, ws.ws_col))
}

pub fn getpid() -> i32 {
    // SAFETY: always succeeds.
    unsafe { libc::getpid() }
}

pub fn getppid() -> i32 {
    // SAFETY: always succeeds.
    unsafe { libc::getppid() }
}

pub fn getpgrp() -> i32 {
    // SAFETY: always succeeds.
    unsafe { libc::getpgrp() }
}

pub fn getsid() -> i32 {
    // SAFETY: getsid(0) asks about the caller; no pointers.
    unsafe { libc::getsid(0) }
}

/// Scheduling policy name, static priority and nice value.
pub fn sched() -> io::Result<(String, i32, i32)> {
    // SAFETY: no pointers.
    let policy = check(unsafe { libc::sched_getscheduler(0) }.into())? as i32;
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is valid for writes.
    check(unsafe { libc::sched_getparam(0, &mut param) }.into())?;
    // getpriority may legitimately return -1, so errno has to be cleared and checked.
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: no pointers.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if nice == -1 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(0) {
            return Err(e);
        }
    }
    let name = match policy & !libc::SCHED_RESET_ON_FORK {
        libc::SCHED_OTHER => "SCHED_OTHER".to_owned(),
        libc::SCHED_FIFO => "SCHED_FIFO".to_owned(),
        libc::SCHED_RR => "SCHED_RR".to_owned(),
        libc::SCHED_BATCH => "SCHED_BATCH".to_owned(),
        libc::SCHED_IDLE => "SCHED_IDLE".to_owned(),
        6 => "SCHED_DEADLINE".to_owned(),
        p => format!("SCHED_{p}"),
    };
    Ok((name, param.sched_priority, nice))
}

/// I/O priority as (class name, level).
pub fn ioprio() -> io::Result<(String, i32)> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    // SAFETY: ioprio_get takes two integers.
    let v = check(unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0) })?;
    let class = match v >> 13 {
        0 => "IOPRIO_CLASS_NONE",
        1 => "IOPRIO_CLASS_RT",
        2 => "IOPRIO_CLASS_BE",
        3 => "IOPRIO_CLASS_IDLE",
        _ => "IOPRIO_CLASS_UNKNOWN",
    };
    Ok((class.to_owned(), (v & 0x1fff) as i32))
}

/// The raw personality value.
pub fn personality() -> io::Result<u32> {
    // SAFETY: 0xffffffff only queries the current personality.
    let v = unsafe { libc::personality(0xffff_ffff) };
    check(v.into()).map(|v| v as u32)
}

/// Major and minor numbers of a device id (glibc's gnu_dev_major/minor).
pub fn major_minor(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// Signal number for `SIGTERM`, `TERM` or `15`.
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse() {
        return Some(n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s).to_ascii_uppercase();
    (1..=31).find(|&n| signal_name(n).strip_prefix("SIG") == Some(name.as_str()))
}

pub fn signal_name(n: i32) -> String {
    let name = match n {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSTKFLT => "SIGSTKFLT",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        libc::SIGPWR => "SIGPWR",
        libc::SIGSYS => "SIGSYS",
        n => return format!("SIG{n}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_signals() {
        assert_eq!(parse_signal("SIGTERM"), Some(libc::SIGTERM));
        assert_eq!(parse_signal("kill"), Some(libc::SIGKILL));
        assert_eq!(parse_signal("10"), Some(10));
        assert_eq!(parse_signal("SIGNOPE"), None);
    }

    #[test]
    fn splits_device_numbers() {
        assert_eq!(major_minor(0x0103), (1, 3)); // /dev/null
        let makedev = |ma: u64, mi: u64| {
            ((ma & 0xfff) << 8) | ((ma & !0xfff) << 32) | (mi & 0xff) | ((mi & !0xff) << 12)
        };
        assert_eq!(major_minor(makedev(259, 0x12305)), (259, 0x12305));
        assert_eq!(major_minor(makedev(0x1234, 7)), (0x1234, 7));
    }
}
