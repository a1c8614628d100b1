//! The create dance, one file per process role:
//!
//! - [`parent`]: the runtime command itself. Forks the intermediate, places it in the
//!   cgroup, writes id maps for it, runs the runtime-side hooks, records the state.
//! - [`intermediate`]: joins namespaces given by path, creates the rest (the user
//!   namespace first, mapped by the parent), then forks the init so that it is born in
//!   the new pid and time namespaces, reports the init's pid and exits.
//! - [`init`]: builds the root filesystem, drops to the process's credentials, tells
//!   the parent it is ready, blocks on the exec FIFO until `start`, then execs.
//!
//! They talk over a [`crate::channel::Channel`] with typed messages.

pub mod exec;
pub mod init;
pub mod intermediate;
pub mod parent;
pub mod setup;

use std::fs::File;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::namespaces::Namespaces;

/// Everything the forked processes need, prepared by the parent before forking.
pub struct InitConfig<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub namespaces: &'a Namespaces,
    /// Namespaces to join, opened before the fork.
    pub joins: &'a [(LinuxNamespaceType, PathBuf, File)],
    pub no_pivot: bool,
    /// Connected console socket (when `process.terminal`).
    pub console_socket: Option<RawFd>,
    pub preserve_fds: u32,
    /// The container's state directory (its own open file, not the locked one), where
    /// the init finds the exec FIFO after pivot_root.
    pub state_dir: &'a File,
    /// The parent's locked state directory fd: closed in the children at once so
    /// the lock is released when the parent exits.
    pub lock_fd: RawFd,
    pub cgroup_path: &'a str,
    /// `linux.seccomp`, compiled by the parent (the init loads it).
    pub seccomp: &'a std::cell::RefCell<Option<berth_seccomp::Filter>>,
}
