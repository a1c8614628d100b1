//! Pulling: manifest (resolving an index to linux/amd64), config, then layers in
//! parallel, each streamed into the blob store with its digest checked.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{Ctx, RegistryClient, RegistryError, ReqBody};
use crate::digest::Digest;
use crate::manifest::{
    media_type, Descriptor, ImageConfig, ImageManifest, Manifest, Platform, MAX_CONFIG_SIZE,
    MAX_MANIFEST_SIZE,
};
use crate::reference::Reference;
use crate::store::{BlobStore, PutOutcome, StoreError};

/// Progress callback: `(blob digest, bytes done, bytes total)`, called from the
/// download threads as data arrives (and once with done == total for blobs
/// already in the store).
pub type Progress<'a> = &'a (dyn Fn(&Digest, u64, u64) + Sync);

/// Asked once for each layer about to be downloaded (not for one already in the
/// store), with the image config, the layer's index and descriptor, before its
/// download starts. A writer returned receives a copy of the layer's bytes as
/// they arrive and is dropped when the download ends: a consumer can unpack the
/// layer while it downloads. The copy is unverified until the pull returns Ok.
/// Once a write to it fails, the copy stops and the download goes on.
pub type LayerTee<'a> =
    &'a (dyn Fn(&ImageConfig, usize, &Descriptor) -> Option<Box<dyn Write + Send>> + Sync);

/// What `pull` brought into the store.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// The reference pulled.
    pub reference: Reference,
    /// Digest of the index or manifest list the reference named, if it named one.
    pub index_digest: Option<Digest>,
    /// Digest of the linux/amd64 image manifest (the image's identity).
    pub manifest_digest: Digest,
    /// The image manifest.
    pub manifest: ImageManifest,
    /// The parsed image config (its blob is `manifest.config.digest`).
    pub config: ImageConfig,
    /// The layers, base first, all in the store.
    pub layers: Vec<Descriptor>,
}

/// Counts bytes for the progress callback and copies them to the tee, if any.
struct ProgressReader<'a, R> {
    inner: R,
    digest: &'a Digest,
    done: u64,
    total: u64,
    progress: Progress<'a>,
    tee: Option<Box<dyn Write + Send>>,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(tee) = &mut self.tee {
            if tee.write_all(&buf[..n]).is_err() {
                self.tee = None;
            }
        }
        self.done += n as u64;
        (self.progress)(self.digest, self.done, self.total);
        Ok(n)
    }
}

impl RegistryClient {
    /// Fetches a manifest by tag or digest, checking its digest against the one
    /// asked for or, for a tag, the one the registry announces. Returns its
    /// digest, raw bytes and parsed form.
    pub fn fetch_manifest(
        &self,
        reference: &Reference,
        tag_or_digest: &str,
    ) -> Result<(Digest, Vec<u8>, Manifest), RegistryError> {
        let ctx = Ctx {
            reference,
            push: false,
            action: "fetching manifest",
            target: format!("{}:{tag_or_digest}", reference.name())
                .replacen(":sha256:", "@sha256:", 1),
        };
        let url = format!(
            "{}/v2/{}/manifests/{tag_or_digest}",
            self.base_url(reference),
            reference.repository()
        );
        let accept = media_type::MANIFEST_TYPES.join(", ");
        let mut resp = self.send(&ctx, "GET", &url, &[("Accept", &accept)], ReqBody::Empty)?;
        if resp.status().as_u16() != 200 {
            return Err(ctx.status_err(resp));
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type");
        let announced = header("docker-content-digest");
        let bytes = Self::read_limited(&ctx, &mut resp, MAX_MANIFEST_SIZE)?;
        let got = Digest::of_bytes(&bytes);
        let expected = match tag_or_digest.parse::<Digest>() {
            Ok(d) => Some(d),
            Err(_) => announced.and_then(|a| a.parse().ok()),
        };
        if let Some(expected) = expected.filter(|e| *e != got) {
            return Err(RegistryError::ManifestDigestMismatch {
                target: ctx.target,
                expected,
                got,
            });
        }
        let manifest = Manifest::parse(content_type.as_deref(), &bytes).map_err(|source| {
            RegistryError::Manifest {
                action: "parsing manifest",
                target: ctx.target.clone(),
                source,
            }
        })?;
        Ok((got, bytes, manifest))
    }

    /// Downloads one blob into the store unless it is there already.
    pub fn fetch_blob(
        &self,
        reference: &Reference,
        desc: &Descriptor,
        store: &BlobStore,
        progress: Progress<'_>,
    ) -> Result<PutOutcome, RegistryError> {
        self.fetch_blob_teed(reference, desc, store, progress, &|| None)
    }

    /// [`fetch_blob`](Self::fetch_blob), copying what arrives to the writer
    /// `tee` gives when the blob is not in the store yet.
    fn fetch_blob_teed(
        &self,
        reference: &Reference,
        desc: &Descriptor,
        store: &BlobStore,
        progress: Progress<'_>,
        tee: &dyn Fn() -> Option<Box<dyn Write + Send>>,
    ) -> Result<PutOutcome, RegistryError> {
        let digest = &desc.digest;
        if store.has(digest) {
            tracing::debug!(%digest, "blob already present");
            progress(digest, desc.size, desc.size);
            return Ok(PutOutcome::AlreadyPresent);
        }
        let ctx = Ctx {
            reference,
            push: false,
            action: "fetching blob",
            target: format!("{digest} from {}", reference.name()),
        };
        let url = format!(
            "{}/v2/{}/blobs/{digest}",
            self.base_url(reference),
            reference.repository()
        );
        tracing::debug!(%digest, size = desc.size, "fetching blob");
        let mut resp = self.send(&ctx, "GET", &url, &[], ReqBody::Empty)?;
        if resp.status().as_u16() != 200 {
            return Err(ctx.status_err(resp));
        }
        let reader = ProgressReader {
            inner: resp.body_mut().as_reader(),
            digest,
            done: 0,
            total: desc.size,
            progress,
            tee: tee(),
        };
        store
            .put(digest, desc.size, reader)
            .map_err(|e| blob_error(&ctx, reference, e))
    }

    /// Pulls an image: its linux/amd64 manifest, config and layers (in parallel,
    /// skipping those already stored) end up in `store`. The manifest (and index)
    /// blobs are stored too, so the image can be pushed again byte for byte.
    pub fn pull(
        &self,
        reference: &Reference,
        store: &BlobStore,
        progress: Progress<'_>,
    ) -> Result<PulledImage, RegistryError> {
        self.pull_tracked(reference, store, progress, &Mutex::default(), None)
    }

    /// [`pull`](Self::pull), adding to `stored` every blob this pull wrote into
    /// the store (not those it found there), also when it fails: what a caller
    /// may delete again after a failed pull. With `tee`, each layer's bytes are
    /// also handed out as they arrive (see [`LayerTee`]).
    pub fn pull_tracked(
        &self,
        reference: &Reference,
        store: &BlobStore,
        progress: Progress<'_>,
        stored: &Mutex<Vec<Digest>>,
        tee: Option<LayerTee<'_>>,
    ) -> Result<PulledImage, RegistryError> {
        let track = |digest: &Digest, outcome: PutOutcome| {
            if outcome == PutOutcome::Stored {
                stored
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(digest.clone());
            }
        };
        let put_bytes = |bytes: &[u8]| {
            let digest = Digest::of_bytes(bytes);
            let outcome = store.put(&digest, bytes.len() as u64, bytes)?;
            track(&digest, outcome);
            Ok::<_, StoreError>(digest)
        };
        let (digest, bytes, manifest) =
            self.fetch_manifest(reference, &reference.manifest_ref())?;
        let store_err = |action, target: String| {
            move |source| RegistryError::Store {
                action,
                target,
                source,
            }
        };
        let (index_digest, manifest_digest, bytes, manifest) = match manifest {
            Manifest::Image(m) => (None, digest, bytes, m),
            Manifest::Index(index) => {
                put_bytes(&bytes).map_err(store_err("storing index of", reference.to_string()))?;
                let platform = Platform::linux_amd64();
                let desc = index
                    .select(&platform)
                    .map_err(|source| RegistryError::Manifest {
                        action: "resolving",
                        target: reference.to_string(),
                        source,
                    })?;
                let (d, b, m) = self.fetch_manifest(reference, &desc.digest.to_string())?;
                let Manifest::Image(m) = m else {
                    return Err(RegistryError::Manifest {
                        action: "resolving",
                        target: reference.to_string(),
                        source: crate::manifest::ManifestError::UnsupportedMediaType(
                            "nested index".to_owned(),
                        ),
                    });
                };
                (Some(digest), d, b, m)
            }
        };
        put_bytes(&bytes).map_err(store_err("storing manifest of", reference.to_string()))?;

        let config_desc = &manifest.config;
        let config_target = format!("{} from {}", config_desc.digest, reference.name());
        if config_desc.size > MAX_CONFIG_SIZE {
            return Err(RegistryError::TooLarge {
                action: "fetching config",
                target: config_target,
                limit: MAX_CONFIG_SIZE,
            });
        }
        let outcome = self.fetch_blob(reference, config_desc, store, progress)?;
        track(&config_desc.digest, outcome);
        let config_bytes = store
            .read_small(&config_desc.digest, MAX_CONFIG_SIZE)
            .map_err(store_err("reading config", config_target.clone()))?;
        let config = ImageConfig::parse(&config_bytes)
            .and_then(|c| c.check_layers(&manifest).map(|()| c))
            .map_err(|source| RegistryError::Manifest {
                action: "checking config",
                target: config_target,
                source,
            })?;

        let tee = |i: usize| tee.and_then(|t| t(&config, i, &manifest.layers[i]));
        self.fetch_layers(reference, &manifest.layers, store, progress, &track, &tee)?;
        Ok(PulledImage {
            reference: reference.clone(),
            index_digest,
            manifest_digest,
            layers: manifest.layers.clone(),
            manifest,
            config,
        })
    }

    /// Downloads layers with `parallel_downloads` threads; stops handing out
    /// work after the first failure and returns the failure of the lowest layer.
    fn fetch_layers(
        &self,
        reference: &Reference,
        layers: &[Descriptor],
        store: &BlobStore,
        progress: Progress<'_>,
        track: &(dyn Fn(&Digest, PutOutcome) + Sync),
        tee: &(dyn Fn(usize) -> Option<Box<dyn Write + Send>> + Sync),
    ) -> Result<(), RegistryError> {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let errors = Mutex::new(Vec::new());
        let workers = self.opts.parallel_downloads.clamp(1, 16).min(layers.len());
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= layers.len() || failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let tee_i = || tee(i);
                    match self.fetch_blob_teed(reference, &layers[i], store, progress, &tee_i) {
                        Ok(outcome) => track(&layers[i].digest, outcome),
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            if let Ok(mut errs) = errors.lock() {
                                errs.push((i, e));
                            }
                        }
                    }
                });
            }
        });
        let mut errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
        errors.sort_by_key(|(i, _)| *i);
        match errors.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }
}

fn blob_error(ctx: &Ctx<'_>, reference: &Reference, e: StoreError) -> RegistryError {
    match e {
        StoreError::DigestMismatch { expected, got } => RegistryError::BlobDigestMismatch {
            digest: expected,
            repository: reference.name(),
            got,
        },
        StoreError::SizeMismatch {
            digest,
            expected,
            got,
            more,
        } => RegistryError::BlobSizeMismatch {
            digest,
            repository: reference.name(),
            expected,
            got,
            more,
        },
        StoreError::Read { source, .. } => ctx.http_err(ureq::Error::Io(source)),
        other => RegistryError::Store {
            action: "storing blob",
            target: ctx.target.clone(),
            source: other,
        },
    }
}
