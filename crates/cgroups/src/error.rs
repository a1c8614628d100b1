//! The crate's error type.

use std::path::PathBuf;

use nix::errno::Errno;

/// What went wrong with a cgroup operation. Each message says what was being done and to
/// what; the errno is shown by name ("EINVAL") and available through [`CgroupError::errno`].
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Reading a cgroup (or /proc) file failed.
    #[error("reading {}: {errno:?}", path.display())]
    Read { path: PathBuf, errno: Errno },
    /// Writing a value to a cgroup file failed.
    #[error("writing {value} to {}: {errno:?}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        errno: Errno,
    },
    /// Creating a cgroup directory failed.
    #[error("creating {}: {errno:?}", path.display())]
    Create { path: PathBuf, errno: Errno },
    /// Removing a cgroup directory failed.
    #[error("removing {}: {errno:?}", path.display())]
    Remove { path: PathBuf, errno: Errno },
    /// A file had content we could not understand.
    #[error("parsing {}: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    /// The `cgroupsPath` is not acceptable.
    #[error("invalid cgroups path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    /// A `linux.resources` value is out of range or malformed.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidResource {
        field: String,
        value: String,
        reason: String,
    },
    /// The host cannot do what was asked (controller missing, v2 key on a v1 host, ...).
    #[error("{what}: {reason}")]
    Unsupported { what: String, reason: String },
    /// Neither cgroup v1 nor cgroup v2 is mounted.
    #[error("finding cgroup hierarchies in /proc/self/mountinfo: none is mounted")]
    NoHierarchy,
    /// The freezer did not reach the requested state in time.
    #[error("waiting for {} to report {expected}: timed out", path.display())]
    Timeout { path: PathBuf, expected: String },
    /// The kernel refused the generated device filter program.
    #[error("loading the device filter program: {errno:?}{}", verifier_log(log))]
    BpfLoad { errno: Errno, log: String },
    /// Attaching the device filter program to the cgroup failed.
    #[error("attaching the device filter program to {}: {errno:?}", path.display())]
    BpfAttach { path: PathBuf, errno: Errno },
    /// Sending a signal to a process of the cgroup failed.
    #[error("sending signal {signal} to process {pid}: {errno:?}")]
    Signal { pid: i32, signal: i32, errno: Errno },
}

fn verifier_log(log: &str) -> String {
    if log.trim().is_empty() {
        String::new()
    } else {
        format!(" (verifier log: {})", log.trim())
    }
}

impl CgroupError {
    /// The errno behind this error, if it came from a system call.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::Read { errno, .. }
            | Self::Write { errno, .. }
            | Self::Create { errno, .. }
            | Self::Remove { errno, .. }
            | Self::BpfLoad { errno, .. }
            | Self::BpfAttach { errno, .. }
            | Self::Signal { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    pub(crate) fn invalid(
        field: impl Into<String>,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        Self::InvalidResource {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Unsupported {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// The errno of an I/O error (EIO for the rare error that did not come from the kernel).
pub(crate) fn errno_of(e: &std::io::Error) -> Errno {
    e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)
}
