//! The small subcommands that make the container process do one thing.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::thread;
use std::time::Duration;

use serde::Serialize;

use crate::sys::{self, Outcome};

fn print_json(value: &impl Serialize) -> io::Result<()> {
    let text = serde_json::to_string(value).map_err(io::Error::other)?;
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()
}

/// Sleeps `secs` (fractional; `inf` sleeps forever).
pub fn sleep(secs: f64) -> ! {
    if secs.is_finite() && secs >= 0.0 {
        thread::sleep(Duration::from_secs_f64(secs));
        std::process::exit(0);
    }
    forever()
}

fn forever() -> ! {
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

/// Sends `sig` to itself with the default disposition.
///
/// PID 1 of a PID namespace ignores signals it has no handler for, even from itself; then
/// a SIGSEGV is produced by a real fault (which the kernel does deliver), and any other
/// signal makes the probe say so on stderr and exit 125.
pub fn kill_self(sig: i32) -> ! {
    // SAFETY: sigset_t is plain data initialised by sigemptyset; SIG_DFL is a valid action.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    // SAFETY: kill takes no pointers.
    unsafe { libc::kill(sys::getpid(), sig) };
    if [libc::SIGSTOP, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU].contains(&sig) {
        std::process::exit(0); // stopped and continued
    }
    if sig == libc::SIGSEGV {
        fault();
    }
    eprintln!(
        "berth-probe: {} was ignored (pid {} of its pid namespace has no handler)",
        sys::signal_name(sig),
        sys::getpid()
    );
    std::process::exit(125)
}

fn fault() -> ! {
    // SAFETY: maps one fresh inaccessible page; nothing else refers to it.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if page != libc::MAP_FAILED {
        // SAFETY: deliberately touches the PROT_NONE page to take a SIGSEGV from the MMU;
        // the write never completes.
        unsafe { std::ptr::write_volatile(page.cast::<u8>(), 1) };
    }
    std::process::exit(125)
}

#[derive(Serialize)]
struct Trapped {
    signal: i32,
    name: String,
    sender_pid: i32,
}

/// Waits for one of `sigs`, prints which one arrived and exits 128+N (like a shell trap).
/// Prints `{"ready":true}` once the signals are blocked, so a test knows when to send.
pub fn trap(sigs: &[i32]) -> io::Result<()> {
    // SAFETY: sigset_t is plain data initialised by sigemptyset before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; blocking makes the signals wait for sigwaitinfo.
    unsafe {
        libc::sigemptyset(&mut set);
        for &s in sigs {
            libc::sigaddset(&mut set, s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    print_json(&serde_json::json!({ "ready": true }))?;
    // SAFETY: siginfo_t is plain data; sigwaitinfo fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let sig = loop {
        // SAFETY: both pointers are valid.
        let r = unsafe { libc::sigwaitinfo(&set, &mut info) };
        if r > 0 {
            break r;
        }
    };
    // SAFETY: sigwaitinfo filled `info` for a user signal; si_pid is valid to read.
    let sender_pid = unsafe { info.si_pid() };
    print_json(&Trapped {
        signal: sig,
        name: sys::signal_name(sig),
        sender_pid,
    })?;
    std::process::exit(128 + sig)
}

#[derive(Serialize)]
struct OpenExe {
    pid: String,
    exe: Option<String>,
    /// `open("/proc/PID/exe", O_WRONLY)`.
    write_open: Outcome,
    /// `open("/proc/PID/exe", O_PATH)`.
    path_open: Outcome,
    /// `open("/proc/self/fd/N", O_WRONLY)` on the O_PATH descriptor.
    reopen_write: Option<Outcome>,
}

/// CVE-2019-5736 check: can the binary behind /proc/PID/exe be opened for writing?
/// Nothing is ever written.
pub fn open_exe(pid: &str) -> io::Result<()> {
    let path = format!("/proc/{pid}/exe");
    let write_open = OpenOptions::new().write(true).open(&path);
    let path_fd = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(&path);
    let reopen_write = path_fd.as_ref().ok().map(|f| {
        let again = OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", f.as_raw_fd()));
        Outcome::of(&again)
    });
    print_json(&OpenExe {
        pid: pid.to_owned(),
        exe: fs::read_link(&path)
            .ok()
            .map(|p| p.to_string_lossy().into_owned()),
        write_open: Outcome::of(&write_open),
        path_open: Outcome::of(&path_fd),
        reopen_write,
    })
}

/// Appends 1, 2, 3, ... (one per line) to `file` every 100 ms, forever.
pub fn count(file: &str) -> io::Result<()> {
    let mut f = OpenOptions::new().append(true).create(true).open(file)?;
    for n in 1u64.. {
        writeln!(f, "{n}")?;
        thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

#[derive(Serialize)]
struct ForkBomb {
    requested: u32,
    forked: u32,
    #[serde(flatten)]
    first_failure: Outcome,
}

/// Forks up to `n` children that just wait, prints how many forks succeeded, then kills and
/// reaps them (or, with `hold`, keeps them and sleeps forever; they die with the probe).
pub fn fork_bomb(n: u32, hold: bool) -> io::Result<()> {
    let mut children = Vec::new();
    let mut failure = Outcome::ok();
    for _ in 0..n {
        // SAFETY: the probe is single-threaded; the child only calls async-signal-safe
        // functions (prctl, pause, _exit).
        match unsafe { libc::fork() } {
            -1 => {
                failure = Outcome::from_io(&io::Error::last_os_error());
                break;
            }
            0 => {
                // SAFETY: async-signal-safe calls only; the child never returns.
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    loop {
                        libc::pause();
                    }
                }
            }
            pid => children.push(pid),
        }
    }
    print_json(&ForkBomb {
        requested: n,
        forked: children.len() as u32,
        first_failure: failure,
    })?;
    if hold {
        forever();
    }
    for &pid in &children {
        // SAFETY: `pid` is our own child; waitpid's status pointer may be null.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    Ok(())
}

/// Allocates and touches `mib` MiB, prints `{"allocated_mib":N}`, then sleeps `secs`
/// (forever if not given). Under a memory limit the OOM killer ends it first.
pub fn alloc(mib: usize, secs: Option<f64>) -> io::Result<()> {
    const MIB: usize = 1 << 20;
    let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(mib);
    for _ in 0..mib {
        // calloc'd memory is not resident until written, hence the touch below.
        let mut chunk = vec![0u8; MIB];
        for page in chunk.chunks_mut(4096) {
            // Volatile so the touch is not optimised away: the page must be resident.
            // SAFETY: `page` is a valid, initialised, exclusively borrowed slice.
            unsafe { std::ptr::write_volatile(page.as_mut_ptr(), 1) };
        }
        chunks.push(chunk);
    }
    print_json(&serde_json::json!({ "allocated_mib": chunks.len() }))?;
    sleep(secs.unwrap_or(f64::INFINITY))
}
