//! `system df` and `system prune`.
//!
//! Sizes: images count their blobs (manifest, config, compressed layers), each
//! blob once however many images share it; containers their own snapshot (the
//! writable layer); layers the committed snapshots (unpacked layers); the blob
//! store everything in it, unreferenced blobs included.
//!
//! Prune removes stopped containers, then (with `all`) the images no container
//! uses, then, under the engine lock, every blob and committed snapshot no named
//! image needs (a snapshot only when nothing sits on it). A `pull` in flight
//! stores blobs before it names the image, so that sweep first takes the pull
//! lock exclusively: it waits for pulls in flight to finish (and new ones wait
//! for it).

use std::collections::HashSet;

use berth_image::Digest;
use berth_snapshot::{Kind, SnapshotError};
use serde::Serialize;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::lock::{EngineLock, PullLock};
use crate::record::Phase;

/// One line of `system df`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UsageLine {
    /// How many.
    pub total: usize,
    /// How many are in use (images: by a container; containers: running).
    pub active: usize,
    /// Bytes.
    pub size: u64,
    /// Bytes `system prune` (with `--all` for images) would free.
    pub reclaimable: u64,
}

/// `system df`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DiskUsage {
    /// Named images.
    pub images: UsageLine,
    /// Containers.
    pub containers: UsageLine,
    /// Committed snapshots (unpacked layers).
    pub layers: UsageLine,
    /// Every blob in the store.
    pub blobs: UsageLine,
}

/// What `system prune` removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Network leftovers of crashed containers.
    pub network: berth_net::NetPrune,
    /// Container ids.
    pub containers: Vec<String>,
    /// Image names.
    pub images: Vec<String>,
    /// Blob digests.
    pub blobs: Vec<Digest>,
    /// Committed snapshot keys.
    pub layers: Vec<String>,
    /// Bytes of blobs freed (snapshots not counted).
    pub blob_bytes: u64,
}

fn snap_err(action: String) -> impl FnOnce(SnapshotError) -> EngineError {
    move |source| EngineError::Snapshot { action, source }
}

impl Engine {
    fn blob_size(&self, d: &Digest) -> u64 {
        self.blobs().size(d).unwrap_or(0)
    }

    fn image_blobs(&self, d: &Digest) -> Vec<Digest> {
        let mut out = vec![d.clone()];
        if let Ok((m, _)) = self.read_image(d) {
            out.push(m.config.digest);
            out.extend(m.layers.into_iter().map(|l| l.digest));
        }
        out
    }

    /// `berth system df`.
    pub fn disk_usage(&self) -> Result<DiskUsage, EngineError> {
        let mut du = DiskUsage::default();
        let containers = self.list_containers(true)?;
        let used: HashSet<Digest> = containers
            .iter()
            .map(|c| c.record.image_digest.clone())
            .collect();
        let names = self.images().list().map_err(|source| EngineError::Images {
            action: "listing images".into(),
            source,
        })?;
        let images: HashSet<Digest> = names.into_iter().map(|(_, d)| d).collect();
        let (mut all_blobs, mut active_blobs) = (HashSet::new(), HashSet::new());
        for d in &images {
            let blobs = self.image_blobs(d);
            if used.contains(d) {
                du.images.active += 1;
                active_blobs.extend(blobs.iter().cloned());
            }
            all_blobs.extend(blobs);
        }
        du.images.total = images.len();
        du.images.size = all_blobs.iter().map(|d| self.blob_size(d)).sum();
        du.images.reclaimable = all_blobs
            .difference(&active_blobs)
            .map(|d| self.blob_size(d))
            .sum();

        for c in &containers {
            let key = format!("container-{}", c.record.id);
            let size = self.snapshots().usage(&key).map(|u| u.size).unwrap_or(0);
            du.containers.total += 1;
            du.containers.size += size;
            if c.status == Phase::Running {
                du.containers.active += 1;
            } else {
                du.containers.reclaimable += size;
            }
        }

        let (_, kept_chains) = self.referenced()?;
        let snapshots = self
            .snapshots()
            .list()
            .map_err(snap_err("listing snapshots".into()))?;
        for s in snapshots.iter().filter(|s| s.kind == Kind::Committed) {
            let size = self.snapshots().usage(&s.key).map(|u| u.size).unwrap_or(0);
            du.layers.total += 1;
            du.layers.size += size;
            if kept_chains.contains(&s.key) {
                du.layers.active += 1;
            } else {
                du.layers.reclaimable += size;
            }
        }

        let stored = self.blobs().list().map_err(|source| EngineError::Blob {
            action: "listing blobs".into(),
            source,
        })?;
        for d in &stored {
            let size = self.blob_size(d);
            du.blobs.total += 1;
            du.blobs.size += size;
            if all_blobs.contains(d) {
                du.blobs.active += 1;
            } else {
                du.blobs.reclaimable += size;
            }
        }
        Ok(du)
    }

    /// `berth system prune [--all]`.
    pub fn prune(&self, all: bool) -> Result<PruneReport, EngineError> {
        let mut report = PruneReport::default();
        for c in self.list_containers(true)? {
            if c.status != Phase::Running {
                report.containers.push(self.remove(&c.record.id, false)?);
            }
        }
        if all {
            let used: HashSet<Digest> = self
                .list_containers(true)?
                .into_iter()
                .map(|c| c.record.image_digest)
                .collect();
            let names = self.images().list().map_err(|source| EngineError::Images {
                action: "listing images".into(),
                source,
            })?;
            for (name, d) in names {
                if !used.contains(&d) {
                    self.remove_image(&name, false)?;
                    report.images.push(name);
                }
            }
        }
        let _no_pulls = PullLock::exclusive(self.root())?;
        let _lock = EngineLock::acquire(self.root())?;
        report.network = self
            .networks()
            .prune()
            .map_err(crate::network::net_err("pruning network leftovers"))?;
        let (kept_blobs, kept_chains) = self.referenced()?;
        // Committed snapshots, children before parents: repeat while any goes.
        loop {
            let snapshots = self
                .snapshots()
                .list()
                .map_err(snap_err("listing snapshots".into()))?;
            let mut removed_any = false;
            for s in snapshots.iter().filter(|s| s.kind == Kind::Committed) {
                if kept_chains.contains(&s.key) {
                    continue;
                }
                match self.snapshots().remove(&s.key) {
                    Ok(()) => {
                        report.layers.push(s.key.clone());
                        removed_any = true;
                    }
                    Err(SnapshotError::HasChildren { .. } | SnapshotError::NotFound(_)) => {}
                    Err(e) => return Err(snap_err(format!("removing snapshot {}", s.key))(e)),
                }
            }
            if !removed_any {
                break;
            }
        }
        let stored = self.blobs().list().map_err(|source| EngineError::Blob {
            action: "listing blobs".into(),
            source,
        })?;
        for d in stored.into_iter().filter(|d| !kept_blobs.contains(d)) {
            let size = self.blob_size(&d);
            let deleted = self
                .blobs()
                .delete(&d)
                .map_err(|source| EngineError::Blob {
                    action: format!("deleting blob {d}"),
                    source,
                })?;
            if deleted {
                report.blob_bytes += size;
                report.blobs.push(d);
            }
        }
        let _ = self.blobs().gc_ingest();
        Ok(report)
    }
}
