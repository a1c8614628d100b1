//! The crate's error type.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong running a micro-VM.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The kernel cache is missing or incomplete.
    #[error("no kernel in {0} (run scripts/fetch-kernel.sh)")]
    NoKernel(PathBuf),
    /// The static guest agent binary was not found.
    #[error("guest agent not found (set VmConfig::agent or BERTH_GUEST_AGENT)")]
    NoAgent,
    /// A module the guest needs is not in the kernel's modules.
    #[error("kernel module {0} not found")]
    Module(String),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, to what.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// An external tool (mkfs.ext4, qemu-img, qemu) failed.
    #[error("{what}: {output}")]
    Tool {
        /// What was being done.
        what: String,
        /// Its exit status and output.
        output: String,
    },
    /// The guest broke the control protocol.
    #[error("control port: {0}")]
    Protocol(String),
    /// The guest agent reported a failure.
    #[error("guest agent: {0}")]
    Guest(String),
    /// The VM ended (killed, guest panic) before reporting the command's exit.
    #[error("the VM ended before the command did; console:\n{console}")]
    Died {
        /// The end of the guest's console (kernel messages, panics).
        console: String,
    },
    /// The command did not end in time; the VM was killed.
    #[error("the VM did not finish within {0:?} and was killed")]
    Timeout(Duration),
    /// A QMP command failed.
    #[error("qmp: {0}")]
    Qmp(String),
}

impl VmError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}
