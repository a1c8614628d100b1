//! The agent's one error type.

/// What failed in the guest; the text is what the host reports.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done, to what.
        what: String,
        /// The errno.
        source: nix::errno::Errno,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, to what.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// Reading or writing the control port failed.
    #[error("using the control port: {source}")]
    Control {
        /// The error.
        source: std::io::Error,
    },
    /// The host sent something unexpected.
    #[error("{0}")]
    Protocol(String),
    /// A device did not show up in time.
    #[error("waiting for {0}: timed out")]
    Timeout(String),
}
