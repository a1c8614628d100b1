//! `Engine::pull`: download (the image crate's verified, parallel pull), unpack
//! every layer into its chain-id snapshot (as podman does at pull, so a first
//! `run` does not pay for it), then tag.
//!
//! Concurrency: the whole pull holds the [`PullLock`] shared, so pulls run side
//! by side (the blob store and the snapshotter are safe for that: blobs enter by
//! an atomic link, layers are unpacked under the engine lock) while `prune` and
//! `rmi`, which take it exclusively, never delete a blob a pull has stored or
//! found but not yet named. Unpack and tag happen under the engine lock.
//!
//! A failed pull removes what it added: the blobs it stored and the snapshots of
//! its layers, unless another image names them — and only when no other pull is
//! in flight (which may be about to use them); otherwise `system prune` does it
//! later. An interrupted pull (SIGKILL) leaves at most an ingest file and an
//! `extract-*` snapshot, both collected by the next pull or run.

use std::sync::Mutex;

use berth_image::{Digest, Progress, PulledImage, Reference, RegistryClient};
use berth_snapshot::SnapshotError;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::layers;
use crate::lock::{EngineLock, PullLock};

impl Engine {
    /// Pulls `reference` into the store, unpacks its layers and tags it.
    pub fn pull(
        &self,
        reference: &Reference,
        progress: Progress<'_>,
    ) -> Result<PulledImage, EngineError> {
        let pulling = PullLock::shared(self.root())?;
        let stored = Mutex::new(Vec::new());
        let mut chains = Vec::new();
        let result = self
            .download(reference, progress, &stored)
            .and_then(|pulled| {
                chains = layers::chain_ids(&pulled.config.rootfs.diff_ids);
                self.unpack_and_tag(reference, &pulled)?;
                Ok(pulled)
            });
        if result.is_err() {
            drop(pulling);
            let stored = stored.into_inner().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = self.discard(&stored, &chains) {
                tracing::warn!("cleaning up after the failed pull of {reference}: {e}");
            }
        }
        result
    }

    fn download(
        &self,
        reference: &Reference,
        progress: Progress<'_>,
        stored: &Mutex<Vec<Digest>>,
    ) -> Result<PulledImage, EngineError> {
        let client = RegistryClient::new(self.registry_options(reference.registry())?);
        client
            .pull_tracked(reference, self.blobs(), progress, stored)
            .map_err(|source| EngineError::Pull {
                reference: reference.to_string(),
                source,
            })
    }

    fn unpack_and_tag(
        &self,
        reference: &Reference,
        pulled: &PulledImage,
    ) -> Result<(), EngineError> {
        let _lock = EngineLock::acquire(self.root())?;
        layers::ensure(
            self.blobs(),
            self.snapshots(),
            &pulled.layers,
            &pulled.config.rootfs.diff_ids,
        )?;
        self.images()
            .tag(reference, &pulled.manifest_digest)
            .map_err(|source| EngineError::Images {
                action: format!("tagging {reference}"),
                source,
            })?;
        Ok(())
    }

    /// Removes the blobs a failed pull stored and its layers' snapshots, those
    /// that no named image needs, if no other pull is in flight.
    fn discard(&self, stored: &[Digest], chains: &[Digest]) -> Result<(), EngineError> {
        let Some(_alone) = PullLock::try_exclusive(self.root())? else {
            return Ok(());
        };
        let _lock = EngineLock::acquire(self.root())?;
        let (kept_blobs, kept_chains) = self.referenced()?;
        for chain in chains.iter().rev().map(Digest::to_string) {
            if kept_chains.contains(&chain) {
                continue;
            }
            match self.snapshots().remove(&chain) {
                Ok(()) | Err(SnapshotError::NotFound(_) | SnapshotError::HasChildren { .. }) => {}
                Err(source) => {
                    return Err(EngineError::Snapshot {
                        action: format!("removing snapshot {chain}"),
                        source,
                    })
                }
            }
        }
        for d in stored.iter().filter(|d| !kept_blobs.contains(*d)) {
            self.blobs().delete(d).map_err(|source| EngineError::Blob {
                action: format!("deleting blob {d}"),
                source,
            })?;
        }
        Ok(())
    }
}
