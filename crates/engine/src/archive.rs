//! `save` and `load`: images to and from tar archives.
//!
//! Both formats hold the blobs as stored (`blobs/sha256/<hex>`, layers still
//! compressed) with an OCI layout (`oci-layout`, `index.json` naming each image
//! by `io.containerd.image.name` and `org.opencontainers.image.ref.name`), so the
//! manifests round-trip byte for byte. `docker-archive` adds Docker's
//! `manifest.json` (`Config`, `RepoTags`, `Layers` as paths into the archive) —
//! the layout `docker save` itself writes since Docker 25, which older
//! `docker load`s read through `manifest.json` alone.
//!
//! `load` reads an OCI layout when the archive has `index.json`, else Docker's
//! `manifest.json` (any paths, compressed or plain layer tars: the manifest is
//! rebuilt, and each layer's uncompressed digest checked against the config's
//! diff ids). Every blob is checked against its digest as it enters the store; if
//! anything fails, the blobs this load added are deleted and no name is set.
//! Archives are written to a temp file beside the target, synced, then renamed.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use berth_image::manifest::{media_type, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE};
use berth_image::{
    Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, Manifest, PutOutcome,
};
use berth_snapshot::{detect_compression, Compression};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::engine::Engine;
use crate::error::{io_err, EngineError};
use crate::export::write_atomically;
use crate::lock::EngineLock;

/// The archive formats of `save`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveFormat {
    /// Docker's `manifest.json` (plus the OCI layout).
    #[default]
    DockerArchive,
    /// An OCI image layout.
    OciArchive,
}

impl std::str::FromStr for ArchiveFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "docker-archive" => Ok(Self::DockerArchive),
            "oci-archive" => Ok(Self::OciArchive),
            other => Err(format!(
                "unknown archive format {other:?} (docker-archive or oci-archive)"
            )),
        }
    }
}

/// One entry of Docker's `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

const NAME_ANNOTATION: &str = "io.containerd.image.name";
const REF_ANNOTATION: &str = "org.opencontainers.image.ref.name";

fn bad(what: impl Into<String>) -> EngineError {
    EngineError::Invalid(what.into())
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn header(size: u64, mode: u32, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, path: &str, data: &[u8]) -> io::Result<()> {
    let mut h = header(data.len() as u64, 0o644, tar::EntryType::Regular);
    tar.append_data(&mut h, path, data)
}

/// An image to save: its names and digest.
struct Saved {
    names: Vec<String>,
    digest: Digest,
    manifest: ImageManifest,
}

impl Engine {
    /// `berth save`: writes `images` to `out` (via a temp file renamed into place).
    pub fn save_images(
        &self,
        images: &[String],
        format: ArchiveFormat,
        out: &Path,
    ) -> Result<(), EngineError> {
        let mut saved: Vec<Saved> = Vec::new();
        for text in images {
            let (digest, mut names) = match self.lookup_image(text) {
                Ok(found) => found,
                Err(EngineError::ImageNotFound(_)) => {
                    let (r, d) = self.resolve_image(text)?;
                    (d, vec![r.to_string()])
                }
                Err(e) => return Err(e),
            };
            // A name saves that name; an id saves every name of the image.
            if let Ok(r) = Self::parse_reference(text) {
                if names.contains(&r.to_string()) {
                    names = vec![r.to_string()];
                }
            }
            let (manifest, _) = self.read_image(&digest)?;
            match saved.iter_mut().find(|s| s.digest == digest) {
                Some(s) => s.names.extend(names),
                None => saved.push(Saved {
                    names,
                    digest,
                    manifest,
                }),
            }
        }
        write_atomically(out, |w| self.write_archive(&saved, format, w))
    }

    fn write_archive(
        &self,
        saved: &[Saved],
        format: ArchiveFormat,
        writer: BufWriter<File>,
    ) -> io::Result<BufWriter<File>> {
        let mut tar = tar::Builder::new(writer);
        append_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        for dir in ["blobs/", "blobs/sha256/"] {
            let mut h = header(0, 0o755, tar::EntryType::Directory);
            tar.append_data(&mut h, dir, io::empty())?;
        }
        let mut written = std::collections::HashSet::new();
        let mut index = Vec::new();
        let mut docker = Vec::new();
        for s in saved {
            let m = &s.manifest;
            let blobs = [&s.digest, &m.config.digest]
                .into_iter()
                .chain(m.layers.iter().map(|l| &l.digest));
            for d in blobs {
                if !written.insert(d.clone()) {
                    continue;
                }
                let blob = self.blobs().open_blob(d).map_err(io::Error::other)?;
                let size = blob.metadata()?.len();
                let mut h = header(size, 0o644, tar::EntryType::Regular);
                tar.append_data(&mut h, blob_path(d), blob)?;
            }
            let media = m
                .media_type
                .clone()
                .unwrap_or_else(|| media_type::OCI_MANIFEST.into());
            let size = self.blobs().size(&s.digest).map_err(io::Error::other)?;
            let names: Vec<Option<&String>> = if s.names.is_empty() {
                vec![None]
            } else {
                s.names.iter().map(Some).collect()
            };
            for name in names {
                let mut desc = Descriptor::new(&media, s.digest.clone(), size);
                if let Some(name) = name {
                    let tag = name.rsplit_once(':').map_or("latest", |(_, t)| t);
                    desc.annotations = Some(BTreeMap::from([
                        (NAME_ANNOTATION.to_owned(), name.clone()),
                        (REF_ANNOTATION.to_owned(), tag.to_owned()),
                    ]));
                }
                index.push(desc);
            }
            docker.push(DockerEntry {
                config: blob_path(&m.config.digest),
                repo_tags: Some(s.names.clone()),
                layers: m.layers.iter().map(|l| blob_path(&l.digest)).collect(),
            });
        }
        let index = ImageIndex {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.into()),
            manifests: index,
            annotations: None,
        };
        append_bytes(&mut tar, "index.json", &serde_json::to_vec(&index)?)?;
        if format == ArchiveFormat::DockerArchive {
            append_bytes(&mut tar, "manifest.json", &serde_json::to_vec(&docker)?)?;
        }
        tar.into_inner()
    }

    /// `berth load`: stores the images of the archive at `path` and tags them;
    /// returns `(name or digest, manifest digest)` per image.
    pub fn load_images(&self, path: &Path) -> Result<Vec<(String, Digest)>, EngineError> {
        let _lock = EngineLock::acquire(self.root())?;
        let small = read_small_entries(path)?;
        // `import` does not say whether a blob was new: compare with what was there.
        let before: std::collections::HashSet<Digest> = self
            .blobs()
            .list()
            .map_err(|source| EngineError::Blob {
                action: "listing blobs".into(),
                source,
            })?
            .into_iter()
            .collect();
        let mut added = Vec::new();
        let result = if let Some(index) = small.get("index.json") {
            self.load_oci(path, index, &mut added)
        } else if let Some(manifest) = small.get("manifest.json") {
            self.load_docker(path, manifest, &mut added)
        } else {
            Err(bad(format!(
                "{}: neither an OCI archive (index.json) nor a docker archive (manifest.json)",
                path.display()
            )))
        };
        let loaded = match result {
            Ok(loaded) => loaded,
            Err(e) => {
                for d in added.iter().filter(|d| !before.contains(d)) {
                    let _ = self.blobs().delete(d);
                }
                return Err(e);
            }
        };
        let mut out = Vec::new();
        for (names, digest) in loaded {
            if names.is_empty() {
                out.push((digest.to_string(), digest.clone()));
            }
            for name in names {
                let r = Self::parse_reference(&name)?;
                self.images()
                    .tag(&r, &digest)
                    .map_err(|source| EngineError::Images {
                        action: format!("tagging {r}"),
                        source,
                    })?;
                out.push((r.to_string(), digest.clone()));
            }
        }
        Ok(out)
    }

    /// Stores the archive's `blobs/sha256/*` entries that `wanted` lists, each
    /// checked against its name.
    fn store_blobs(
        &self,
        path: &Path,
        wanted: &HashMap<String, Digest>,
        added: &mut Vec<Digest>,
    ) -> Result<(), EngineError> {
        let file = File::open(path).map_err(io_err("opening", path))?;
        let mut archive = tar::Archive::new(BufReader::new(file));
        let read_err = io_err("reading archive", path);
        let mut found = 0;
        for entry in archive.entries().map_err(io_err("reading archive", path))? {
            let entry = entry.map_err(io_err("reading archive", path))?;
            let name = entry_name(&entry);
            let Some(digest) = wanted.get(&name) else {
                continue;
            };
            found += 1;
            let size = entry.size();
            match self
                .blobs()
                .put(digest, size, entry)
                .map_err(|source| EngineError::Blob {
                    action: format!("storing {name} from {}", path.display()),
                    source,
                })? {
                PutOutcome::AlreadyPresent => {}
                _ => added.push(digest.clone()),
            }
        }
        if found < wanted.len() {
            let missing: Vec<&String> = wanted.keys().collect();
            return Err(read_err(io::Error::other(format!(
                "archive lacks some of {missing:?}"
            ))));
        }
        Ok(())
    }

    fn load_oci(
        &self,
        path: &Path,
        index: &[u8],
        added: &mut Vec<Digest>,
    ) -> Result<Vec<(Vec<String>, Digest)>, EngineError> {
        let index: ImageIndex = serde_json::from_slice(index)
            .map_err(|e| bad(format!("{}: index.json: {e}", path.display())))?;
        // First the manifests, then what they name.
        let mut wanted: HashMap<String, Digest> = index
            .manifests
            .iter()
            .map(|d| (blob_path(&d.digest), d.digest.clone()))
            .collect();
        self.store_blobs(path, &wanted, added)?;
        let mut images: Vec<(Vec<String>, Digest)> = Vec::new();
        wanted.clear();
        for desc in &index.manifests {
            let m = self.parse_manifest(&desc.digest)?;
            for d in std::iter::once(&m.config).chain(&m.layers) {
                if !self.blobs().has(&d.digest) {
                    wanted.insert(blob_path(&d.digest), d.digest.clone());
                }
            }
            let name = desc.annotations.as_ref().and_then(|a| {
                a.get(NAME_ANNOTATION)
                    .or_else(|| a.get(REF_ANNOTATION).filter(|r| r.contains(['/', ':'])))
            });
            match images.iter_mut().find(|(_, d)| d == &desc.digest) {
                Some((names, _)) => names.extend(name.cloned()),
                None => images.push((name.into_iter().cloned().collect(), desc.digest.clone())),
            }
        }
        self.store_blobs(path, &wanted, added)?;
        for (_, d) in &images {
            self.read_image(d)?; // config parses and matches the layers
        }
        Ok(images)
    }

    fn parse_manifest(&self, digest: &Digest) -> Result<ImageManifest, EngineError> {
        let bytes = self
            .blobs()
            .read_small(digest, MAX_MANIFEST_SIZE)
            .map_err(|source| EngineError::Blob {
                action: format!("reading manifest {digest}"),
                source,
            })?;
        match Manifest::parse(None, &bytes) {
            Ok(Manifest::Image(m)) => Ok(m),
            Ok(Manifest::Index(_)) => Err(EngineError::NotAnImage(digest.to_string())),
            Err(source) => Err(EngineError::Manifest {
                action: format!("parsing manifest {digest}"),
                source,
            }),
        }
    }

    fn load_docker(
        &self,
        path: &Path,
        manifest: &[u8],
        added: &mut Vec<Digest>,
    ) -> Result<Vec<(Vec<String>, Digest)>, EngineError> {
        let entries: Vec<DockerEntry> = serde_json::from_slice(manifest)
            .map_err(|e| bad(format!("{}: manifest.json: {e}", path.display())))?;
        // Docker's paths are not digests: hash each file as it is read.
        let mut digests: HashMap<String, (Digest, u64)> = HashMap::new();
        let wanted: Vec<&String> = entries
            .iter()
            .flat_map(|e| std::iter::once(&e.config).chain(&e.layers))
            .collect();
        let file = File::open(path).map_err(io_err("opening", path))?;
        let mut archive = tar::Archive::new(BufReader::new(file));
        for entry in archive.entries().map_err(io_err("reading archive", path))? {
            let entry = entry.map_err(io_err("reading archive", path))?;
            let name = entry_name(&entry);
            if !wanted.contains(&&name) || digests.contains_key(&name) {
                continue;
            }
            let (digest, size) =
                self.blobs()
                    .import(entry)
                    .map_err(|source| EngineError::Blob {
                        action: format!("storing {name} from {}", path.display()),
                        source,
                    })?;
            added.push(digest.clone());
            digests.insert(name, (digest, size));
        }
        let mut images = Vec::new();
        for e in &entries {
            let get = |p: &String| {
                digests
                    .get(p)
                    .cloned()
                    .ok_or_else(|| bad(format!("{}: {p} is missing", path.display())))
            };
            let (config_digest, config_size) = get(&e.config)?;
            let bytes = self
                .blobs()
                .read_small(&config_digest, MAX_CONFIG_SIZE)
                .map_err(|source| EngineError::Blob {
                    action: format!("reading config {}", e.config),
                    source,
                })?;
            let config = ImageConfig::parse(&bytes).map_err(|source| EngineError::Manifest {
                action: format!("parsing config {}", e.config),
                source,
            })?;
            if config.rootfs.diff_ids.len() != e.layers.len() {
                return Err(bad(format!(
                    "{}: {} lists {} layers, its config {}",
                    path.display(),
                    e.config,
                    e.layers.len(),
                    config.rootfs.diff_ids.len()
                )));
            }
            let mut layers = Vec::new();
            for (p, diff_id) in e.layers.iter().zip(&config.rootfs.diff_ids) {
                let (d, size) = get(p)?;
                let (media, got) = self.diff_id(&d)?;
                if &got != diff_id {
                    return Err(EngineError::DiffIdMismatch {
                        layer: d,
                        expected: diff_id.clone(),
                        got,
                    });
                }
                layers.push(Descriptor::new(media, d, size));
            }
            let manifest = ImageManifest {
                schema_version: 2,
                media_type: Some(media_type::OCI_MANIFEST.into()),
                config: Descriptor::new(media_type::OCI_CONFIG, config_digest, config_size),
                layers,
                annotations: None,
            };
            let bytes = serde_json::to_vec(&manifest).expect("manifest serialises");
            let digest = Digest::of_bytes(&bytes);
            if self
                .blobs()
                .put(&digest, bytes.len() as u64, &bytes[..])
                .map_err(|source| EngineError::Blob {
                    action: "storing rebuilt manifest".into(),
                    source,
                })?
                != PutOutcome::AlreadyPresent
            {
                added.push(digest.clone());
            }
            images.push((e.repo_tags.clone().unwrap_or_default(), digest));
        }
        Ok(images)
    }

    /// The media type and uncompressed digest of a stored layer.
    fn diff_id(&self, layer: &Digest) -> Result<(&'static str, Digest), EngineError> {
        let read_err = |source: io::Error| EngineError::Io {
            action: "decompressing layer",
            path: layer.to_string().into(),
            source,
        };
        let blob = self
            .blobs()
            .open_blob(layer)
            .map_err(|source| EngineError::Blob {
                action: format!("opening layer {layer}"),
                source,
            })?;
        let mut buffered = BufReader::new(blob);
        let (media, mut reader): (_, Box<dyn Read>) =
            match detect_compression(&mut buffered).map_err(read_err)? {
                Compression::None => (media_type::OCI_LAYER_TAR, Box::new(buffered)),
                Compression::Gzip => (
                    media_type::OCI_LAYER_GZIP,
                    Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
                ),
                Compression::Zstd => (
                    media_type::OCI_LAYER_ZSTD,
                    Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(read_err)?),
                ),
            };
        let mut hasher = Sha256::new();
        io::copy(&mut reader, &mut HashWriter(&mut hasher)).map_err(read_err)?;
        let hex: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok((media, Digest::from_hex(&hex).expect("sha256 hex")))
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn entry_name<R: Read>(entry: &tar::Entry<'_, R>) -> String {
    let name = entry
        .path()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.trim_start_matches("./").to_owned()
}

/// `index.json`, `manifest.json` and `oci-layout`, if present (at most 4 MiB each).
fn read_small_entries(path: &Path) -> Result<HashMap<String, Vec<u8>>, EngineError> {
    let file = File::open(path).map_err(io_err("opening", path))?;
    let mut archive = tar::Archive::new(BufReader::new(file));
    let mut out = HashMap::new();
    for entry in archive.entries().map_err(io_err("reading archive", path))? {
        let entry = entry.map_err(io_err("reading archive", path))?;
        let name = entry_name(&entry);
        if !matches!(name.as_str(), "index.json" | "manifest.json" | "oci-layout") {
            continue;
        }
        if entry.size() > MAX_MANIFEST_SIZE {
            return Err(bad(format!("{}: {name} is too large", path.display())));
        }
        let mut data = Vec::new();
        entry
            .take(MAX_MANIFEST_SIZE)
            .read_to_end(&mut data)
            .map_err(io_err("reading archive", path))?;
        out.insert(name, data);
    }
    Ok(out)
}
