//! The engine lock: one exclusive `flock` on `<root>/engine.lock`, held while a
//! command changes the set of containers or unpacks layers, so that two `berth`
//! commands never race on a name, an id or a layer's snapshot. The libraries lock
//! their own files too; this lock orders the engine's multi-step changes.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::{io_err, EngineError};

/// Held until dropped.
#[derive(Debug)]
pub struct EngineLock {
    _file: File,
}

impl EngineLock {
    /// Blocks until the lock on `<root>/engine.lock` is ours.
    pub fn acquire(root: &Path) -> Result<Self, EngineError> {
        let path = root.join("engine.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("opening engine lock", &path))?;
        file.lock().map_err(io_err("locking", &path))?;
        Ok(Self { _file: file })
    }
}
