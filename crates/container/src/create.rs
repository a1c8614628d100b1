//! `create`: the runtime side of making a container — state directory, cgroup, the
//! create dance (see `process/`), and undoing all of it when anything fails.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use nix::sys::stat::Mode;
use nix::unistd::mkfifo;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::container::{
    default_cgroup_path, hook_state_json, CreateOptions, Runtime, Status, OCI_VERSION,
};
use crate::error::ContainerError;
use crate::namespaces::Namespaces;
use crate::process::{parent, InitConfig};
use crate::state::{self, ContainerDir, Phase, State};
use crate::{id, spec, sys};

impl Runtime {
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
            undo_create(dir, init_pid, &cgroup_path);
        }
        result
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
        dir.save_config(&loaded.raw, !opts.transient)?;
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
        if opts.transient {
            dir.save_transient(&st)?;
        } else {
            dir.save(&st)?;
        }
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

/// A failed create (or restore) leaves nothing behind: the init (if any), the cgroup
/// and the state directory go.
pub(crate) fn undo_create(dir: ContainerDir, init_pid: Option<i32>, cgroup_path: &str) {
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
