//! `--isolation vm`: a micro-VM (in progress: every operation reports Unsupported).

use std::path::{Path, PathBuf};

use super::{Backend, BackendError};

/// The vm backend, its state under `state_root`.
#[derive(Debug, Clone)]
pub struct VmBackend {
    #[allow(dead_code)]
    state_root: PathBuf,
}

impl VmBackend {
    /// A backend keeping its state under `state_root`.
    pub fn new(state_root: impl Into<PathBuf>) -> Self {
        Self {
            state_root: state_root.into(),
        }
    }
}

impl Backend for VmBackend {
    fn create(&self, _id: &str, _bundle: &Path) -> Result<i32, BackendError> {
        Err(BackendError::Unsupported("vm"))
    }

    fn start(&self, _id: &str) -> Result<(), BackendError> {
        Err(BackendError::Unsupported("vm"))
    }

    fn wait(&self, _id: &str, _pid: i32) -> Result<i32, BackendError> {
        Err(BackendError::Unsupported("vm"))
    }

    fn kill(&self, _id: &str, _signal: i32) -> Result<(), BackendError> {
        Err(BackendError::Unsupported("vm"))
    }

    fn delete(&self, _id: &str, _force: bool) -> Result<(), BackendError> {
        Err(BackendError::Unsupported("vm"))
    }

    fn exists(&self, _id: &str) -> bool {
        false
    }
}
