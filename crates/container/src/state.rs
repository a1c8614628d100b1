//! On-disk container state under the runtime root: one directory per container,
//! `state.json` written atomically (write, fsync, rename), a flock on the directory
//! serialising commands on the same id.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// Name of the FIFO the init blocks on until `start`.
pub const EXEC_FIFO: &str = "exec.fifo";
const STATE_FILE: &str = "state.json";
const CONFIG_FILE: &str = "config.json";

/// What went wrong reading or writing state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container {0} already exists")]
    Exists(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_path_buf();
    move |source| StateError::Io {
        action,
        path,
        source,
    }
}

/// Where the create step has got to. Running / stopped / paused are derived from the
/// init process, the exec FIFO and the freezer, not stored.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Creating,
    Created,
}

/// What berth remembers about a container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    pub phase: Phase,
    /// Host pid of the container's init (0 before it exists).
    pub pid: i32,
    /// The init's start time in clock ticks since boot (/proc/PID/stat field 22), to
    /// tell it from a later process that reuses the pid.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// RFC 3339 creation time.
    pub created: String,
    /// The cgroup path given to the cgroup manager.
    pub cgroup_path: String,
    /// The container runs in its own pid namespace (so killing init kills all).
    #[serde(default)]
    pub own_pid_ns: bool,
}

/// One container's directory under the state root, locked for as long as it lives.
#[derive(Debug)]
pub struct ContainerDir {
    pub id: String,
    pub path: PathBuf,
    lock: Flock<File>,
}

impl ContainerDir {
    /// Create the directory for a new container; fails if the id is taken. The mkdir is
    /// the arbiter between two concurrent creates: exactly one succeeds.
    pub fn create(root: &Path, id: &str) -> Result<Self, StateError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)
            .map_err(io_err("creating state root", root))?;
        let path = root.join(id);
        match fs::DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StateError::Exists(id.to_string()))
            }
            Err(e) => return Err(io_err("creating", &path)(e)),
        }
        Self::lock(path, id)
    }

    /// Open and lock an existing container's directory.
    pub fn open(root: &Path, id: &str) -> Result<Self, StateError> {
        let path = root.join(id);
        if !path.join(STATE_FILE).exists() && !path.is_dir() {
            return Err(StateError::NotFound(id.to_string()));
        }
        Self::lock(path, id)
    }

    fn lock(path: PathBuf, id: &str) -> Result<Self, StateError> {
        let lock = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StateError::NotFound(id.to_string()),
                _ => io_err("opening", &path)(e),
            })?;
        let lock = Flock::lock(lock, FlockArg::LockExclusive)
            .map_err(|(_, e)| io_err("locking", &path)(e.into()))?;
        // A delete may have removed the directory while we waited for the lock.
        if !path.exists() {
            return Err(StateError::NotFound(id.to_string()));
        }
        Ok(Self {
            id: id.to_string(),
            path,
            lock,
        })
    }

    /// The lock's directory fd (kept by the init to find the exec FIFO after pivot).
    pub fn dir_file(&self) -> &File {
        &self.lock
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    pub fn load(&self) -> Result<State, StateError> {
        let path = self.path.join(STATE_FILE);
        let data = fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StateError::NotFound(self.id.clone()),
            _ => io_err("reading", &path)(e),
        })?;
        serde_json::from_slice(&data).map_err(|source| StateError::Corrupt { path, source })
    }

    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let data = serde_json::to_vec(state).expect("state serialises");
        write_atomic(&self.path.join(STATE_FILE), &data, 0o600)
    }

    /// Save a transient state (`creating`): atomic against a crashing command (rename),
    /// but not fsynced — the next `save` replaces it moments later, durably, and a
    /// create that never got there is cleaned up by `delete`.
    pub fn save_transient(&self, state: &State) -> Result<(), StateError> {
        let data = serde_json::to_vec(state).expect("state serialises");
        write_file(&self.path.join(STATE_FILE), &data, 0o600, false)
    }

    /// Keep the container's config for later commands (hooks at start/delete);
    /// fsynced when `durable`.
    pub fn save_config(&self, raw: &[u8], durable: bool) -> Result<(), StateError> {
        write_file(&self.path.join(CONFIG_FILE), raw, 0o600, durable)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path.join(CONFIG_FILE)
    }

    /// Remove the directory and everything in it.
    pub fn remove(self) -> Result<(), StateError> {
        match fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("removing", &self.path)(e)),
        }
    }
}

/// Write `data` to `path` so that a reader sees the old or the new content, never a part,
/// and the new content survives a crash of the machine (write, fsync, rename).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), StateError> {
    write_file(path, data, mode, true)
}

fn write_file(path: &Path, data: &[u8], mode: u32, durable: bool) -> Result<(), StateError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err("writing", path))
}

/// Ids of every container under `root` (directories with a state file).
pub fn list_ids(root: &Path) -> Result<Vec<String>, StateError> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("reading", root)(e)),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(STATE_FILE).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// The current time as RFC 3339 with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format_rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

fn format_rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (proleptic Gregorian), after H. Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_rfc3339(1_795_305_600, 5),
            "2026-11-22T00:00:00.000000005Z"
        );
        assert_eq!(
            format_rfc3339(951_782_400, 0),
            "2000-02-29T00:00:00.000000000Z"
        );
    }

    #[test]
    fn second_create_of_same_id_fails_and_state_round_trips() {
        let root = tempfile::tempdir().unwrap();
        let dir = ContainerDir::create(root.path(), "a").unwrap();
        assert!(matches!(
            ContainerDir::create(root.path(), "a"),
            Err(StateError::Exists(_))
        ));
        let st = State {
            oci_version: "1.2.0".into(),
            id: "a".into(),
            phase: Phase::Creating,
            pid: 0,
            pid_start_time: 0,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            annotations: HashMap::new(),
            created: now_rfc3339(),
            cgroup_path: "/berth/a".into(),
            own_pid_ns: true,
        };
        dir.save(&st).unwrap();
        assert_eq!(dir.load().unwrap(), st);
        assert_eq!(list_ids(root.path()).unwrap(), vec!["a".to_string()]);
        dir.remove().unwrap();
        assert!(list_ids(root.path()).unwrap().is_empty());
    }
}
