//! Image verbs beyond pull and run: `tag`, `rmi` (with reference counting of blobs
//! and layer snapshots) and `inspect`.
//!
//! `rmi NAME` removes the name; once no name points at the image, its manifest,
//! config and layer blobs and its layers' committed snapshots are deleted unless
//! another image still references them (found by walking every other image's
//! manifest and config). An image a container was made from is kept unless
//! `force`, which removes those containers first (like podman).

use std::collections::HashSet;
use std::fs;

use berth_image::manifest::MAX_CONFIG_SIZE;
use berth_image::{Digest, ImageManifest};
use berth_snapshot::SnapshotError;
use serde::Serialize;

use crate::engine::Engine;
use crate::error::{io_err, EngineError};
use crate::layers::chain_ids;
use crate::lock::{EngineLock, PullLock};
use crate::record::{Phase, Record};

/// What `rmi` did to one image.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RemovedImage {
    /// Names removed from the index.
    pub untagged: Vec<String>,
    /// The image's manifest digest, when the image itself went (no name left).
    pub deleted: Option<Digest>,
    /// Containers removed first (`force`).
    pub containers: Vec<String>,
}

/// `berth inspect` of an image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageInspect {
    /// The config's digest (Docker's image id).
    pub id: Digest,
    /// The manifest's digest.
    pub digest: Digest,
    /// Every name pointing at it.
    pub repo_tags: Vec<String>,
    /// Config plus compressed layers, in bytes.
    pub size: u64,
    /// The layer blobs' digests, base first.
    pub layers: Vec<Digest>,
    /// The manifest as stored.
    pub manifest: ImageManifest,
    /// The config as stored (every field, not only those berth uses).
    pub config: serde_json::Value,
}

/// `berth inspect` of a container.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerInspect {
    /// What the record says, corrected when its `berth run` died.
    pub status: Phase,
    /// The record.
    #[serde(flatten)]
    pub record: Record,
    /// Its OCI runtime config (`config.json`).
    pub spec: serde_json::Value,
}

fn images_err(action: String) -> impl FnOnce(berth_image::ImageStoreError) -> EngineError {
    move |source| EngineError::Images { action, source }
}

/// Whether `text` is a hex id or id prefix (`3f2a…`, `sha256:3f2a…`).
fn id_prefix(text: &str) -> Option<&str> {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    (hex.len() >= 3 && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

impl Engine {
    /// The image `text` names — a reference, or a (prefix of a) manifest or config
    /// digest — and every name pointing at it. Nothing is built or pulled.
    pub fn lookup_image(&self, text: &str) -> Result<(Digest, Vec<String>), EngineError> {
        self.lookup(text).map(|(d, names, _)| (d, names))
    }

    /// [`Self::lookup_image`], and whether `text` matched as an id.
    fn lookup(&self, text: &str) -> Result<(Digest, Vec<String>, bool), EngineError> {
        let all = self
            .images()
            .list()
            .map_err(images_err("listing images".into()))?;
        let names_of = |d: &Digest| -> Vec<String> {
            all.iter()
                .filter(|(_, x)| x == d)
                .map(|(n, _)| n.clone())
                .collect()
        };
        if let Some(hex) = id_prefix(text) {
            let mut found: Vec<Digest> = Vec::new();
            for (_, d) in &all {
                let config = self
                    .read_image(d)
                    .map(|(m, _)| m.config.digest)
                    .ok()
                    .filter(|c| c.hex().starts_with(hex));
                if (d.hex().starts_with(hex) || config.is_some()) && !found.contains(d) {
                    found.push(d.clone());
                }
            }
            match found.len() {
                1 => {
                    let d = found.remove(0);
                    let names = names_of(&d);
                    return Ok((d, names, true));
                }
                0 => {}
                _ => return Err(EngineError::Ambiguous(text.to_owned())),
            }
        }
        let reference = self.stored_name(text)?;
        let digest = self
            .images()
            .resolve(&reference)
            .map_err(images_err(format!("looking up {reference}")))?
            .ok_or_else(|| EngineError::ImageNotFound(reference.to_string()))?;
        let names = names_of(&digest);
        Ok((digest, names, false))
    }

    /// The stored name `text` stands for: itself, or the built-in image's name for
    /// the busybox names `run` maps to it (so `rmi busybox` removes what
    /// `run busybox` used).
    fn stored_name(&self, text: &str) -> Result<berth_image::Reference, EngineError> {
        let reference = Self::parse_reference(text)?;
        let stored = self
            .images()
            .resolve(&reference)
            .map_err(images_err(format!("looking up {reference}")))?;
        if stored.is_none() && crate::engine::is_default_name(&reference) {
            return Ok(crate::build::DEFAULT_IMAGE
                .parse()
                .expect("default name parses"));
        }
        Ok(reference)
    }

    /// `berth tag SRC DST`: points `dst` at the image `src` names; returns the
    /// normalised new name.
    pub fn tag_image(&self, src: &str, dst: &str) -> Result<String, EngineError> {
        let target = Self::parse_reference(dst)?;
        if target.digest().is_some() {
            return Err(EngineError::Invalid(format!(
                "cannot tag with a digest reference: {dst}"
            )));
        }
        let digest = match self.lookup_image(src) {
            Ok((d, _)) => d,
            Err(EngineError::ImageNotFound(_)) => self.resolve_image(src)?.1,
            Err(e) => return Err(e),
        };
        self.images()
            .tag(&target, &digest)
            .map_err(images_err(format!("tagging {target}")))?;
        Ok(target.to_string())
    }

    /// `berth rmi [-f] IMAGE`. A name removes that name; an id removes every name
    /// of the image. When no name is left the image's content goes too.
    pub fn remove_image(&self, text: &str, force: bool) -> Result<RemovedImage, EngineError> {
        let (digest, names, by_id) = self.lookup(text)?;
        let to_untag: Vec<String> = if by_id {
            names.clone()
        } else {
            vec![self.stored_name(text)?.to_string()]
        };
        let last = names.iter().all(|n| to_untag.contains(n));
        let mut out = RemovedImage::default();
        if last {
            let users = self.containers_of(&digest)?;
            if !users.is_empty() && !force {
                return Err(EngineError::ImageInUse {
                    image: text.to_owned(),
                    container: users[0].name.clone(),
                });
            }
            for r in users {
                // `remove` takes the engine lock itself.
                out.containers.push(self.remove(&r.id, true)?);
            }
        }
        // A pull in flight may be about to name blobs that look unused now.
        let _no_pulls = PullLock::exclusive(self.root())?;
        let _lock = EngineLock::acquire(self.root())?;
        if last && !self.containers_of(&digest)?.is_empty() {
            return Err(EngineError::ImageInUse {
                image: text.to_owned(),
                container: "(created meanwhile)".into(),
            });
        }
        for name in &to_untag {
            let reference = Self::parse_reference(name)?;
            self.images()
                .untag(&reference)
                .map_err(images_err(format!("untagging {reference}")))?;
            out.untagged.push(name.clone());
        }
        let still_named = self
            .images()
            .is_referenced(&digest)
            .map_err(images_err("listing images".into()))?;
        if !still_named {
            self.delete_unreferenced(&digest)?;
            out.deleted = Some(digest);
        }
        Ok(out)
    }

    fn containers_of(&self, digest: &Digest) -> Result<Vec<Record>, EngineError> {
        Ok(self
            .list_containers(true)?
            .into_iter()
            .map(|c| c.record)
            .filter(|r| &r.image_digest == digest)
            .collect())
    }

    /// Blobs and committed snapshots that some named image still needs.
    pub(crate) fn referenced(&self) -> Result<(HashSet<Digest>, HashSet<String>), EngineError> {
        let mut blobs = HashSet::new();
        let mut chains = HashSet::new();
        let all = self
            .images()
            .list()
            .map_err(images_err("listing images".into()))?;
        for (_, d) in all {
            blobs.insert(d.clone());
            if let Ok((m, c)) = self.read_image(&d) {
                blobs.insert(m.config.digest.clone());
                blobs.extend(m.layers.iter().map(|l| l.digest.clone()));
                chains.extend(chain_ids(&c.rootfs.diff_ids).iter().map(|c| c.to_string()));
            }
        }
        Ok((blobs, chains))
    }

    /// Deletes what of the (no longer named) image `digest` no named image needs:
    /// its layers' snapshots top down (stopping at one a container still sits
    /// on), then its blobs. The caller holds the engine lock.
    fn delete_unreferenced(&self, digest: &Digest) -> Result<(), EngineError> {
        let (kept_blobs, kept_chains) = self.referenced()?;
        let mut blobs = vec![digest.clone()];
        if let Ok((m, c)) = self.read_image(digest) {
            for chain in chain_ids(&c.rootfs.diff_ids).iter().rev() {
                let key = chain.to_string();
                if kept_chains.contains(&key) {
                    break; // its parents are kept too
                }
                match self.snapshots().remove(&key) {
                    Ok(()) | Err(SnapshotError::NotFound(_)) => {}
                    Err(SnapshotError::HasChildren { .. }) => break,
                    Err(source) => {
                        return Err(EngineError::Snapshot {
                            action: format!("removing layer snapshot {key}"),
                            source,
                        })
                    }
                }
            }
            blobs.push(m.config.digest.clone());
            blobs.extend(m.layers.iter().map(|l| l.digest.clone()));
        }
        for b in blobs.iter().filter(|b| !kept_blobs.contains(b)) {
            self.blobs().delete(b).map_err(|source| EngineError::Blob {
                action: format!("deleting blob {b}"),
                source,
            })?;
        }
        Ok(())
    }

    /// `berth inspect` of an image.
    pub fn inspect_image(&self, text: &str) -> Result<ImageInspect, EngineError> {
        let (digest, repo_tags) = self.lookup_image(text)?;
        let (manifest, _) = self.read_image(&digest)?;
        let bytes = self
            .blobs()
            .read_small(&manifest.config.digest, MAX_CONFIG_SIZE)
            .map_err(|source| EngineError::Blob {
                action: format!("reading config of {digest}"),
                source,
            })?;
        let config = serde_json::from_slice(&bytes).map_err(|e| EngineError::Io {
            action: "parsing image config",
            path: manifest.config.digest.to_string().into(),
            source: e.into(),
        })?;
        Ok(ImageInspect {
            id: manifest.config.digest.clone(),
            size: manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>(),
            layers: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
            digest,
            repo_tags,
            manifest,
            config,
        })
    }

    /// `berth inspect` of a container.
    pub fn inspect_container(&self, name_or_id: &str) -> Result<ContainerInspect, EngineError> {
        let record = self.find(name_or_id)?;
        let status = self
            .list_containers(true)?
            .into_iter()
            .find(|c| c.record.id == record.id)
            .map_or(record.phase, |c| c.status);
        let path = self
            .root()
            .join("containers")
            .join(&record.id)
            .join("config.json");
        let bytes = fs::read(&path).map_err(io_err("reading", &path))?;
        let spec = serde_json::from_slice(&bytes).map_err(|e| EngineError::Io {
            action: "parsing",
            path: path.clone(),
            source: e.into(),
        })?;
        Ok(ContainerInspect {
            status,
            record,
            spec,
        })
    }
}
