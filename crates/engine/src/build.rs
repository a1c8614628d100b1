//! Building images on the machine, without a registry: layer tars made in memory
//! (fixed owners and mtimes, so the same input gives the same digests), gzip'd,
//! stored with an OCI config and manifest, and tagged. The built-in default image
//! (`localhost/berth/busybox:latest`) is made this way from the host's static
//! busybox.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use berth_image::manifest::{media_type, RootFs};
use berth_image::{BlobStore, Descriptor, Digest, ImageConfig, ImageManifest, ImageStore};
use berth_image::{Reference, RunConfig};
use flate2::{Compression, GzBuilder};

use crate::error::{io_err, EngineError};

/// The mtime of every entry of a built layer (2024-01-01T00:00:00Z).
pub const BUILD_MTIME: u64 = 1_704_067_200;
/// The name of the built-in default image.
pub const DEFAULT_IMAGE: &str = "localhost/berth/busybox:latest";
/// Where the default image's busybox comes from.
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// One layer's tar, built in memory.
pub struct LayerBuilder {
    tar: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> Self {
        let mut tar = tar::Builder::new(Vec::new());
        tar.mode(tar::HeaderMode::Deterministic);
        Self { tar }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(BUILD_MTIME);
        h
    }

    /// Adds a directory.
    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.tar
            .append_data(&mut h, path, std::io::empty())
            .expect("appending to an in-memory tar");
        self
    }

    /// Adds a regular file.
    pub fn file(mut self, path: &str, data: &[u8], mode: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.tar
            .append_data(&mut h, path, data)
            .expect("appending to an in-memory tar");
        self
    }

    /// Adds a symbolic link.
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.tar
            .append_link(&mut h, path, target)
            .expect("appending to an in-memory tar");
        self
    }

    /// Adds a regular file whose name is written as given, unchecked (`../x`):
    /// for testing that hostile layers are refused.
    pub fn raw_file(mut self, name: &str, data: &[u8]) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, 0o644, data.len() as u64);
        let field = &mut h.as_old_mut().name;
        field.fill(0);
        field[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        self.tar
            .append(&h, data)
            .expect("appending to an in-memory tar");
        self
    }

    /// The uncompressed tar.
    pub fn finish(self) -> Vec<u8> {
        self.tar.into_inner().expect("finishing an in-memory tar")
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::default());
    enc.write_all(data).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

fn put(blobs: &BlobStore, bytes: &[u8], what: &str) -> Result<Digest, EngineError> {
    blobs.put_bytes(bytes).map_err(|source| EngineError::Blob {
        action: format!("storing {what}"),
        source,
    })
}

/// Stores an image made of `layers` (uncompressed tars, base first) and `run` in
/// `blobs` and tags it `reference` in `images`; returns the manifest's digest.
pub fn import_image(
    blobs: &BlobStore,
    images: &ImageStore,
    reference: &Reference,
    layers: &[Vec<u8>],
    run: RunConfig,
) -> Result<Digest, EngineError> {
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in layers {
        diff_ids.push(Digest::of_bytes(tar));
        let gz = gzip(tar);
        let digest = put(blobs, &gz, "layer")?;
        descriptors.push(Descriptor::new(
            media_type::OCI_LAYER_GZIP,
            digest,
            gz.len() as u64,
        ));
    }
    let config = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        created: Some("2024-01-01T00:00:00Z".into()),
        config: Some(run),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
    };
    let config_bytes = serde_json::to_vec(&config).expect("image config serialises");
    let config_digest = put(blobs, &config_bytes, "image config")?;
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        config: Descriptor::new(
            media_type::OCI_CONFIG,
            config_digest,
            config_bytes.len() as u64,
        ),
        layers: descriptors,
        annotations: None,
    };
    let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest serialises");
    let digest = put(blobs, &manifest_bytes, "image manifest")?;
    images
        .tag(reference, &digest)
        .map_err(|source| EngineError::Images {
            action: format!("tagging {reference}"),
            source,
        })?;
    Ok(digest)
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
www-data:x:33:33:www-data:/var/www:/bin/false\n\
nobody:x:65534:65534:nobody:/home:/bin/false\n";
const GROUP: &str =
    "root:x:0:\ndaemon:x:1:\nwww-data:x:33:\nusers:x:100:www-data\nnogroup:x:65534:\n";

/// The default image's only layer: `busybox` (from `busybox`, a static binary) at
/// `/bin/busybox` with a symlink per applet, and a minimal `/etc`.
pub fn busybox_layer(busybox: &Path) -> Result<Vec<u8>, EngineError> {
    let binary = std::fs::read(busybox).map_err(io_err("reading", busybox))?;
    let out = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(io_err("listing applets of", busybox))?;
    let mut applets: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap_or_default()
        .lines()
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
        .collect();
    if applets.is_empty() {
        return Err(EngineError::Invalid(format!(
            "{} lists no applets (is it busybox?)",
            busybox.display()
        )));
    }
    applets.sort_unstable();
    applets.dedup();
    let mut layer = LayerBuilder::new()
        .dir("bin", 0o755)
        .file("bin/busybox", &binary, 0o755);
    for applet in applets {
        layer = layer.symlink(&format!("bin/{applet}"), "busybox");
    }
    Ok(layer
        .dir("etc", 0o755)
        .file("etc/passwd", PASSWD.as_bytes(), 0o644)
        .file("etc/group", GROUP.as_bytes(), 0o644)
        .dir("root", 0o700)
        .dir("tmp", 0o1777)
        .dir("home", 0o755)
        .dir("var", 0o755)
        .dir("var/www", 0o755)
        .finish())
}

/// Builds the default image from the host's busybox and tags it [`DEFAULT_IMAGE`].
pub fn default_image(blobs: &BlobStore, images: &ImageStore) -> Result<Digest, EngineError> {
    let layer = busybox_layer(Path::new(HOST_BUSYBOX))?;
    let run = RunConfig {
        env: Some(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ]),
        cmd: Some(vec!["sh".into()]),
        ..RunConfig::default()
    };
    let reference: Reference = DEFAULT_IMAGE.parse().expect("the default name parses");
    import_image(blobs, images, &reference, &[layer], run)
}
