//! The `report` subcommand: everything the process can see about itself, as one JSON object.
//!
//! Every field is gathered independently; a field that cannot be read is `null` and the
//! reason is appended to `errors`, so one denied file never hides the rest of the report.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

use serde::Serialize;

use crate::caps::{self, CapSet};
use crate::mountinfo::{self, MountInfo};
use crate::sys::{self, Ids, Outcome, Rlimit};

/// What the caller asked for beyond the fixed fields.
#[derive(Debug, Default)]
pub struct Request {
    pub sysctls: Vec<String>,
    pub stats: Vec<String>,
    pub reads: Vec<String>,
    /// Paths to write, with the bytes to write (empty: only open for writing).
    pub writes: Vec<(String, String)>,
    pub pretty: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    pub args: Vec<String>,
    pub exe: Option<String>,
    pub uid: Ids,
    pub gid: Ids,
    pub groups: Option<Vec<u32>>,
    pub umask: Option<u32>,
    pub cwd: Option<String>,
    pub env: BTreeMap<String, String>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// Inode of every `/proc/self/ns/*` link; `null` when the kernel lacks that namespace.
    pub namespaces: BTreeMap<String, Option<u64>>,
    pub uid_map: Option<String>,
    pub gid_map: Option<String>,
    /// `[inside, outside, count]` rows of uid_map / gid_map.
    pub uid_map_entries: Vec<[u64; 3]>,
    pub gid_map_entries: Vec<[u64; 3]>,
    pub setgroups: Option<String>,
    /// `inheritable`, `permitted`, `effective`, `bounding`, `ambient`.
    pub capabilities: BTreeMap<String, CapSet>,
    pub no_new_privs: Option<bool>,
    pub seccomp: Seccomp,
    pub rlimits: BTreeMap<String, Rlimit>,
    pub oom_score_adj: Option<i32>,
    pub scheduler: Option<Scheduler>,
    pub io_priority: Option<IoPriority>,
    pub personality: Option<u32>,
    /// Security label from `/proc/self/attr/current` (AppArmor or SELinux), if any.
    pub label: Option<String>,
    pub mounts: Vec<MountInfo>,
    pub fds: Vec<Fd>,
    /// Raw lines of `/proc/self/cgroup`.
    pub cgroup: Vec<String>,
    pub clocks: Clocks,
    pub tty: Tty,
    pub sysctls: BTreeMap<String, Read>,
    pub stat: BTreeMap<String, Stat>,
    pub read: BTreeMap<String, Read>,
    pub write: BTreeMap<String, Outcome>,
    pub errors: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Seccomp {
    /// 0 disabled, 1 strict, 2 filter.
    pub mode: Option<u32>,
    pub mode_name: Option<String>,
    pub filters: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct Scheduler {
    pub policy: String,
    pub priority: i32,
    pub nice: i32,
}

#[derive(Debug, Serialize)]
pub struct IoPriority {
    pub class: String,
    pub priority: i32,
}

#[derive(Debug, Serialize)]
pub struct Fd {
    pub fd: i32,
    pub target: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Clocks {
    pub monotonic: Option<f64>,
    pub boottime: Option<f64>,
    pub realtime: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Tty {
    pub stdin: TtyFd,
    pub stdout: TtyFd,
    pub stderr: TtyFd,
    /// Controlling terminal as `major:minor` from /proc/self/stat (`null` if none).
    pub controlling: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct TtyFd {
    pub isatty: bool,
    pub ttyname: Option<String>,
    /// `[rows, cols]`.
    pub winsize: Option<[u16; 2]>,
}

/// Content of a file, or why it could not be read.
#[derive(Debug, Default, Serialize)]
pub struct Read {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Default, Serialize)]
pub struct Stat {
    pub exists: bool,
    /// `file`, `dir`, `symlink`, `char`, `block`, `fifo`, `socket`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_type: Option<String>,
    /// Permission bits including setuid/setgid/sticky (`st_mode & 0o7777`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minor: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symlink_target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

const NAMESPACES: [&str; 8] = ["pid", "mnt", "net", "uts", "ipc", "user", "cgroup", "time"];

const RLIMITS: [(&str, libc::__rlimit_resource_t); 16] = [
    ("RLIMIT_CPU", libc::RLIMIT_CPU),
    ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
    ("RLIMIT_DATA", libc::RLIMIT_DATA),
    ("RLIMIT_STACK", libc::RLIMIT_STACK),
    ("RLIMIT_CORE", libc::RLIMIT_CORE),
    ("RLIMIT_RSS", libc::RLIMIT_RSS),
    ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
    ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
    ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
    ("RLIMIT_AS", libc::RLIMIT_AS),
    ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
    ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
    ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
    ("RLIMIT_NICE", libc::RLIMIT_NICE),
    ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
    ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
];

/// Collects the report and prints it on stdout.
pub fn run(req: &Request) -> io::Result<()> {
    let report = collect(req);
    let text = if req.pretty {
        serde_json::to_string_pretty(&report)
    } else {
        serde_json::to_string(&report)
    }
    .map_err(io::Error::other)?;
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()
}

fn collect(req: &Request) -> Report {
    // Open descriptors first, before this function opens any of its own.
    let fds = fds();
    let mut errors = Vec::new();
    let mut note = |what: &str, e: io::Error| errors.push(format!("{what}: {e}"));
    let status = read_or(&mut note, "/proc/self/status").unwrap_or_default();
    let status_field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
    };

    let mut capabilities = BTreeMap::new();
    for (key, name) in [
        ("CapInh", "inheritable"),
        ("CapPrm", "permitted"),
        ("CapEff", "effective"),
        ("CapBnd", "bounding"),
        ("CapAmb", "ambient"),
    ] {
        if let Some(set) = status_field(key).and_then(caps::decode) {
            capabilities.insert(name.to_owned(), set);
        }
    }
    let seccomp_mode = status_field("Seccomp").and_then(|v| v.parse().ok());
    let seccomp = Seccomp {
        mode: seccomp_mode,
        mode_name: seccomp_mode.map(|m| {
            match m {
                0 => "disabled",
                1 => "strict",
                2 => "filter",
                _ => "unknown",
            }
            .to_owned()
        }),
        filters: status_field("Seccomp_filters").and_then(|v| v.parse().ok()),
    };
    let umask = status_field("Umask").and_then(|v| u32::from_str_radix(v, 8).ok());

    let uts = sys::uname().map_err(|e| note("uname", e)).ok();
    let uid_map = read_or(&mut note, "/proc/self/uid_map");
    let gid_map = read_or(&mut note, "/proc/self/gid_map");
    let mut rlimits = BTreeMap::new();
    for (name, res) in RLIMITS {
        match sys::rlimit(res) {
            Ok(l) => drop(rlimits.insert(name.to_owned(), l)),
            Err(e) => note(name, e),
        }
    }
    let clock = |id| sys::clock_secs(id).ok();

    Report {
        pid: sys::getpid(),
        ppid: sys::getppid(),
        pgid: sys::getpgrp(),
        sid: sys::getsid(),
        args: std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        exe: link("/proc/self/exe"),
        uid: sys::resuid(),
        gid: sys::resgid(),
        groups: sys::groups().map_err(|e| note("getgroups", e)).ok(),
        umask,
        cwd: std::env::current_dir()
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|e| note("getcwd", e))
            .ok(),
        env: std::env::vars_os()
            .map(|(k, v)| {
                let k = k.to_string_lossy().into_owned();
                (k, v.to_string_lossy().into_owned())
            })
            .collect(),
        hostname: uts.as_ref().map(|u| u.nodename.clone()),
        domainname: uts.map(|u| u.domainname),
        namespaces: namespaces(),
        uid_map_entries: uid_map.as_deref().map(id_map).unwrap_or_default(),
        gid_map_entries: gid_map.as_deref().map(id_map).unwrap_or_default(),
        uid_map,
        gid_map,
        setgroups: read_or(&mut note, "/proc/self/setgroups").map(|s| s.trim().to_owned()),
        capabilities,
        no_new_privs: sys::no_new_privs().map_err(|e| note("prctl", e)).ok(),
        seccomp,
        rlimits,
        oom_score_adj: read_or(&mut note, "/proc/self/oom_score_adj")
            .and_then(|s| s.trim().parse().ok()),
        scheduler: sys::sched()
            .map(|(policy, priority, nice)| Scheduler {
                policy,
                priority,
                nice,
            })
            .map_err(|e| note("sched_getscheduler", e))
            .ok(),
        io_priority: sys::ioprio()
            .map(|(class, priority)| IoPriority { class, priority })
            .map_err(|e| note("ioprio_get", e))
            .ok(),
        personality: sys::personality().map_err(|e| note("personality", e)).ok(),
        label: fs::read_to_string("/proc/self/attr/current")
            .ok()
            .map(|s| s.trim_end_matches(['\0', '\n']).to_owned()),
        mounts: read_or(&mut note, "/proc/self/mountinfo")
            .map(|s| mountinfo::parse(&s))
            .unwrap_or_default(),
        fds,
        cgroup: read_or(&mut note, "/proc/self/cgroup")
            .map(|s| s.lines().map(str::to_owned).collect())
            .unwrap_or_default(),
        clocks: Clocks {
            monotonic: clock(libc::CLOCK_MONOTONIC),
            boottime: clock(libc::CLOCK_BOOTTIME),
            realtime: clock(libc::CLOCK_REALTIME),
        },
        tty: tty(),
        sysctls: req
            .sysctls
            .iter()
            .map(|name| (name.clone(), read_file(&sysctl_path(name))))
            .collect(),
        stat: req.stats.iter().map(|p| (p.clone(), stat(p))).collect(),
        read: req
            .reads
            .iter()
            .map(|p| (p.clone(), read_file(p)))
            .collect(),
        write: req
            .writes
            .iter()
            .map(|(p, data)| (p.clone(), write(p, data)))
            .collect(),
        errors,
    }
}

fn read_or(note: &mut impl FnMut(&str, io::Error), path: &str) -> Option<String> {
    fs::read_to_string(path).map_err(|e| note(path, e)).ok()
}

fn link(path: &str) -> Option<String> {
    fs::read_link(path)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

fn namespaces() -> BTreeMap<String, Option<u64>> {
    let mut map: BTreeMap<String, Option<u64>> =
        NAMESPACES.iter().map(|n| ((*n).to_owned(), None)).collect();
    if let Ok(dir) = fs::read_dir("/proc/self/ns") {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            map.insert(name, fs::metadata(entry.path()).ok().map(|m| m.ino()));
        }
    }
    map
}

/// Parses uid_map / gid_map rows.
pub fn id_map(text: &str) -> Vec<[u64; 3]> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace().map(|n| n.parse::<u64>().ok());
            Some([it.next()??, it.next()??, it.next()??])
        })
        .collect()
}

fn fds() -> Vec<Fd> {
    // Collect the numbers first so the directory's own descriptor is closed before the
    // readlinks; its number then no longer resolves and is left out.
    let numbers: Vec<i32> = fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut fds: Vec<Fd> = numbers
        .into_iter()
        .filter_map(|fd| {
            let target = link(&format!("/proc/self/fd/{fd}"))?;
            Some(Fd { fd, target })
        })
        .collect();
    fds.sort_by_key(|f| f.fd);
    fds
}

fn tty() -> Tty {
    let one = |fd| TtyFd {
        isatty: sys::isatty(fd),
        ttyname: sys::ttyname(fd).ok(),
        winsize: sys::winsize(fd).ok().map(|(r, c)| [r, c]),
    };
    // Field 7 of /proc/self/stat; the command name (field 2) may hold spaces, so count
    // from the closing parenthesis.
    let controlling = fs::read_to_string("/proc/self/stat").ok().and_then(|s| {
        let rest = &s[s.rfind(')')? + 1..];
        let tty_nr: u64 = rest.split_whitespace().nth(4)?.parse().ok()?;
        (tty_nr != 0).then(|| {
            let (ma, mi) = sys::major_minor(tty_nr);
            format!("{ma}:{mi}")
        })
    });
    Tty {
        stdin: one(0),
        stdout: one(1),
        stderr: one(2),
        controlling,
    }
}

/// `/proc/sys` path of a sysctl: `net.ipv4.ip_forward` or `net/ipv4/ip_forward`.
pub fn sysctl_path(name: &str) -> String {
    if name.starts_with('/') {
        return name.to_owned();
    }
    let rel = if name.contains('/') {
        name.to_owned()
    } else {
        name.replace('.', "/")
    };
    format!("/proc/sys/{rel}")
}

fn read_file(path: &str) -> Read {
    match fs::read(path) {
        Ok(bytes) => Read {
            content: Some(String::from_utf8_lossy(&bytes).into_owned()),
            outcome: Outcome::ok(),
        },
        Err(e) => Read {
            content: None,
            outcome: Outcome::from_io(&e),
        },
    }
}

fn stat(path: &str) -> Stat {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            return Stat {
                exists: false,
                errno: e.raw_os_error(),
                error: Some(sys::errno_name(&e)),
                ..Stat::default()
            }
        }
    };
    let ft = meta.file_type();
    let file_type = if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "socket"
    };
    let device = ft.is_char_device() || ft.is_block_device();
    let (major, minor) = sys::major_minor(meta.rdev());
    Stat {
        exists: true,
        file_type: Some(file_type.to_owned()),
        mode: Some(meta.mode() & 0o7777),
        uid: Some(meta.uid()),
        gid: Some(meta.gid()),
        size: Some(meta.size()),
        major: device.then_some(major),
        minor: device.then_some(minor),
        symlink_target: ft.is_symlink().then(|| link(path)).flatten(),
        ..Stat::default()
    }
}

/// Opens `path` for appending (creating it 0644 if missing) and writes `data`.
fn write(path: &str, data: &str) -> Outcome {
    let result = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)
        .and_then(|mut f| f.write_all(data.as_bytes()));
    Outcome::of(&result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_id_maps() {
        let rows = id_map("         0       1000          1\n  1 100000 65536\nbad\n");
        assert_eq!(rows, [[0, 1000, 1], [1, 100_000, 65536]]);
    }

    #[test]
    fn maps_sysctl_names_to_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward"),
            "/proc/sys/net/ipv4/ip_forward"
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.1/forwarding"),
            "/proc/sys/net/ipv4/conf/eth0.1/forwarding"
        );
        assert_eq!(
            sysctl_path("/proc/sys/kernel/shmmax"),
            "/proc/sys/kernel/shmmax"
        );
    }
}
