//! Leaving the host as the test found it: lazy unmounts, killing leftover processes,
//! removing leftover cgroups and temp dirs. Everything here is best effort and never
//! panics, because it runs from `Drop` (possibly while a failed test unwinds).

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use super::bundle::TOKEN_ENV;

/// Prefix of every temp dir the harness makes.
const TEMP_PREFIX: &str = "berth-test-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A token unique to this test: `bt<pid>-<n>`. It names the temp dir, the container ids
/// from [`super::Runtime::id`] and the cgroup path, and marks the processes.
pub fn new_token() -> String {
    // Before this process makes anything of its own (see `sweep_stale`).
    sweep_stale();
    format!(
        "bt{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Where temp dirs go: `$BERTH_TEST_TMPDIR` or the system temp dir.
fn temp_base() -> PathBuf {
    let base = std::env::var_os("BERTH_TEST_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    fs::create_dir_all(&base).ok();
    base.canonicalize().unwrap_or(base)
}

/// Creates `<temp>/berth-test-<fresh token>-<what>`.
pub fn make_temp_dir(what: &str) -> PathBuf {
    make_temp_dir_for(&new_token(), what)
}

/// Creates `<temp>/berth-test-<token>-<what>`.
pub fn make_temp_dir_for(token: &str, what: &str) -> PathBuf {
    let dir = temp_base().join(format!("{TEMP_PREFIX}{token}-{what}"));
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// Unmounts everything under `dir`, then removes it — unless something is still mounted
/// there, in which case it is left alone rather than risk deleting through a mount.
pub fn remove_tree(dir: &Path) {
    if !dir.exists() {
        return;
    }
    let left = unmount_under(dir);
    if !left.is_empty() {
        eprintln!(
            "berth test cleanup: not removing {}: still mounted: {left:?}",
            dir.display()
        );
        return;
    }
    if let Err(e) = fs::remove_dir_all(dir) {
        eprintln!("berth test cleanup: removing {}: {e}", dir.display());
    }
}

/// Mount points of this mount namespace as (mount point, fstype, root).
pub fn mounts() -> Vec<(PathBuf, String, String)> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            let root = unescape(f.get(3)?);
            Some((
                PathBuf::from(unescape(f.get(4)?)),
                f.get(dash + 1)?.to_string(),
                root,
            ))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let Some(d) = oct {
            out.push(((d[0] - b'0') << 6) | ((d[1] - b'0') << 3) | (d[2] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lazily unmounts every mount at or below `dir` (deepest first, repeated for stacked
/// mounts); returns what is still mounted afterwards.
pub fn unmount_under(dir: &Path) -> Vec<PathBuf> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let under = || -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = mounts()
            .into_iter()
            .map(|(p, _, _)| p)
            .filter(|p| p.starts_with(&dir))
            .collect();
        v.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        v
    };
    for _ in 0..8 {
        let list = under();
        if list.is_empty() {
            break;
        }
        for p in list {
            let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
                continue;
            };
            // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
    under()
}

/// Whether process `pid` is gone (or a zombie, which holds nothing).
fn dead(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_none_or(|state| state == "Z" || state == "X"),
    }
}

/// SIGKILLs `pids` and waits (up to 5 s) until they are gone.
pub fn kill_and_wait(pids: &BTreeSet<i32>) {
    let me = std::process::id() as i32;
    for &pid in pids.iter().filter(|&&p| p > 1 && p != me) {
        // SAFETY: kill takes no pointers; a stale pid at worst gives ESRCH.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !pids.iter().all(|&p| p == me || dead(p)) {
        thread::sleep(Duration::from_millis(10));
    }
}

/// Processes whose environment holds `BERTH_TEST_TOKEN=<t>` with `matches(t)`.
pub fn marked_processes(matches: impl Fn(&str) -> bool) -> BTreeSet<i32> {
    let me = std::process::id() as i32;
    let prefix = format!("{TOKEN_ENV}=");
    let mut found = BTreeSet::new();
    let Ok(proc_dir) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in proc_dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(env) = fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let marked = env.split(|&b| b == 0).any(|kv| {
            std::str::from_utf8(kv)
                .ok()
                .and_then(|kv| kv.strip_prefix(&prefix))
                .is_some_and(&matches)
        });
        if marked {
            found.insert(pid);
        }
    }
    found
}

/// Mount points of the cgroup hierarchies (v1 and v2).
pub fn cgroup_mounts() -> Vec<PathBuf> {
    mounts()
        .into_iter()
        .filter(|(_, fstype, _)| fstype == "cgroup" || fstype == "cgroup2")
        .map(|(p, _, _)| p)
        .collect()
}

/// Cgroup directories (under every hierarchy, at most 8 deep) whose name `matches`;
/// matched directories are not descended into.
pub fn find_cgroups(matches: &impl Fn(&str) -> bool) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: u32, matches: &impl Fn(&str) -> bool, out: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = e.path();
            if matches(&e.file_name().to_string_lossy()) {
                out.push(path);
            } else if depth < 8 {
                walk(&path, depth + 1, matches, out);
            }
        }
    }
    let mut out = Vec::new();
    for m in cgroup_mounts() {
        walk(&m, 0, matches, &mut out);
    }
    out
}

/// Removes a cgroup and its descendants: thaws them, kills their processes, rmdirs
/// bottom-up; then removes an emptied `berth-test` parent.
pub fn remove_cgroup_tree(top: &Path) {
    let mut all = vec![top.to_path_buf()];
    let mut i = 0;
    while i < all.len() {
        if let Ok(rd) = fs::read_dir(&all[i]) {
            let subdirs = rd
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path());
            all.extend(subdirs);
        }
        i += 1;
    }
    // A frozen task cannot die, so thaw top-down first.
    for cg in &all {
        let _ = fs::write(cg.join("freezer.state"), "THAWED");
        let _ = fs::write(cg.join("cgroup.freeze"), "0");
    }
    for cg in all.iter().rev() {
        for _ in 0..50 {
            let procs: BTreeSet<i32> = fs::read_to_string(cg.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            if procs.is_empty() {
                break;
            }
            kill_and_wait(&procs);
        }
        for _ in 0..50 {
            if fs::remove_dir(cg).is_ok() || !cg.exists() {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        if cg.exists() {
            eprintln!(
                "berth test cleanup: could not remove cgroup {}",
                cg.display()
            );
        }
    }
    if let Some(parent) = top.parent().filter(|p| p.ends_with("berth-test")) {
        let _ = fs::remove_dir(parent); // fails harmlessly while other tests use it
    }
}

/// Whether `name` contains `token` as a whole (`bt1-1` is not in `bt1-10`).
pub fn has_token(name: &str, token: &str) -> bool {
    name.match_indices(token)
        .any(|(i, _)| !name[i + token.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// The pid inside a token-bearing name (`...bt<pid>-<n>...`), if any.
pub fn token_pid(name: &str) -> Option<i32> {
    name.match_indices("bt").find_map(|(i, _)| {
        let rest = &name[i + 2..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let after = rest[digits..].strip_prefix('-')?;
        let n = after.bytes().take_while(u8::is_ascii_digit).count();
        (digits > 0 && n > 0).then(|| rest[..digits].parse().ok())?
    })
}

/// Once per test process, before its first token: removes what earlier, killed test runs
/// left behind (their tokens carry a pid that is dead now, or is ours: this process has
/// made nothing yet, so a token with its pid is from a dead process whose pid was reused).
pub fn sweep_stale() {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        let me = std::process::id() as i32;
        let stale = |name: &str| token_pid(name).is_some_and(|p| p == me || dead(p));
        kill_and_wait(&marked_processes(stale));
        for cg in find_cgroups(&stale) {
            remove_cgroup_tree(&cg);
        }
        if let Ok(rd) = fs::read_dir(temp_base()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(TEMP_PREFIX) && stale(&name) {
                    remove_tree(&e.path());
                }
            }
        }
    });
}
