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

/// The pull lock: a `flock` on `<root>/pull.lock`, shared by every pull for its
/// whole run (download, unpack, tag), exclusive for whoever deletes blobs
/// (`system prune`, `rmi`, the cleanup of a failed pull). A pull stores blobs
/// (or finds them already stored) before it names its image, so until then they
/// look unreferenced; the exclusive holder knows no pull is in that window.
///
/// Order: the pull lock is always taken before the engine lock.
#[derive(Debug)]
pub struct PullLock {
    _file: File,
}

impl PullLock {
    fn open(root: &Path) -> Result<(File, std::path::PathBuf), EngineError> {
        let path = root.join("pull.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("opening pull lock", &path))?;
        Ok((file, path))
    }

    /// Blocks until no blob deleter holds the lock; other pulls may share it.
    pub fn shared(root: &Path) -> Result<Self, EngineError> {
        let (file, path) = Self::open(root)?;
        file.lock_shared().map_err(io_err("locking", &path))?;
        Ok(Self { _file: file })
    }

    /// Blocks until no pull is in flight.
    pub fn exclusive(root: &Path) -> Result<Self, EngineError> {
        let (file, path) = Self::open(root)?;
        file.lock().map_err(io_err("locking", &path))?;
        Ok(Self { _file: file })
    }

    /// The exclusive lock if no pull is in flight now, else `None`.
    pub fn try_exclusive(root: &Path) -> Result<Option<Self>, EngineError> {
        let (file, path) = Self::open(root)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(io_err("locking", &path)(e)),
        }
    }
}
