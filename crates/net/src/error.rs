//! [`NetError`]: what a network operation was doing when it failed.

use std::io;
use std::path::PathBuf;

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Bad input (a flag, a subnet, a port mapping), refused before any change.
    #[error("{0}")]
    Invalid(String),
    /// No network of that name.
    #[error("network {0} not found")]
    NotFound(String),
    /// A network of that name exists.
    #[error("network {0} already exists")]
    Exists(String),
    /// The network still has containers.
    #[error("network {name} is in use by {count} container(s)")]
    InUse {
        /// The network.
        name: String,
        /// How many leases it holds.
        count: usize,
    },
    /// The subnet has no free address left.
    #[error("network {0}: no free address left")]
    Exhausted(String),
    /// A file of the network state could not be used.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// To what.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A system call failed.
    #[error("{action}")]
    Sys {
        /// What was being done, and to what.
        action: String,
        /// The cause.
        #[source]
        source: nix::Error,
    },
    /// An rtnetlink request (links, addresses, routes) failed.
    #[error("{action}")]
    Netlink {
        /// What was being done, and to what (`creating veth vb0123abcd0`).
        action: String,
        /// The kernel's answer (its errno) or the socket's error.
        #[source]
        source: io::Error,
    },
    /// `nft` failed.
    #[error("{tool} failed ({what}): {stderr}")]
    Tool {
        /// `nft`.
        tool: &'static str,
        /// What it was asked.
        what: String,
        /// What it said.
        stderr: String,
    },
}

/// `map_err` helper for [`NetError::Io`].
pub(crate) fn io_err(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> NetError {
    let path = path.into();
    move |source| NetError::Io {
        action,
        path,
        source,
    }
}
