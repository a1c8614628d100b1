//! Container operations by id: create, start, state, kill, delete, list, run.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::stat::Mode;
use nix::unistd::mkfifo;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::Serialize;

use crate::error::ContainerError;
use crate::namespaces::Namespaces;
use crate::process::{parent, InitConfig};
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

    /// Create a container; returns the init's pid. On failure nothing is left behind.
    pub fn create(&self, opts: &CreateOptions) -> Result<i32, ContainerError> {
        id::validate(&opts.id)?;
        let loaded = spec::load(&opts.bundle)?;
        self.create_loaded(opts, &loaded)
    }

    /// Create from an already loaded and checked bundle.
    pub(crate) fn create_loaded(
        &self,
        opts: &CreateOptions,
        loaded: &spec::LoadedSpec,
    ) -> Result<i32, ContainerError> {
        id::validate(&opts.id)?;
        if let Some(res) = loaded
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
        {
            berth_cgroups::validate(res)?;
        }
        let dir = ContainerDir::create(&self.root, &opts.id)?;
        let mut init_pid = None;
        let cgroup_path = default_cgroup_path(&loaded.spec, &opts.id);
        let result = self.create_in(&dir, loaded, &cgroup_path, opts, &mut init_pid);
        if result.is_err() {
            self.undo_create(dir, init_pid, &cgroup_path);
        }
        result
    }

    fn undo_create(&self, dir: ContainerDir, init_pid: Option<i32>, cgroup_path: &str) {
        if let Some(pid) = init_pid {
            if let Ok(fd) = sys::pidfd_open(pid) {
                let _ = sys::pidfd_send_signal(&fd, libc::SIGKILL);
                sys::pidfd_wait_exit(&fd, Duration::from_secs(5));
            }
        }
        if let Ok(cg) = berth_cgroups::manager(cgroup_path) {
            let _ = cg.kill_all(libc::SIGKILL);
            let _ = cg.remove();
        }
        let _ = dir.remove();
    }

    fn create_in(
        &self,
        dir: &ContainerDir,
        loaded: &spec::LoadedSpec,
        cgroup_path: &str,
        opts: &CreateOptions,
        init_pid: &mut Option<i32>,
    ) -> Result<i32, ContainerError> {
        let spec = &loaded.spec;
        dir.save_config(&loaded.raw)?;
        let namespaces = Namespaces::from_spec(spec);
        let mut st = creating_state(&opts.id, loaded, cgroup_path);
        dir.save_transient(&st)?;
        make_fifo(&dir.fifo_path())?;
        let cgroup = berth_cgroups::manager(cgroup_path)?;
        cgroup.create()?;
        cgroup.apply(&create_resources(spec))?;
        let console = self.connect_console(spec, opts)?;
        let joins = namespaces.open_joins()?;
        let state_dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&dir.path)
            .map_err(|source| ContainerError::Io {
                action: "opening",
                path: dir.path.clone(),
                source,
            })?;
        let seccomp = std::cell::RefCell::new(compile_seccomp(spec)?);
        let cfg = InitConfig {
            id: &opts.id,
            spec,
            bundle: &loaded.bundle,
            rootfs: &loaded.rootfs,
            namespaces: &namespaces,
            joins: &joins,
            no_pivot: opts.no_pivot,
            console_socket: console.as_ref().map(|c| c.as_raw_fd()),
            preserve_fds: opts.preserve_fds,
            state_dir: &state_dir,
            lock_fd: dir.dir_file().as_raw_fd(),
            cgroup_path,
            seccomp: &seccomp,
        };
        let st_for_hooks = st.clone();
        let run_create_hooks = |pid: i32| -> Result<String, ContainerError> {
            let mut s = st_for_hooks.clone();
            s.pid = pid;
            let json = hook_state_json(&s, Status::Creating);
            parent::run_runtime_hooks(spec, &json)?;
            Ok(json)
        };
        let place = |pid: i32| -> Result<(), ContainerError> { Ok(cgroup.add_task(pid)?) };
        let forward = |pid: i32, fd: i32| -> Result<(), ContainerError> {
            let mut s = st_for_hooks.clone();
            s.pid = pid;
            parent::forward_notify_fd(spec, pid, fd, &hook_state_json(&s, Status::Creating))
        };
        let clone_into = open_clone_into(&*cgroup)?;
        let hooks = parent::ParentHooks {
            run_create_hooks: &run_create_hooks,
            place_in_cgroup: &place,
            forward_notify_fd: &forward,
            clone_into: clone_into.as_ref().map(std::os::fd::AsFd::as_fd),
        };
        let pid = parent::spawn(&cfg, &hooks, &mut |p| *init_pid = Some(p))?;
        drop(console);
        mark_created(&mut st, pid)?;
        dir.save(&st)?;
        if let Some(pid_file) = &opts.pid_file {
            state::write_atomic(pid_file, pid.to_string().as_bytes(), 0o644)?;
        }
        Ok(pid)
    }

    fn connect_console(
        &self,
        spec: &Spec,
        opts: &CreateOptions,
    ) -> Result<Option<OwnedFd>, ContainerError> {
        let terminal = spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        if let (Some(fd), true) = (&opts.console_fd, terminal) {
            let dup = fd
                .try_clone()
                .map_err(|e| ContainerError::Unsupported(format!("duplicating console fd: {e}")))?;
            return Ok(Some(dup));
        }
        match (&opts.console_socket, terminal) {
            (Some(path), true) => {
                let stream = UnixStream::connect(path).map_err(|source| ContainerError::Io {
                    action: "connecting to console socket",
                    path: path.clone(),
                    source,
                })?;
                Ok(Some(stream.into()))
            }
            (None, true) => Err(ContainerError::Unsupported(
                "process.terminal is true: pass --console-socket (or set terminal to false)".into(),
            )),
            (Some(_), false) => Err(ContainerError::Unsupported(
                "--console-socket given but process.terminal is false".into(),
            )),
            (None, false) => Ok(None),
        }
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

fn make_fifo(path: &Path) -> Result<(), ContainerError> {
    mkfifo(path, Mode::from_bits_truncate(0o622))
        .map_err(|e| ContainerError::sys(format!("creating fifo {}", path.display()), e))?;
    // mkfifo honours the umask: make sure a non-root container user can write it.
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        path,
        Mode::from_bits_truncate(0o622),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| ContainerError::sys(format!("chmod fifo {}", path.display()), e))
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
    let pidfd =
        sys::pidfd_open(st.pid).map_err(|e| ContainerError::sys("opening the init's pidfd", e))?;
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

/// The resources applied at create: the spec's, with device rules always present so
/// that the default allow-list (runc's) is installed even when the spec has none.
pub(crate) fn create_resources(spec: &Spec) -> oci_spec::runtime::LinuxResources {
    let mut res = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    if res.devices().is_none() {
        res.set_devices(Some(Vec::new()));
    }
    res
}

/// Compile `linux.seccomp` (a bad profile fails here, before the fork).
pub(crate) fn compile_seccomp(
    spec: &Spec,
) -> Result<Option<berth_seccomp::Filter>, ContainerError> {
    match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(seccomp) => Ok(Some(berth_seccomp::compile(seccomp)?)),
        None => Ok(None),
    }
}

/// On a pure cgroup2 host, the container's cgroup directory opened for
/// clone3(CLONE_INTO_CGROUP).
pub(crate) fn open_clone_into(
    cgroup: &dyn berth_cgroups::CgroupManager,
) -> Result<Option<File>, ContainerError> {
    let Some(dir) = cgroup.clone_into_dir() else {
        return Ok(None);
    };
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(&dir)
        .map(Some)
        .map_err(|source| ContainerError::Io {
            action: "opening cgroup",
            path: dir,
            source,
        })
}

/// The record of a container being created: the creating command's pid stands in for
/// the init until there is one (so a crashed create reads as stopped).
pub(crate) fn creating_state(id: &str, loaded: &spec::LoadedSpec, cgroup_path: &str) -> State {
    let me = std::process::id() as i32;
    State {
        oci_version: OCI_VERSION.into(),
        id: id.to_string(),
        phase: Phase::Creating,
        pid: me,
        pid_start_time: sys::proc_stat(me).map(|s| s.start_time).unwrap_or(0),
        bundle: loaded.bundle.clone(),
        rootfs: loaded.rootfs.clone(),
        annotations: loaded.spec.annotations().clone().unwrap_or_default(),
        created: state::now_rfc3339(),
        cgroup_path: cgroup_path.to_string(),
        own_pid_ns: Namespaces::from_spec(&loaded.spec).creates(LinuxNamespaceType::Pid),
    }
}

/// Record `pid` as the container's init, with its start time.
pub(crate) fn mark_created(st: &mut State, pid: i32) -> Result<(), ContainerError> {
    st.phase = Phase::Created;
    st.pid = pid;
    st.pid_start_time = sys::proc_stat(pid)
        .map(|s| s.start_time)
        .ok_or_else(|| ContainerError::Init(format!("the init (pid {pid}) exited at once")))?;
    Ok(())
}
