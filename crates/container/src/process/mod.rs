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

/// Fork a child that stays on hold until its host pid has been sent to the parent as
/// `InitPid`, so that none of the child's own messages (Ready, Error, …) can reach the
/// parent first; then run `child` in it. Returns in the forking process once the child
/// is released. `what` names the child in errors.
pub(crate) fn fork_reported(
    ch: &crate::channel::Channel,
    what: &str,
    child: impl FnOnce(),
) -> Result<(), String> {
    use std::io::{Read, Write};

    use nix::unistd::{fork, ForkResult};

    let (mut held, mut release) =
        std::io::pipe().map_err(|e| format!("creating the {what}'s start pipe: {e}"))?;
    // SAFETY: the callers are single-threaded (forked from the single-threaded
    // runtime), so the child may run arbitrary code after fork.
    match unsafe { fork() }.map_err(|e| format!("forking the {what}: {e}"))? {
        ForkResult::Child => {
            drop(release);
            // EOF: the forking process failed to report us and has exited.
            if held.read_exact(&mut [0u8]).is_err() {
                crate::sys::exit_now(1);
            }
            drop(held);
            child();
            // `child` never returns (it execs or exits); should it, do not fall back
            // into the forking process's code.
            crate::sys::exit_now(1)
        }
        ForkResult::Parent { child } => {
            drop(held);
            ch.send(&crate::channel::Message::InitPid(child.as_raw()))
                .map_err(|e| e.to_string())?;
            release
                .write_all(&[0])
                .map_err(|e| format!("releasing the {what}: {e}"))
        }
    }
}
