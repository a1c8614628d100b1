//! What touches the kernel besides [`crate::rtnl`] (links, addresses, routes):
//! `nft -f -` for the table, `/proc/sys/net` for sysctls, and network namespace
//! files (a thread unshares a namespace and bind-mounts it onto a file, or setns's
//! into one to run something there). No `unsafe`: nix wraps each call.

use std::fs::{self, File};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::cidr::Ipv4Cidr;
use crate::error::{io_err, NetError};
use crate::rtnl::Rtnl;

fn sys(action: String) -> impl FnOnce(Errno) -> NetError {
    move |source| NetError::Sys { action, source }
}

/// Runs `tool args…` with `input` on stdin; its stderr becomes the error.
fn pipe_to(tool: &'static str, args: &[&str], input: &str, what: &str) -> Result<(), NetError> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_err("running", tool))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(io_err("writing to", tool))?;
    }
    let out = child
        .wait_with_output()
        .map_err(io_err("waiting for", tool))?;
    if out.status.success() {
        return Ok(());
    }
    Err(NetError::Tool {
        tool,
        what: what.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

/// Deletes links of the calling thread's namespace, going on after a failure
/// (which is logged): for teardown. Each waits for the kernel's RCU grace
/// periods (~20 ms).
pub fn delete_links(names: &[String]) {
    if names.is_empty() {
        return;
    }
    let mut nl = match Rtnl::open() {
        Ok(nl) => nl,
        Err(e) => return tracing::warn!("{e}"),
    };
    for name in names {
        if let Err(e) = nl.del_link(name) {
            tracing::warn!("{e}");
        }
    }
}

/// Starts `tool args…` with `input` on stdin without waiting for it (its
/// output is discarded); with `lock`, the child inherits that fd, so the flock is
/// held until it exits.
pub fn spawn_detached(
    tool: &'static str,
    args: &[&str],
    input: &str,
    lock: Option<BorrowedFd<'_>>,
) -> Result<(), NetError> {
    if input.is_empty() {
        return Ok(());
    }
    let set = |flags: FdFlag| match lock {
        Some(fd) => fcntl(fd, FcntlArg::F_SETFD(flags))
            .map(drop)
            .map_err(sys(format!("passing the lock to {tool}"))),
        None => Ok(()),
    };
    set(FdFlag::empty())?;
    let child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    set(FdFlag::FD_CLOEXEC)?;
    let mut child = child.map_err(io_err("running", tool))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(io_err("writing to", tool))?;
    }
    Ok(()) // reaped by whoever inherits it (init, or a subreaper above us)
}

/// `nft -f -`.
pub fn nft_apply(script: &str) -> Result<(), NetError> {
    pipe_to("nft", &["-f", "-"], script, "replacing table inet berth")
}

/// Writes a sysctl under `/proc/sys/` (`net/ipv4/ip_forward`), for the calling
/// thread's network namespace.
pub fn sysctl(key: &str, value: &str) -> Result<(), NetError> {
    let path = Path::new("/proc/sys").join(key);
    fs::write(&path, value).map_err(io_err("writing", path))
}

/// Whether a link of that name exists in the calling thread's namespace.
pub fn link_exists(name: &str) -> bool {
    links().iter().any(|l| l == name)
}

/// The links of the calling thread's namespace (from `/proc/net/dev`).
pub fn links() -> Vec<String> {
    fs::read_to_string("/proc/thread-self/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_owned())
        .collect()
}

/// Makes `dir` a shared mount point (bound onto itself first if needed), as
/// `ip netns` does with /run/netns: unmounting a namespace file then reaches the
/// copies other mount namespaces took.
pub fn make_shared_dir(dir: &Path) -> Result<(), NetError> {
    let shared = || {
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) => {
            mount(
                Some(dir),
                dir,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys(format!("binding {} onto itself", dir.display())))?;
            shared().map_err(sys(format!("making {} shared", dir.display())))
        }
        Err(e) => Err(sys(format!("making {} shared", dir.display()))(e)),
    }
}

/// Creates a network namespace, kept alive by a bind mount on `path`; runs
/// `then` inside it (with `lo` and the sysctls to set, say).
pub fn create_netns(
    path: &Path,
    then: impl FnOnce() -> Result<(), NetError> + Send,
) -> Result<(), NetError> {
    File::create(path).map_err(io_err("creating", path))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET)
                .map_err(sys("creating a network namespace".into()))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(sys(format!(
                "binding the namespace onto {}",
                path.display()
            )))?;
            then()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetError::Invalid(
                "network namespace thread panicked".into(),
            ))
        })
    })
}

/// Runs `f` in a thread that has joined the network namespace at `path`.
pub fn in_netns<T: Send>(
    path: &Path,
    f: impl FnOnce() -> Result<T, NetError> + Send,
) -> Result<T, NetError> {
    let file = File::open(path).map_err(io_err("opening network namespace", path))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(file.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(sys(format!("joining network namespace {}", path.display())))?;
            f()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetError::Invalid(
                "network namespace thread panicked".into(),
            ))
        })
    })
}

/// Unmounts and removes a namespace file (nothing if it is not there).
pub fn remove_netns(path: &Path) -> Result<(), NetError> {
    match umount2(path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(sys(format!("unmounting {}", path.display()))(e)),
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("removing", path)(e)),
        _ => Ok(()),
    }
}

/// The IPv4 routes of the main routing table (in the calling thread's
/// namespace) but the default route, with their device's name (empty if none).
pub fn host_routes() -> Result<Vec<(Ipv4Cidr, String)>, NetError> {
    let mut nl = Rtnl::open()?;
    let names = nl.link_names()?;
    Ok(nl
        .main_routes()?
        .into_iter()
        .filter(|r| r.prefix > 0)
        .filter_map(|r| {
            let dev = names
                .iter()
                .find(|(i, _)| *i == r.dev)
                .map(|(_, n)| n.clone())
                .unwrap_or_default();
            Some((Ipv4Cidr::new(r.dst, r.prefix)?, dev))
        })
        .collect())
}
