//! The isolation backend: how a prepared bundle becomes a running workload.
//!
//! Every isolation level implements [`Backend`]; the engine above does not care
//! which one runs a container. A container's record names its level, so later
//! commands (`stop`, `rm`, the monitor) reach the same backend.
//!
//! - `--isolation container` is [`ContainerBackend`]: berth-container's runtime,
//!   in-process (no `berth-runtime` or `runc` binary).
//! - `--isolation process` is [`ProcessBackend`]: the image's program as a plain
//!   process in the host's namespaces.
//! - `--isolation vm` is [`VmBackend`]: the image in a micro-VM with its own kernel.

use std::path::Path;

use berth_container::ContainerError;
use serde::{Deserialize, Serialize};

mod container;
mod process;
pub(crate) mod vm;

pub use container::ContainerBackend;
pub use process::{ProcessBackend, ProcessError};
pub use vm::VmBackend;

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
    /// The process backend failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The micro-VM failed.
    #[error(transparent)]
    Vm(#[from] berth_vm::VmError),
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] berth_cgroups::CgroupError),
    /// The bundle asks for what the backend cannot do, or its state is unusable.
    #[error("{0}")]
    Config(String),
    /// The isolation level does not do this.
    #[error("{0} is not supported at this isolation level")]
    Unsupported(&'static str),
}

/// The isolation levels a container can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// A plain process: the image's root, env and user, a cgroup, no namespaces.
    Process,
    /// An OCI container: namespaces, cgroups, capabilities, pivot_root.
    #[default]
    Container,
    /// A micro-VM with its own kernel.
    Vm,
}

impl Isolation {
    /// Every level, in the order `--isolation` lists them.
    pub const ALL: [Isolation; 3] = [Self::Process, Self::Container, Self::Vm];

    /// The name `--isolation` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Container => "container",
            Self::Vm => "vm",
        }
    }
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Isolation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "process" => Ok(Self::Process),
            "container" => Ok(Self::Container),
            "vm" => Ok(Self::Vm),
            other => Err(format!(
                "unknown isolation {other:?} (process, container or vm)"
            )),
        }
    }
}

/// A workload's resource use at one moment, for `berth stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// CPU time used, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use, in bytes (for a VM: its hypervisor process's).
    pub memory_bytes: u64,
    /// The memory limit in bytes, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<u64>,
    /// Processes (for a VM: host processes of the hypervisor).
    pub pids: u64,
    /// Pages of the workload's memory that KSM merged with others (VMs on a host
    /// running KSM); `None` where it does not apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ksm_merged_pages: Option<u64>,
}

impl Usage {
    /// What a cgroup's statistics say (no KSM figure).
    pub fn from_cgroup(stats: &berth_cgroups::Stats) -> Self {
        let limit = stats.memory.usage.limit;
        Self {
            cpu_ns: stats.cpu.usage.total,
            memory_bytes: stats.memory.usage.usage,
            // cgroups report "no limit" as the largest page-aligned value.
            memory_limit: (limit > 0 && limit < i64::MAX as u64 / 2).then_some(limit),
            pids: stats.pids.current,
            ksm_merged_pages: None,
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
    /// Whether the backend still keeps state for `id` (created and not deleted).
    /// Cheap: needs no kernel, VM image or running process.
    fn exists(&self, id: &str) -> bool;
    /// The host pids of the workload's processes (`berth top`).
    fn pids(&self, _id: &str) -> Result<Vec<i32>, BackendError> {
        Err(BackendError::Unsupported("listing processes"))
    }
    /// The workload's resource use (`berth stats`).
    fn usage(&self, _id: &str) -> Result<Usage, BackendError> {
        Err(BackendError::Unsupported("resource statistics"))
    }
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
