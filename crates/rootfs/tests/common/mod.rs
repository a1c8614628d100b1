//! Harness for the real-kernel tests: each test runs its container side in a fresh
//! process (the test binary again, `--exact <name>`) that starts in its own mount
//! namespace (and optionally user namespace), so nothing leaks to the host.

#![allow(dead_code)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_rootfs::mountinfo::{self, MountInfo};
use berth_rootfs::RootfsOptions;
use oci_spec::runtime::Spec;
use tempfile::TempDir;

const CHILD_ENV: &str = "BERTH_ROOTFS_TEST_DIR";

/// Namespaces the child starts in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Ns {
    /// A new mount namespace (made rslave).
    Mount,
    /// A new mount namespace where the rootfs and bundle/hostdata were remounted
    /// nosuid,nodev,noexec, then a new user namespace (0 → 0) with its own mount
    /// namespace, so those flags are locked.
    User,
}

/// The test directory, when running as the child.
pub fn child_dir() -> Option<PathBuf> {
    std::env::var_os(CHILD_ENV).map(PathBuf::from)
}

/// A fresh test directory with `bundle/rootfs` (busybox, a few dirs), `bundle/hostdata`
/// and `outside`; `None` (after a loud SKIP) when not root.
pub fn setup() -> Option<TempDir> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: needs root");
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("berth-rootfs-")
        .tempdir()
        .unwrap();
    let rootfs = rootfs(dir.path());
    for sub in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(sub)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::fs::create_dir_all(dir.path().join("bundle/hostdata")).unwrap();
    std::fs::write(dir.path().join("bundle/hostdata/hello"), "hi").unwrap();
    std::fs::create_dir_all(dir.path().join("outside")).unwrap();
    std::fs::write(dir.path().join("marker"), "marker").unwrap();
    Some(dir)
}

pub fn bundle(dir: &Path) -> PathBuf {
    dir.join("bundle")
}

pub fn rootfs(dir: &Path) -> PathBuf {
    dir.join("bundle/rootfs")
}

pub fn outside(dir: &Path) -> PathBuf {
    dir.join("outside")
}

pub fn options<'a>(rootfs: &'a Path, bundle: &'a Path) -> RootfsOptions<'a> {
    RootfsOptions {
        rootfs,
        bundle,
        no_pivot: false,
        in_user_ns: false,
        in_cgroup_ns: false,
    }
}

/// Run `test` (this binary's test of that name) as the child; panic if it failed.
pub fn run_child(test: &str, dir: &Path, ns: Ns) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir);
    let locked = [rootfs(dir), bundle(dir).join("hostdata")]
        .map(|p| CString::new(p.as_os_str().as_bytes()).unwrap());
    // SAFETY: the closure only makes syscalls on pre-built C strings (no allocation
    // beyond what nix does for short paths on the stack) between fork and exec.
    unsafe {
        cmd.pre_exec(move || enter_namespaces(ns, &locked));
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "--- child {test} stdout ---\n{stdout}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "child {test} failed: {:?}",
        out.status
    );
    assert!(
        stdout.contains("1 passed"),
        "child {test} did not run the test"
    );
}

fn enter_namespaces(ns: Ns, locked: &[CString; 2]) -> std::io::Result<()> {
    use nix::mount::{mount, MsFlags};
    use nix::sched::{unshare, CloneFlags};
    unshare(CloneFlags::CLONE_NEWNS)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )?;
    if ns == Ns::Mount {
        return Ok(());
    }
    for path in locked {
        let path = path.as_c_str();
        mount(
            Some(path),
            path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )?;
        let flags = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC;
        mount(None::<&str>, path, None::<&str>, flags, None::<&str>)?;
    }
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)?;
    write_proc(c"/proc/self/setgroups", b"deny")?;
    write_proc(c"/proc/self/uid_map", b"0 0 1")?;
    write_proc(c"/proc/self/gid_map", b"0 0 1")
}

fn write_proc(path: &std::ffi::CStr, data: &[u8]) -> std::io::Result<()> {
    // SAFETY: `path` is NUL-terminated; the fd is closed before returning.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `data` is a live buffer of `data.len()` bytes; `fd` is open.
    let written = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    // SAFETY: `fd` is open and owned here.
    unsafe { libc::close(fd) };
    if written < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A spec from JSON (with ociVersion added).
pub fn spec(mut json: serde_json::Value) -> Spec {
    json["ociVersion"] = "1.2.0".into();
    serde_json::from_value(json).unwrap()
}

/// The topmost mount at `path`; panics with the mount table when there is none.
pub fn mount_at(path: impl AsRef<Path>) -> MountInfo {
    let path = path.as_ref();
    let mounts = mountinfo::read().unwrap();
    mounts
        .iter()
        .rev()
        .find(|m| m.mount_point == path)
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no mount at {}; mounts: {:#?}",
                path.display(),
                points(&mounts)
            )
        })
}

/// Whether anything is mounted at `path`.
pub fn is_mount_point(path: impl AsRef<Path>) -> bool {
    mountinfo::read()
        .unwrap()
        .iter()
        .any(|m| m.mount_point == path.as_ref())
}

fn points(mounts: &[MountInfo]) -> Vec<&Path> {
    mounts.iter().map(|m| m.mount_point.as_path()).collect()
}

/// Assert the mount has every option in `options` (per-mount or superblock).
pub fn assert_options(mount: &MountInfo, options: &[&str]) {
    for option in options {
        let found = mount.has_option(option) || mount.super_options.iter().any(|o| o == option);
        assert!(
            found,
            "{} lacks {option}: {:?} / {:?}",
            mount.mount_point.display(),
            mount.options,
            mount.super_options
        );
    }
}

/// `rootfs` joined with an absolute host path (where IN_ROOT resolution puts it).
pub fn inside(rootfs: &Path, host_path: &Path) -> PathBuf {
    rootfs.join(host_path.strip_prefix("/").unwrap())
}

/// (kind bits, major, minor, permission bits) of `path` (not following symlinks).
pub fn node(path: impl AsRef<Path>) -> (u32, u64, u64, u32) {
    let st = nix::sys::stat::lstat(path.as_ref()).unwrap();
    let rdev = st.st_rdev;
    (
        st.st_mode & libc::S_IFMT,
        nix::sys::stat::major(rdev),
        nix::sys::stat::minor(rdev),
        st.st_mode & 0o7777,
    )
}

/// The errno of a failed io operation.
pub fn errno_of<T: std::fmt::Debug>(result: std::io::Result<T>) -> i32 {
    result
        .expect_err("operation should fail")
        .raw_os_error()
        .unwrap()
}
