//! Container operations by id: status, start, state, list, kill, delete (`create` is
//! in `create.rs`, `run` in `run.rs`, `exec` in `exec.rs`).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

use oci_spec::runtime::Spec;
use serde::Serialize;

use crate::error::ContainerError;
use crate::state::{self, ContainerDir, Phase, State};
use crate::{hooks, id, spec, sys};

/// The runtime-spec version we implement.
pub const OCI_VERSION: &str = "1.2.0";

/// A container's status as the OCI state reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
    pub fn can_start(self) -> bool {
        self == Status::Created
    }
    pub fn can_kill(self) -> bool {
        matches!(self, Status::Created | Status::Running | Status::Paused)
    }
    pub fn can_delete(self) -> bool {
        matches!(self, Status::Created | Status::Stopped)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state `berth-runtime state` prints (OCI state plus runc's extra fields).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    pub pid: i32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

/// Options for `create` (and the create half of `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    /// An already connected console socket (used by foreground `run` to get the pty
    /// itself); takes the place of `console_socket`.
    pub console_fd: Option<std::sync::Arc<OwnedFd>>,
    /// The container lives no longer than the command that creates it (a
    /// foreground `run`): its state is written atomically but not fsynced, since a
    /// machine crash ends it anyway.
    pub transient: bool,
}

/// The runtime: every operation works on containers under `root`.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub root: PathBuf,
}

/// The state JSON given to hooks.
pub(crate) fn hook_state_json(st: &State, status: Status) -> String {
    serde_json::to_string(&to_oci(st, status)).expect("state serialises")
}

fn to_oci(st: &State, status: Status) -> OciState {
    OciState {
        oci_version: st.oci_version.clone(),
        id: st.id.clone(),
        status,
        pid: if status == Status::Stopped { 0 } else { st.pid },
        bundle: st.bundle.clone(),
        rootfs: st.rootfs.clone(),
        created: st.created.clone(),
        owner: String::new(),
        annotations: st.annotations.clone(),
    }
}

pub(crate) fn default_cgroup_path(spec: &Spec, id: &str) -> String {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
    {
        Some(p) if p.is_absolute() => p.display().to_string(),
        Some(p) if !p.as_os_str().is_empty() => format!("/{}", p.display()),
        _ => format!("/berth/{id}"),
    }
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub(crate) fn open(&self, id: &str) -> Result<ContainerDir, ContainerError> {
        id::validate(id)?;
        Ok(ContainerDir::open(&self.root, id)?)
    }

    /// The status of a container from its stored state and the live system.
    pub fn status_of(&self, dir: &ContainerDir, st: &State) -> Status {
        let alive = sys::process_alive(st.pid, st.pid_start_time);
        match (st.phase, alive) {
            (Phase::Creating, true) => Status::Creating,
            (_, false) => Status::Stopped,
            (Phase::Created, true) if dir.fifo_path().exists() => Status::Created,
            (Phase::Created, true) => {
                match berth_cgroups::manager(&st.cgroup_path).and_then(|cg| cg.freezer_state()) {
                    Ok(berth_cgroups::FreezerState::Frozen) => Status::Paused,
                    _ => Status::Running,
                }
            }
        }
    }

    /// Start a created container: release its init through the exec FIFO.
    pub fn start(&self, id: &str) -> Result<(), ContainerError> {
        let dir = self.open(id)?;
        let st = dir.load()?;
        let status = self.status_of(&dir, &st);
        if !status.can_start() {
            return Err(bad_status(
                id,
                status,
                "only a created container can be started",
            ));
        }
        release_init(&dir, &st)?;
        let spec = load_saved_spec(&dir)?;
        if let Some(list) = spec.hooks().as_ref().and_then(|h| h.poststart().clone()) {
            let json = hook_state_json(&st, Status::Running);
            if let Err(e) = hooks::run_all("poststart", &list, &json) {
                tracing::warn!("{e}");
            }
        }
        Ok(())
    }

    /// The OCI state of a container.
    pub fn state(&self, id: &str) -> Result<OciState, ContainerError> {
        let dir = self.open(id)?;
        let st = dir.load()?;
        let status = self.status_of(&dir, &st);
        Ok(to_oci(&st, status))
    }

    /// Every container under the root.
    pub fn list(&self) -> Result<Vec<OciState>, ContainerError> {
        let mut out = Vec::new();
        for id in state::list_ids(&self.root)? {
            match self.state(&id) {
                Ok(s) => out.push(s),
                Err(ContainerError::State(state::StateError::NotFound(_))) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Send `signal` to the container's init, or with `all` to every process in it.
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), ContainerError> {
        let dir = self.open(id)?;
        let st = dir.load()?;
        let status = self.status_of(&dir, &st);
        if !status.can_kill() {
            return Err(bad_status(id, status, "container not running"));
        }
        if all {
            let cg = berth_cgroups::manager(&st.cgroup_path)?;
            cg.kill_all(signal)?;
            return Ok(());
        }
        let fd = sys::pidfd_open(st.pid)
            .map_err(|e| ContainerError::sys("opening the init's pidfd", e))?;
        sys::pidfd_send_signal(&fd, signal).map_err(|e| {
            ContainerError::sys(format!("sending signal {signal} to pid {}", st.pid), e)
        })
    }

    /// Delete a container: with `force`, kill it first if it runs.
    pub fn delete(&self, id: &str, force: bool) -> Result<(), ContainerError> {
        let dir = self.open(id)?;
        let st = match dir.load() {
            Ok(st) => st,
            // A directory without a readable state is debris of a crashed create.
            Err(state::StateError::Corrupt { .. }) | Err(state::StateError::NotFound(_)) => {
                dir.remove()?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let status = self.status_of(&dir, &st);
        if !status.can_delete() && !force {
            return Err(bad_status(
                id,
                status,
                "cannot delete a container that is not stopped (use --force)",
            ));
        }
        self.destroy(dir, &st, status)
    }

    /// Kill what is left, remove the cgroup, run poststop hooks, remove the state.
    fn destroy(&self, dir: ContainerDir, st: &State, status: Status) -> Result<(), ContainerError> {
        let cg = berth_cgroups::manager(&st.cgroup_path)?;
        if status == Status::Paused {
            let _ = cg.freeze(berth_cgroups::FreezerState::Thawed);
        }
        if status != Status::Stopped {
            if let Ok(fd) = sys::pidfd_open(st.pid) {
                let _ = sys::pidfd_send_signal(&fd, libc::SIGKILL);
                sys::pidfd_wait_exit(&fd, Duration::from_secs(10));
            }
        }
        let _ = cg.kill_all(libc::SIGKILL);
        cg.remove()?;
        if let Ok(spec) = load_saved_spec(&dir) {
            if let Some(list) = spec.hooks().as_ref().and_then(|h| h.poststop().clone()) {
                let json = hook_state_json(st, Status::Stopped);
                if let Err(e) = hooks::run_all("poststop", &list, &json) {
                    tracing::warn!("{e}");
                }
            }
        }
        dir.remove()?;
        Ok(())
    }

    /// Delete after a foreground run: the init is gone already.
    pub fn delete_stopped(&self, id: &str) -> Result<(), ContainerError> {
        let dir = self.open(id)?;
        let st = dir.load()?;
        let status = self.status_of(&dir, &st);
        self.destroy(dir, &st, status)
    }
}

pub(crate) fn bad_status(id: &str, status: Status, action: &str) -> ContainerError {
    ContainerError::BadStatus {
        id: id.to_string(),
        status: status.to_string(),
        action: action.to_string(),
    }
}

pub(crate) fn load_saved_spec(dir: &ContainerDir) -> Result<Spec, ContainerError> {
    let path = dir.config_path();
    let file = File::open(&path).map_err(|source| ContainerError::Io {
        action: "reading",
        path: path.clone(),
        source,
    })?;
    Ok(spec::parse(std::io::BufReader::new(file), &path)?)
}

/// Open the exec FIFO for reading (which lets the init's open for writing return),
/// wait for its byte while checking the init is still alive, then for the end of file
/// (the init's close-on-exec write end closes when it execs, or when it exits), so
/// poststart hooks run after the process has started; then remove the FIFO.
fn release_init(dir: &ContainerDir, st: &State) -> Result<(), ContainerError> {
    // The pidfd first: once the FIFO is open the process may run, exit and be reaped
    // (by a subreaper such as containerd's shim) before we look.
    let pidfd = sys::pidfd_open(st.pid).map_err(|e| match e {
        nix::Error::ESRCH => ContainerError::Init("the init exited before it was started".into()),
        e => ContainerError::sys("opening the init's pidfd", e),
    })?;
    let path = dir.fifo_path();
    let mut fifo = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|source| ContainerError::Io {
            action: "opening",
            path: path.clone(),
            source,
        })?;
    let mut got_byte = false;
    loop {
        let mut fds = [
            nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&fifo),
                nix::poll::PollFlags::POLLIN,
            ),
            nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&pidfd),
                nix::poll::PollFlags::POLLIN,
            ),
        ];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(ContainerError::sys("waiting on the exec fifo", e)),
            Ok(_) => {}
        }
        let fifo_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let init_gone = fds[1].revents().is_some_and(|r| !r.is_empty());
        if fifo_ready {
            let mut byte = [0u8; 1];
            match fifo.read(&mut byte) {
                Ok(1) => {
                    got_byte = true;
                    continue;
                }
                Ok(_) if got_byte => break,
                Ok(_) => {
                    return Err(ContainerError::Init(
                        "the init closed the exec fifo without starting".into(),
                    ))
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(source) => {
                    return Err(ContainerError::Io {
                        action: "reading",
                        path,
                        source,
                    })
                }
            }
        }
        if init_gone && got_byte {
            break;
        }
        if init_gone {
            return Err(ContainerError::Init(
                "the init exited before it was started".into(),
            ));
        }
    }
    std::fs::remove_file(&path).map_err(|source| ContainerError::Io {
        action: "removing",
        path,
        source,
    })
}
