//! A container's record, `<root>/containers/<id>/container.json`, written
//! atomically (temp file, fsync, rename).

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use berth_image::Digest;
use serde::{Deserialize, Serialize};

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

    /// Writes `dir/container.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<(), EngineError> {
        let path = dir.join("container.json");
        let tmp = dir.join(".container.json.tmp");
        let result = (|| {
            let mut f = File::create(&tmp)?;
            serde_json::to_writer_pretty(&mut f, self)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(io_err("writing container record", &path))
    }
}
