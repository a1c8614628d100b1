//! `--isolation process`: the image's program as a plain process in the host's
//! namespaces: chrooted into the bundle's rootfs (with `/proc`, the host's `/dev`,
//! a read-only sysfs and the config's bind and tmpfs mounts under it, see
//! [`mounts`]), the config's env, user, groups, rlimits and cwd, and a cgroup
//! (`/berth/<id>`) with its memory, CPU and pids limits.
//!
//! State, so any later `berth` command can reach the process: `<state_root>/<id>/`
//! holds `state.json` (pid, start time, rootfs, cgroup; written atomically) and,
//! from create until start, `exec.fifo`, on which the forked child waits before
//! exec ([`child`]). `delete` kills what is left in the cgroup, removes it, takes
//! the mounts off the rootfs and removes the directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_container::sys::{proc_stat, process_alive};
use nix::errno::Errno;
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Spec};
use serde::{Deserialize, Serialize};

use super::{Backend, BackendError, Usage};

mod child;
mod mounts;

/// Why the process backend failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A file operation failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{action}")]
    Sys {
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// Mounting under the rootfs failed.
    #[error("mounting at {}: {errno}", dest.display())]
    Mount {
        /// The destination in the rootfs.
        dest: PathBuf,
        /// The cause.
        errno: Errno,
    },
    /// Resolving a destination in the rootfs failed.
    #[error(transparent)]
    Rootfs(#[from] berth_rootfs::RootfsError),
    /// The cgroup failed.
    #[error(transparent)]
    Cgroup(#[from] berth_cgroups::CgroupError),
    /// The forked child failed before exec.
    #[error("{stage}: {errno}")]
    Child {
        /// What it was doing.
        stage: &'static str,
        /// The cause.
        errno: Errno,
    },
    /// The config cannot be run as a process.
    #[error("config: {0}")]
    Config(String),
    /// The process is not running.
    #[error("process of {0} is not running")]
    NotRunning(String),
    /// Delete without force of a running process.
    #[error("process of {0} is still running")]
    Running(String),
}

impl ProcessError {
    fn sys(action: &'static str) -> impl FnOnce(Errno) -> Self {
        move |source| Self::Sys { action, source }
    }

    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}

/// `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    /// The process (0 while it is being created).
    pid: i32,
    /// Its start time (/proc/PID/stat field 22), to tell it from a reused pid.
    start_time: u64,
    /// The rootfs its mounts are under.
    rootfs: PathBuf,
    /// Its cgroup.
    cgroup_path: String,
}

impl State {
    fn alive(&self) -> bool {
        self.pid > 0 && process_alive(self.pid, self.start_time)
    }
}

/// The process backend, its state under `state_root`.
#[derive(Debug, Clone)]
pub struct ProcessBackend {
    state_root: PathBuf,
}

/// Only the limits a plain process can take (no device rules: it uses the host's /dev).
fn limits(spec: &Spec) -> LinuxResources {
    let mut limits = LinuxResources::default();
    if let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        limits.set_memory(*r.memory());
        limits.set_cpu(r.cpu().clone());
        limits.set_pids(*r.pids());
    }
    limits
}

fn open_pty() -> Result<(OwnedFd, PathBuf), ProcessError> {
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let flags =
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC;
    let master = posix_openpt(flags).map_err(ProcessError::sys("opening a pty"))?;
    grantpt(&master).map_err(ProcessError::sys("granting the pty"))?;
    unlockpt(&master).map_err(ProcessError::sys("unlocking the pty"))?;
    let slave = ptsname_r(&master).map_err(ProcessError::sys("naming the pty"))?;
    Ok((master.into(), slave.into()))
}

impl ProcessBackend {
    /// A backend keeping its state under `state_root`.
    pub fn new(state_root: impl Into<PathBuf>) -> Self {
        Self {
            state_root: state_root.into(),
        }
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.state_root.join(id)
    }

    fn load(&self, id: &str) -> Result<State, ProcessError> {
        let path = self.dir(id).join("state.json");
        let bytes = fs::read(&path).map_err(ProcessError::io("reading", &path))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ProcessError::io("parsing", &path)(std::io::Error::other(e)))
    }

    fn save(&self, id: &str, state: &State) -> Result<(), ProcessError> {
        let dir = self.dir(id);
        let (tmp, path) = (dir.join(".state.json.tmp"), dir.join("state.json"));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(state)?)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(ProcessError::io("writing", &path))
    }

    fn spec(bundle: &Path) -> Result<(Spec, PathBuf), ProcessError> {
        let path = bundle.join("config.json");
        let spec = Spec::load(&path).map_err(|e| ProcessError::Config(e.to_string()))?;
        let root = spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .ok_or_else(|| ProcessError::Config("no root".into()))?;
        Ok((spec, bundle.join(root)))
    }

    /// Creates the process, blocked before exec; with `tty`, on that pty slave.
    fn create_on(&self, id: &str, bundle: &Path, tty: Option<&Path>) -> Result<i32, ProcessError> {
        if id.is_empty() || id.contains('/') || id.starts_with('.') {
            return Err(ProcessError::Config(format!("bad id {id:?}")));
        }
        let (spec, rootfs) = Self::spec(bundle)?;
        let dir = self.dir(id);
        fs::create_dir(&dir).map_err(ProcessError::io("creating", &dir))?;
        let created = self.create_in(id, &spec, rootfs, tty);
        if created.is_err() {
            self.teardown(id);
        }
        created.map_err(|e| match e {
            ProcessError::Child {
                stage: "finding the executable",
                ..
            } => {
                let argv0 = spec.process().as_ref().and_then(|p| p.args().clone());
                let argv0 = argv0.and_then(|a| a.into_iter().next()).unwrap_or_default();
                ProcessError::Config(format!("executable {argv0:?} not found in the image"))
            }
            e => e,
        })
    }

    fn create_in(
        &self,
        id: &str,
        spec: &Spec,
        rootfs: PathBuf,
        tty: Option<&Path>,
    ) -> Result<i32, ProcessError> {
        let dir = self.dir(id);
        let mut state = State {
            pid: 0,
            start_time: 0,
            rootfs,
            cgroup_path: format!("/berth/{id}"),
        };
        self.save(id, &state)?;
        let fifo = dir.join("exec.fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600))
            .map_err(|e| ProcessError::io("making", &fifo)(e.into()))?;
        // The child opens it after taking the config's user (as runc's exec.fifo).
        fs::set_permissions(&fifo, fs::Permissions::from_mode(0o622))
            .map_err(ProcessError::io("making", &fifo))?;
        mounts::mount_all(spec, &state.rootfs)?;
        let cgroup = berth_cgroups::manager(&state.cgroup_path)?;
        cgroup.create()?;
        cgroup.apply(&limits(spec))?;
        let state_dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&dir)
            .map_err(ProcessError::io("opening", &dir))?;
        let plan = child::Plan::new(spec, &state.rootfs, Some(state_dir.into()), tty)?;
        let pid = child::spawn(&plan, |pid| Ok(cgroup.add_task(pid)?))?;
        state.pid = pid;
        state.start_time = proc_stat(pid).map(|s| s.start_time).unwrap_or(0);
        self.save(id, &state)?;
        Ok(pid)
    }

    /// Everything of `id` goes: its processes, cgroup, mounts and state. Best effort.
    fn teardown(&self, id: &str) {
        let dir = self.dir(id);
        if let Ok(state) = self.load(id) {
            if let Ok(cgroup) = berth_cgroups::manager(&state.cgroup_path) {
                let deadline = Instant::now() + Duration::from_secs(5);
                while cgroup.pids().is_ok_and(|p| !p.is_empty()) && Instant::now() < deadline {
                    let _ = cgroup.kill_all(libc::SIGKILL);
                    if state.pid > 0 {
                        // Ours when create failed or before wait: reap it.
                        let _ = waitpid(Pid::from_raw(state.pid), Some(WaitPidFlag::WNOHANG));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                if let Err(e) = cgroup.remove() {
                    tracing::warn!("removing the cgroup of {id}: {e}");
                }
            }
            crate::mounts::unmount_below(&state.rootfs);
        }
        if let Err(e) = fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("removing {}: {e}", dir.display());
            }
        }
    }

    fn start_inner(&self, id: &str) -> Result<(), ProcessError> {
        let state = self.load(id)?;
        let fifo_path = self.dir(id).join("exec.fifo");
        let fifo = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo_path)
            .map_err(ProcessError::io("opening", &fifo_path))?;
        loop {
            let mut byte = [0u8; 1];
            match nix::unistd::read(fifo.as_fd(), &mut byte) {
                Ok(1) => break,
                Ok(_) | Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => return Err(ProcessError::sys("reading exec.fifo")(e)),
            }
            if !state.alive() {
                return Err(ProcessError::NotRunning(id.to_owned()));
            }
            let mut fds = [nix::poll::PollFd::new(
                fifo.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10u8));
        }
        let _ = fs::remove_file(&fifo_path);
        Ok(())
    }

    fn kill_inner(&self, id: &str, signal: i32) -> Result<(), ProcessError> {
        let state = self.load(id)?;
        if !state.alive() {
            return Err(ProcessError::NotRunning(id.to_owned()));
        }
        let signal = nix::sys::signal::Signal::try_from(signal)
            .map_err(ProcessError::sys("naming the signal"))?;
        let pids = berth_cgroups::manager(&state.cgroup_path)
            .and_then(|c| c.pids())
            .unwrap_or_else(|_| vec![state.pid]);
        for pid in pids {
            match nix::sys::signal::kill(Pid::from_raw(pid), signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => return Err(ProcessError::sys("signalling")(e)),
            }
        }
        Ok(())
    }

    /// Runs `spec`'s process beside the running process of `id` (its rootfs and
    /// cgroup), in the foreground as [`Backend::run`] does; returns its exit code.
    pub fn exec(&self, id: &str, spec: &Spec) -> Result<i32, BackendError> {
        let state = self.load(id)?;
        if !state.alive() {
            return Err(ProcessError::NotRunning(id.to_owned()).into());
        }
        let cgroup = berth_cgroups::manager(&state.cgroup_path).map_err(ProcessError::from)?;
        let terminal = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
        let pty = terminal.then(open_pty).transpose()?;
        let tty = pty.as_ref().map(|(_, s)| s.as_path());
        let plan = child::Plan::new(spec, &state.rootfs, None, tty)?;
        let set = berth_container::run::block_forwarded()?;
        let spawned = child::spawn(&plan, |pid| Ok(cgroup.add_task(pid)?));
        let code = spawned.map_err(BackendError::from).and_then(|pid| {
            Ok(berth_container::run::supervise(
                pid,
                &set,
                pty.as_ref().map(|p| &p.0),
            )?)
        });
        let _ = nix::sys::signal::sigprocmask(
            nix::sys::signal::SigmaskHow::SIG_UNBLOCK,
            Some(&set),
            None,
        );
        code
    }

    fn cgroup(&self, id: &str) -> Result<Box<dyn berth_cgroups::CgroupManager>, ProcessError> {
        let state = self.load(id)?;
        if !state.alive() {
            return Err(ProcessError::NotRunning(id.to_owned()));
        }
        Ok(berth_cgroups::manager(&state.cgroup_path)?)
    }
}

impl Backend for ProcessBackend {
    fn create(&self, id: &str, bundle: &Path) -> Result<i32, BackendError> {
        Ok(self.create_on(id, bundle, None)?)
    }

    fn start(&self, id: &str) -> Result<(), BackendError> {
        Ok(self.start_inner(id)?)
    }

    fn wait(&self, _id: &str, pid: i32) -> Result<i32, BackendError> {
        loop {
            match waitpid(Pid::from_raw(pid), None) {
                Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                    return Ok(berth_container::run::exit_code(status).unwrap_or(1));
                }
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(source) => return Err(BackendError::Wait { pid, source }),
            }
        }
    }

    fn kill(&self, id: &str, signal: i32) -> Result<(), BackendError> {
        Ok(self.kill_inner(id, signal)?)
    }

    fn delete(&self, id: &str, force: bool) -> Result<(), BackendError> {
        if !self.exists(id) {
            return Ok(());
        }
        if !force && self.load(id).is_ok_and(|s| s.alive()) {
            return Err(ProcessError::Running(id.to_owned()).into());
        }
        self.teardown(id);
        Ok(())
    }

    fn exists(&self, id: &str) -> bool {
        !id.is_empty() && self.dir(id).is_dir()
    }

    fn pids(&self, id: &str) -> Result<Vec<i32>, BackendError> {
        let mut pids = self.cgroup(id)?.pids().map_err(ProcessError::from)?;
        pids.sort_unstable();
        Ok(pids)
    }

    fn usage(&self, id: &str) -> Result<Usage, BackendError> {
        let stats = self.cgroup(id)?.stats().map_err(ProcessError::from)?;
        Ok(Usage::from_cgroup(&stats))
    }

    /// Create and start in the foreground: signals are forwarded to the process and,
    /// when the config asks for a terminal, a pty is relayed (berth-container's
    /// `supervise`).
    fn run(&self, id: &str, bundle: &Path) -> Result<i32, BackendError> {
        let (spec, _) = Self::spec(bundle)?;
        let terminal = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
        let pty = terminal.then(open_pty).transpose()?;
        let pid = self.create_on(id, bundle, pty.as_ref().map(|(_, s)| s.as_path()))?;
        let supervised = berth_container::run::block_forwarded()
            .map_err(BackendError::from)
            .and_then(|set| {
                self.start(id)?;
                let code = berth_container::run::supervise(pid, &set, pty.as_ref().map(|p| &p.0));
                let _ = nix::sys::signal::sigprocmask(
                    nix::sys::signal::SigmaskHow::SIG_UNBLOCK,
                    Some(&set),
                    None,
                );
                Ok(code?)
            });
        match supervised {
            Ok(code) => {
                self.delete(id, true)?;
                Ok(code)
            }
            Err(e) => {
                let _ = self.delete(id, true);
                Err(e)
            }
        }
    }
}
