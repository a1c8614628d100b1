//! The crate's error type, gathering each module's.

use crate::{channel, creds, hooks, id, namespaces, spec, state, userns};

/// What went wrong with a container operation.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Id(#[from] id::IdError),
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(transparent)]
    Channel(#[from] channel::ChannelError),
    #[error(transparent)]
    Hook(#[from] hooks::HookError),
    #[error(transparent)]
    Namespace(#[from] namespaces::NamespaceError),
    #[error(transparent)]
    UserNs(#[from] userns::UserNsError),
    #[error(transparent)]
    Creds(#[from] creds::CredsError),
    #[error("seccomp: {0}")]
    Seccomp(#[from] berth_seccomp::SeccompError),
    #[error("cgroup: {0}")]
    Cgroup(#[from] berth_cgroups::CgroupError),
    #[error("container init: {0}")]
    Init(String),
    #[error("exec: {0}")]
    Exec(String),
    #[error("container {id} is {status}: {action}")]
    BadStatus {
        id: String,
        status: String,
        action: String,
    },
    #[error("unknown signal {0:?}")]
    BadSignal(String),
    #[error("{action}: {source}")]
    Sys { action: String, source: nix::Error },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
}

impl ContainerError {
    pub fn sys(action: impl Into<String>, source: nix::Error) -> Self {
        Self::Sys {
            action: action.into(),
            source,
        }
    }
}
