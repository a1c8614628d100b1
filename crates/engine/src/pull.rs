//! `Engine::pull`: download (the image crate's verified, parallel pull), unpack
//! every layer into its chain-id snapshot (as podman does at pull, so a first
//! `run` does not pay for it), then tag.
//!
//! Each layer is unpacked while it downloads: the image crate tees its bytes
//! into a pipe read by an unpack thread, which inflates, hashes (diff id) and
//! unpacks into an `extract-PID-CHAIN` snapshot prepared without a parent (a
//! layer's directory holds only its own content). Nothing is committed until
//! the download has verified every blob's digest and every unpack its diff id;
//! then, under the engine lock, base first, each extract is committed as its
//! chain id onto its parent (`commit_onto`), or dropped if another `berth` got
//! there first. Layers whose blob was already stored are unpacked afterwards
//! from the store by [`layers::ensure`].
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

use std::io::Write;
use std::sync::Mutex;
use std::thread::{Scope, ScopedJoinHandle};

use berth_image::{
    Descriptor, Digest, ImageConfig, Progress, PulledImage, Reference, RegistryClient,
};
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
        let result = std::thread::scope(|scope| {
            let unpacks = Mutex::new(Vec::new());
            let tee = |config: &ImageConfig, i: usize, layer: &Descriptor| {
                self.start_unpack(scope, &unpacks, config, i, layer)
            };
            let downloaded = self.download(reference, progress, &stored, &tee);
            let unpacks = unpacks.into_inner().unwrap_or_else(|e| e.into_inner());
            (downloaded, Self::join_unpacks(unpacks))
        });
        let result = match result {
            (Ok(pulled), unpacked) => {
                chains = layers::chain_ids(&pulled.config.rootfs.diff_ids);
                self.unpack_and_tag(reference, &pulled, unpacked)
                    .map(|()| pulled)
            }
            (Err(e), unpacked) => {
                self.remove_extracts(unpacked.extracts.into_iter().map(|(_, k)| k));
                Err(e)
            }
        };
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
        tee: berth_image::LayerTee<'_>,
    ) -> Result<PulledImage, EngineError> {
        let client = RegistryClient::new(self.registry_options(reference.registry())?);
        client
            .pull_tracked(reference, self.blobs(), progress, stored, Some(tee))
            .map_err(|source| EngineError::Pull {
                reference: reference.to_string(),
                source,
            })
    }

    /// The tee for layer `i`: unless its chain is unpacked already, prepares an
    /// extract snapshot and starts a thread unpacking into it from a pipe, whose
    /// write end it returns.
    fn start_unpack<'scope>(
        &'scope self,
        scope: &'scope Scope<'scope, '_>,
        unpacks: &Mutex<Vec<Unpack<'scope>>>,
        config: &ImageConfig,
        i: usize,
        layer: &Descriptor,
    ) -> Option<Box<dyn Write + Send>> {
        let diff_ids = config.rootfs.diff_ids.get(..=i)?;
        let diff_id = diff_ids[i].clone();
        let chain = layers::chain_ids(diff_ids).pop()?;
        if self.snapshots().stat(&chain.to_string()).is_ok() {
            return None;
        }
        let key = layers::extract_key(std::process::id(), &chain);
        let (reader, writer) = std::io::pipe().ok()?;
        self.snapshots().prepare(&key, None).ok()?;
        let digest = layer.digest.clone();
        let thread_key = key.clone();
        let handle = scope.spawn(move || {
            let result =
                layers::unpack_checked(self.snapshots(), &thread_key, reader, &digest, &diff_id);
            if result.is_err() {
                let _ = self.snapshots().remove(&thread_key);
            }
            result
        });
        unpacks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Unpack {
                index: i,
                key,
                handle,
            });
        Some(Box::new(writer))
    }

    /// Waits for the unpack threads.
    fn join_unpacks(unpacks: Vec<Unpack<'_>>) -> Unpacked {
        let mut done = Vec::new();
        let mut failed: Option<(usize, EngineError)> = None;
        for u in unpacks {
            match u.handle.join() {
                Ok(Ok(())) => done.push((u.index, u.key)),
                Ok(Err(e)) => {
                    if failed.as_ref().is_none_or(|(i, _)| u.index < *i) {
                        failed = Some((u.index, e));
                    }
                }
                Err(_) => {
                    let e = EngineError::Invalid(format!(
                        "unpacking layer {}: thread panicked",
                        u.index
                    ));
                    failed.get_or_insert((u.index, e));
                }
            }
        }
        done.sort();
        Unpacked {
            extracts: done,
            error: failed.map(|(_, e)| Box::new(e)),
        }
    }

    fn remove_extracts(&self, keys: impl IntoIterator<Item = String>) {
        for key in keys {
            let _ = self.snapshots().remove(&key);
        }
    }

    fn unpack_and_tag(
        &self,
        reference: &Reference,
        pulled: &PulledImage,
        unpacked: Unpacked,
    ) -> Result<(), EngineError> {
        let mut extracts = unpacked.extracts;
        if let Some(e) = unpacked.error {
            self.remove_extracts(extracts.into_iter().map(|(_, k)| k));
            return Err(*e);
        }
        let _lock = EngineLock::acquire(self.root())?;
        let chains = layers::chain_ids(&pulled.config.rootfs.diff_ids);
        let mut parent: Option<String> = None;
        for (i, chain) in chains.iter().enumerate() {
            let key = chain.to_string();
            let mine = extracts
                .iter()
                .position(|(j, _)| *j == i)
                .map(|p| extracts.remove(p).1);
            match (self.snapshots().stat(&key), mine) {
                (Ok(_), Some(extract)) => self.remove_extracts([extract]),
                (Ok(_), None) => {}
                (Err(_), Some(extract)) => {
                    if let Err(source) =
                        self.snapshots()
                            .commit_onto(&key, &extract, parent.as_deref())
                    {
                        self.remove_extracts([extract]);
                        self.remove_extracts(extracts.into_iter().map(|(_, k)| k));
                        return Err(EngineError::Snapshot {
                            action: format!("committing layer {}", pulled.layers[i].digest),
                            source,
                        });
                    }
                }
                // Not unpacked while downloading (its blob was stored already):
                // from the store, now.
                (Err(_), None) => {
                    let unpacked = layers::ensure(
                        self.blobs(),
                        self.snapshots(),
                        &pulled.layers[..=i],
                        &pulled.config.rootfs.diff_ids[..=i],
                    );
                    if let Err(e) = unpacked {
                        self.remove_extracts(extracts.into_iter().map(|(_, k)| k));
                        return Err(e);
                    }
                }
            }
            parent = Some(key);
        }
        self.remove_extracts(extracts.into_iter().map(|(_, k)| k));
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

/// A layer being unpacked while it downloads.
struct Unpack<'scope> {
    index: usize,
    key: String,
    handle: ScopedJoinHandle<'scope, Result<(), EngineError>>,
}

/// What the unpack threads left: the extract keys by layer index (sorted) and
/// the error of the lowest layer that failed, if any.
struct Unpacked {
    extracts: Vec<(usize, String)>,
    error: Option<Box<EngineError>>,
}
