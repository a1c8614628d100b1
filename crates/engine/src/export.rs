//! `export` and `import`: a container's merged filesystem as a tar, and a tar as
//! a one-layer image.
//!
//! `export` tars the container's root as the container sees it (the overlay of
//! its layers and its own changes, so no whiteouts): from its mounted root if it
//! is mounted, else by mounting its snapshot there for the time of the export,
//! under the engine lock. The archive is written to a temp file beside the
//! target, then renamed.
//!
//! `import` checks that the file is a tar (plain, gzip or zstd), then stores it
//! gzip'd as the only layer of an image with a minimal config (linux/amd64,
//! `PATH` set, no command), hashing the uncompressed stream for the diff id.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_image::manifest::{media_type, RootFs};
use berth_image::{Descriptor, Digest, ImageConfig, ImageManifest, RunConfig};
use berth_snapshot::{detect_compression, mount_all, unmount, Compression};
use sha2::{Digest as _, Sha256};

use crate::engine::Engine;
use crate::error::{io_err, EngineError};
use crate::lock::{EngineLock, PullLock};

/// Whether `dir` is the root of a mount (a different device than its parent).
fn is_mount_point(dir: &Path) -> bool {
    let (Ok(own), Some(Ok(parent))) = (
        fs::symlink_metadata(dir),
        dir.parent().map(fs::symlink_metadata),
    ) else {
        return false;
    };
    own.dev() != parent.dev()
}

fn decompressed(file: File) -> io::Result<Box<dyn Read>> {
    let mut buffered = BufReader::new(file);
    Ok(match detect_compression(&mut buffered)? {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    })
}

/// Hashes what passes through.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl Engine {
    /// `berth export -o FILE CONTAINER`.
    pub fn export_container(&self, name_or_id: &str, out: &Path) -> Result<(), EngineError> {
        let _lock = EngineLock::acquire(self.root())?;
        let record = self.find(name_or_id)?;
        let rootfs = self
            .root()
            .join("containers")
            .join(&record.id)
            .join("rootfs");
        let mounted_here = if is_mount_point(&rootfs) {
            false
        } else {
            let key = format!("container-{}", record.id);
            let mounts = self
                .snapshots()
                .mounts(&key)
                .map_err(|source| EngineError::Snapshot {
                    action: format!("looking up the root of container {}", record.id),
                    source,
                })?;
            mount_all(&mounts, &rootfs).map_err(|source| EngineError::Mount {
                action: format!("mounting the root of container {}", record.id),
                source,
            })?;
            true
        };
        let written = write_atomically(out, |w| {
            let mut tar = tar::Builder::new(w);
            tar.follow_symlinks(false);
            tar.append_dir_all(".", &rootfs)?;
            tar.into_inner()
        });
        if mounted_here {
            if let Err(e) = unmount(&rootfs) {
                tracing::warn!("unmounting {}: {e}", rootfs.display());
            }
        }
        written
    }

    /// `berth import FILE [REF]`: returns the name and manifest digest. Without
    /// `REF` the image is named `localhost/import-<12 hex of its manifest>:latest`.
    pub fn import_tar(
        &self,
        file: &Path,
        reference: Option<&str>,
    ) -> Result<(String, Digest), EngineError> {
        let reference = reference.map(Self::parse_reference).transpose()?;
        // Like a pull: blobs stored before the tag are not prune's to take.
        let _storing = PullLock::shared(self.root())?;
        let read_err = io_err("reading", file);
        let mut input = File::open(file).map_err(io_err("opening", file))?;
        // First pass: it is a tar.
        let mut entries = 0usize;
        {
            let mut archive = tar::Archive::new(
                decompressed(input.try_clone().map_err(io_err("opening", file))?)
                    .map_err(io_err("reading", file))?,
            );
            for entry in archive.entries().map_err(io_err("reading tar", file))? {
                let mut entry = entry.map_err(io_err("reading tar", file))?;
                io::copy(&mut entry, &mut io::sink()).map_err(io_err("reading tar", file))?;
                entries += 1;
            }
        }
        if entries == 0 {
            return Err(EngineError::Invalid(format!(
                "{}: not a tar archive (or an empty one)",
                file.display()
            )));
        }
        input.rewind().map_err(read_err)?;
        let mut hashing = HashingReader {
            inner: decompressed(input).map_err(io_err("reading", file))?,
            hasher: Sha256::new(),
        };
        let gz = flate2::read::GzEncoder::new(&mut hashing, flate2::Compression::default());
        let blob_err = |action: &str| {
            let action = action.to_owned();
            move |source| EngineError::Blob { action, source }
        };
        let (layer, layer_size) = self
            .blobs()
            .import(gz)
            .map_err(blob_err("storing imported layer"))?;
        let hex: String = hashing
            .hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let diff_id = Digest::from_hex(&hex).expect("sha256 hex");
        let config = ImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            created: None,
            config: Some(RunConfig {
                env: Some(vec![
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ]),
                ..RunConfig::default()
            }),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![diff_id],
            },
        };
        let config_bytes = serde_json::to_vec(&config).expect("config serialises");
        let config_digest = self
            .blobs()
            .put_bytes(&config_bytes)
            .map_err(blob_err("storing image config"))?;
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.into()),
            config: Descriptor::new(
                media_type::OCI_CONFIG,
                config_digest,
                config_bytes.len() as u64,
            ),
            layers: vec![Descriptor::new(
                media_type::OCI_LAYER_GZIP,
                layer,
                layer_size,
            )],
            annotations: None,
        };
        let bytes = serde_json::to_vec(&manifest).expect("manifest serialises");
        let digest = self
            .blobs()
            .put_bytes(&bytes)
            .map_err(blob_err("storing image manifest"))?;
        let reference = match reference {
            Some(r) => r,
            None => Self::parse_reference(&format!("localhost/import-{}", &digest.hex()[..12]))?,
        };
        self.images()
            .tag(&reference, &digest)
            .map_err(|source| EngineError::Images {
                action: format!("tagging {reference}"),
                source,
            })?;
        Ok((reference.to_string(), digest))
    }
}

/// Writes `out` through `write` into a temp file beside it, synced and renamed
/// into place; on error the temp file is removed.
pub(crate) fn write_atomically(
    out: &Path,
    write: impl FnOnce(BufWriter<File>) -> io::Result<BufWriter<File>>,
) -> Result<(), EngineError> {
    let name = out
        .file_name()
        .ok_or_else(|| EngineError::Invalid(format!("{}: not a file name", out.display())))?;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.berth-tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = File::create(&tmp)
        .and_then(|f| write(BufWriter::new(f)))
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .and_then(|f| {
            f.sync_all()?;
            fs::rename(&tmp, out)
        });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err("writing", out))
}
