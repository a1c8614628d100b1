//! `--isolation container`: berth-container's runtime, in-process.

use std::path::{Path, PathBuf};

use berth_container::{ContainerError, CreateOptions, Runtime};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::{Backend, BackendError, Usage};

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

    /// The runtime library, for what only containers have (exec).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
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

    fn exists(&self, id: &str) -> bool {
        self.runtime.state(id).is_ok()
    }

    fn pids(&self, id: &str) -> Result<Vec<i32>, BackendError> {
        Ok(self.runtime.pids(id)?)
    }

    fn usage(&self, id: &str) -> Result<Usage, BackendError> {
        let stats = self.runtime.stats(id)?.data.unwrap_or_default();
        Ok(Usage::from_cgroup(&stats))
    }

    /// The runtime's own foreground run: signals are forwarded to the init and a
    /// pty is relayed when the config asks for a terminal.
    fn run(&self, id: &str, bundle: &Path) -> Result<i32, BackendError> {
        Ok(self.runtime.run(&Self::options(id, bundle), false)?)
    }
}
