//! The one error type of this crate.

use std::path::PathBuf;

/// What went wrong turning `linux.seccomp` into a loaded filter, or handing its
/// notify fd to a listener.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile is wrong; `field` is its JSON path, e.g.
    /// `linux.seccomp.syscalls[3].action`.
    #[error("{field}: {reason}")]
    Invalid {
        /// JSON path of the offending field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// libseccomp refused part of a profile that looked valid.
    #[error("{field}: {action}")]
    Build {
        /// JSON path of the field being applied.
        field: String,
        /// What was being done, e.g. "adding a rule for mkdirat".
        action: String,
        /// libseccomp's error.
        #[source]
        source: libseccomp::error::SeccompError,
    },
    /// The kernel refused the filter.
    #[error("loading the seccomp filter")]
    Load(#[source] libseccomp::error::SeccompError),
    /// The filter loaded but its notify fd could not be had.
    #[error("getting the seccomp notify fd")]
    NotifyFd(#[source] libseccomp::error::SeccompError),
    /// The container state given to [`crate::send_notify_fd`] is not usable.
    #[error("building the container process state for the seccomp listener")]
    State(#[source] serde_json::Error),
    /// Connecting or sending to the seccomp listener failed.
    #[error("{action} seccomp listener {path}")]
    Listener {
        /// What was being done, e.g. "connecting to".
        action: &'static str,
        /// `linux.seccomp.listenerPath`.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: nix::Error,
    },
}

impl SeccompError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
