//! The isolation backend: how a prepared bundle becomes a running workload.
//!
//! `--isolation container` is [`ContainerBackend`]: berth-container's runtime,
//! in-process (no `berth-runtime` or `runc` binary). `--isolation process` (a plain
//! process in the host's namespaces, for trusted workloads) and a micro-VM backend
//! are to come; they will implement the same trait, and the engine above does not
//! care which one runs a container.

use std::path::{Path, PathBuf};

use berth_container::{ContainerError, CreateOptions, Runtime};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

/// Why a backend operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The OCI runtime library failed.
    #[error(transparent)]
    Runtime(#[from] ContainerError),
    /// Waiting for the workload failed.
    #[error("waiting for pid {pid}")]
    Wait {
        /// The workload's pid.
        pid: i32,
        /// The cause.
        #[source]
        source: nix::Error,
    },
    /// This isolation level is not implemented yet.
    #[error("isolation {0:?} is not implemented yet")]
    Unsupported(&'static str),
}

/// The isolation levels a container can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// A plain process (not implemented yet).
    Process,
    /// An OCI container: namespaces, cgroups, capabilities, pivot_root.
    #[default]
    Container,
}

impl std::str::FromStr for Isolation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "process" => Ok(Self::Process),
            "container" => Ok(Self::Container),
            other => Err(format!(
                "unknown isolation {other:?} (process or container)"
            )),
        }
    }
}

/// One isolation level: the lifecycle of a workload described by an OCI bundle.
pub trait Backend {
    /// Creates the workload from `bundle` (a `config.json` and its rootfs), stopped
    /// before the user's program; returns its pid.
    fn create(&self, id: &str, bundle: &Path) -> Result<i32, BackendError>;
    /// Lets a created workload run its program.
    fn start(&self, id: &str) -> Result<(), BackendError>;
    /// Waits for the workload whose init is `pid` and returns its exit code (128+N
    /// for signal N). The caller must be the process that called `create`.
    fn wait(&self, id: &str, pid: i32) -> Result<i32, BackendError>;
    /// Sends `signal` to the workload.
    fn kill(&self, id: &str, signal: i32) -> Result<(), BackendError>;
    /// Removes what the backend keeps for the workload; `force` kills it first.
    fn delete(&self, id: &str, force: bool) -> Result<(), BackendError>;
    /// Create, start, wait (forwarding signals) and delete, in the foreground.
    fn run(&self, id: &str, bundle: &Path) -> Result<i32, BackendError> {
        let pid = self.create(id, bundle)?;
        let code = self
            .start(id)
            .and_then(|()| self.wait(id, pid))
            .inspect_err(|_| {
                let _ = self.delete(id, true);
            })?;
        self.delete(id, false)?;
        Ok(code)
    }
}

/// berth-container's runtime, with its state under `state_root`.
#[derive(Debug, Clone)]
pub struct ContainerBackend {
    runtime: Runtime,
}

impl ContainerBackend {
    /// A backend keeping the runtime's state under `state_root`.
    pub fn new(state_root: impl Into<PathBuf>) -> Self {
        Self {
            runtime: Runtime::new(state_root),
        }
    }

    fn options(id: &str, bundle: &Path) -> CreateOptions {
        CreateOptions {
            id: id.to_owned(),
            bundle: bundle.to_owned(),
            ..CreateOptions::default()
        }
    }

    /// Whether the runtime still knows `id`.
    pub fn exists(&self, id: &str) -> bool {
        self.runtime.state(id).is_ok()
    }
}

impl Backend for ContainerBackend {
    fn create(&self, id: &str, bundle: &Path) -> Result<i32, BackendError> {
        // The init is the intermediate's child: as subreaper we inherit it and can
        // wait for it.
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| ContainerError::sys("becoming subreaper", e))?;
        Ok(self.runtime.create(&Self::options(id, bundle))?)
    }

    fn start(&self, id: &str) -> Result<(), BackendError> {
        Ok(self.runtime.start(id)?)
    }

    fn wait(&self, _id: &str, pid: i32) -> Result<i32, BackendError> {
        loop {
            match waitpid(Pid::from_raw(pid), None) {
                Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                    return Ok(berth_container::run::exit_code(status).unwrap_or(1));
                }
                Ok(_) | Err(nix::Error::EINTR) => continue,
                Err(source) => return Err(BackendError::Wait { pid, source }),
            }
        }
    }

    fn kill(&self, id: &str, signal: i32) -> Result<(), BackendError> {
        Ok(self.runtime.kill(id, signal, true)?)
    }

    fn delete(&self, id: &str, force: bool) -> Result<(), BackendError> {
        Ok(self.runtime.delete(id, force)?)
    }

    /// The runtime's own foreground run: signals are forwarded to the init and a
    /// pty is relayed when the config asks for a terminal.
    fn run(&self, id: &str, bundle: &Path) -> Result<i32, BackendError> {
        Ok(self.runtime.run(&Self::options(id, bundle), false)?)
    }
}
