//! A container's record, `<root>/containers/<id>/container.json`, written
//! atomically (temp file, fsync, rename).

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use berth_image::Digest;
use serde::{Deserialize, Serialize};

use crate::backend::Isolation;
use crate::error::{io_err, EngineError};

/// What the engine last recorded about a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Its root is mounted and its config written; not started.
    Created,
    /// A `berth run` in the foreground or a monitor (pid in the record) runs it.
    Running,
    /// It ran and exited.
    Exited,
}

/// `container.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 64 hex digits.
    pub id: String,
    /// The unique name.
    pub name: String,
    /// The image as named on the command line, normalised.
    pub image: String,
    /// The image's manifest digest.
    pub image_digest: Digest,
    /// The process's argv.
    pub command: Vec<String>,
    /// Creation time, seconds since the epoch.
    pub created: u64,
    /// The last recorded phase.
    pub phase: Phase,
    /// The exit code, once exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The `berth` process running it (while running): the foreground `berth run`
    /// or the detached container's monitor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Remove it when it exits (`--rm` of a detached run or a `create`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_remove: bool,
    /// A `rm -f` is killing it: a run that fails now failed because of that.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removing: bool,
    /// Its isolation level (records written before levels existed: container).
    #[serde(default)]
    pub isolation: Isolation,
    /// When it last started, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<u64>,
    /// When it last exited, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<u64>,
    /// The networks it is attached to: address, gateway, published ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<berth_net::Attachment>,
}

impl Record {
    /// Reads `dir/container.json`.
    pub fn load(dir: &Path) -> Result<Self, EngineError> {
        let path = dir.join("container.json");
        let bytes = fs::read(&path).map_err(io_err("reading container record", &path))?;
        serde_json::from_slice(&bytes).map_err(|e| EngineError::Io {
            action: "parsing container record",
            path,
            source: e.into(),
        })
    }

    /// Writes `dir/container.json` atomically; fsynced unless the container is
    /// removed when it exits (a crash of the machine ends such a container anyway,
    /// and a record lost with it leaves a directory the next `create` sweeps).
    pub fn save(&self, dir: &Path) -> Result<(), EngineError> {
        let path = dir.join("container.json");
        let tmp = dir.join(".container.json.tmp");
        let result = (|| {
            let mut bytes = serde_json::to_vec_pretty(self)?;
            bytes.push(b'\n');
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            if !self.auto_remove {
                f.sync_all()?;
            }
            fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(io_err("writing container record", &path))
    }
}
