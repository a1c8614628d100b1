//! Manifests and image configs: OCI image index and manifest, Docker v2 schema 2
//! manifest and manifest list (same shapes, other media types), and the image
//! config's runtime parts (Entrypoint, Cmd, Env, WorkingDir, User, ...).
//!
//! Parsing is lenient about fields we do not use and strict about those we do
//! (schema version, digests, sizes), since manifests come from the network.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Media types of manifests, configs and layers.
pub mod media_type {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// Docker v2 schema 2 manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker v2 manifest list.
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// OCI gzip'd tar layer.
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// OCI uncompressed tar layer.
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// OCI zstd tar layer.
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// Docker gzip'd tar layer.
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Docker foreign (non-distributable) layer.
    pub const DOCKER_FOREIGN_LAYER: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    /// Every manifest type we accept, for the `Accept` header.
    pub const MANIFEST_TYPES: [&str; 4] = [
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
    ];
}

/// Largest manifest we read into memory (containerd uses the same bound).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// Largest image config we read into memory.
pub const MAX_CONFIG_SIZE: u64 = 8 << 20;

/// Why a manifest or config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not valid JSON for the expected type.
    #[error("parsing {what}")]
    Json {
        /// What was being parsed ("image manifest", "image config"...).
        what: &'static str,
        /// The serde error (with its position).
        #[source]
        source: serde_json::Error,
    },
    /// A media type we do not handle (e.g. Docker schema 1).
    #[error("parsing manifest: unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    /// `schemaVersion` is not 2.
    #[error("parsing manifest: unsupported schemaVersion {0}")]
    SchemaVersion(u32),
    /// The index lists no manifest for the wanted platform.
    #[error("choosing a manifest from the index: none for {0}")]
    NoMatchingPlatform(String),
    /// The config's layer list does not match the manifest's.
    #[error("checking image config: {diff_ids} diff_ids for {layers} layers")]
    LayerCountMismatch {
        /// Entries in `rootfs.diff_ids`.
        diff_ids: usize,
        /// Layers in the manifest.
        layers: usize,
    },
}

/// A pointer to content: media type, digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The content's media type.
    pub media_type: String,
    /// The content's digest.
    pub digest: Digest,
    /// The content's size in bytes.
    pub size: u64,
    /// Alternative download locations (foreign layers); never followed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The platform, in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// A descriptor with no urls, annotations or platform.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest,
            size,
            urls: Vec::new(),
            annotations: None,
            platform: None,
        }
    }
}

/// An OS/architecture pair, as in an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`...).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// CPU variant (`v8`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// OS version, if any.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl Platform {
    /// linux/amd64, the only platform berth runs today.
    pub fn linux_amd64() -> Self {
        Self {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
            os_version: None,
        }
    }

    fn matches(&self, wanted: &Platform) -> bool {
        let variant_ok = match (&wanted.variant, &self.variant) {
            (None, None) => true,
            // amd64 has only one meaningful baseline; accept v1 or none.
            (None, Some(v)) => wanted.architecture == "amd64" && v == "v1",
            (Some(w), got) => got.as_deref() == Some(w.as_str()),
        };
        self.os == wanted.os && self.architecture == wanted.architecture && variant_ok
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image manifest (OCI or Docker v2 schema 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type (optional in OCI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image config.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own media type (optional in OCI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// One manifest per platform (and attestations, with platform unknown/unknown).
    pub manifests: Vec<Descriptor>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ImageIndex {
    /// The first manifest for `platform`.
    pub fn select(&self, platform: &Platform) -> Result<&Descriptor, ManifestError> {
        self.manifests
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| p.matches(platform)))
            .ok_or_else(|| ManifestError::NoMatchingPlatform(platform.to_string()))
    }
}

/// What a manifest endpoint may return.
// One per pull, never in bulk: boxing would only make matching clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// A single-platform image.
    Image(ImageManifest),
    /// A multi-platform index.
    Index(ImageIndex),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde::de::IgnoredAny>,
}

impl Manifest {
    /// Parses a manifest, using the body's `mediaType`, else `content_type` (from
    /// the HTTP response), else the presence of `manifests` to tell the kind.
    pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Self, ManifestError> {
        let probe: Probe = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            what: "manifest",
            source,
        })?;
        if probe.schema_version != 2 {
            return Err(ManifestError::SchemaVersion(probe.schema_version));
        }
        let content_type = content_type
            .map(|c| c.split(';').next().unwrap_or(c).trim())
            .filter(|c| media_type::MANIFEST_TYPES.contains(c));
        let kind = match probe.media_type.as_deref().or(content_type) {
            Some(t) => t.to_owned(),
            None if probe.manifests.is_some() => media_type::OCI_INDEX.to_owned(),
            None => media_type::OCI_MANIFEST.to_owned(),
        };
        match kind.as_str() {
            media_type::OCI_MANIFEST | media_type::DOCKER_MANIFEST => serde_json::from_slice(bytes)
                .map(Manifest::Image)
                .map_err(|source| ManifestError::Json {
                    what: "image manifest",
                    source,
                }),
            media_type::OCI_INDEX | media_type::DOCKER_MANIFEST_LIST => {
                serde_json::from_slice(bytes)
                    .map(Manifest::Index)
                    .map_err(|source| ManifestError::Json {
                        what: "image index",
                        source,
                    })
            }
            other => Err(ManifestError::UnsupportedMediaType(other.to_owned())),
        }
    }

    /// The media type to send as `Content-Type` when pushing this manifest.
    pub fn media_type(&self) -> &str {
        let (own, default) = match self {
            Manifest::Image(m) => (&m.media_type, media_type::OCI_MANIFEST),
            Manifest::Index(i) => (&i.media_type, media_type::OCI_INDEX),
        };
        own.as_deref().unwrap_or(default)
    }
}

/// An image config; only the fields berth uses are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// Creation time (RFC 3339), if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// How to run the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RunConfig>,
    /// The uncompressed layer digests.
    pub rootfs: RootFs,
}

impl ImageConfig {
    /// Parses a config blob.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            what: "image config",
            source,
        })
    }

    /// Checks that the config describes as many layers as the manifest carries.
    pub fn check_layers(&self, manifest: &ImageManifest) -> Result<(), ManifestError> {
        let (diff_ids, layers) = (self.rootfs.diff_ids.len(), manifest.layers.len());
        if diff_ids == layers {
            Ok(())
        } else {
            Err(ManifestError::LayerCountMismatch { diff_ids, layers })
        }
    }
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Digest of each uncompressed layer tar, base first.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// The `config` part of an image config: defaults for running a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `user`, `user:group`, `uid` or `uid:gid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `port/proto` keys (the values are empty objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// `KEY=value` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// The executable and its first arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments (or command when there is no entrypoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// The working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Image labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// The signal that stops the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        Digest::of_bytes(&[n]).to_string()
    }

    fn index_json(media: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{media}","manifests":[
              {{"mediaType":"{m}","digest":"{a}","size":1,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},
              {{"mediaType":"{m}","digest":"{b}","size":2,"platform":{{"architecture":"amd64","os":"linux"}}}},
              {{"mediaType":"{m}","digest":"{c}","size":3,"platform":{{"architecture":"unknown","os":"unknown"}}}}]}}"#,
            m = media_type::OCI_MANIFEST,
            a = d(1),
            b = d(2),
            c = d(3)
        )
    }

    #[test]
    fn index_and_manifest_list_select_linux_amd64() {
        for media in [media_type::OCI_INDEX, media_type::DOCKER_MANIFEST_LIST] {
            let Manifest::Index(index) =
                Manifest::parse(None, index_json(media).as_bytes()).unwrap()
            else {
                panic!("not an index");
            };
            assert_eq!(
                index
                    .select(&Platform::linux_amd64())
                    .unwrap()
                    .digest
                    .to_string(),
                d(2)
            );
            let arm = Platform {
                architecture: "arm64".into(),
                variant: Some("v8".into()),
                ..Platform::linux_amd64()
            };
            assert_eq!(index.select(&arm).unwrap().size, 1);
            let s390 = Platform {
                architecture: "s390x".into(),
                ..Platform::linux_amd64()
            };
            let err = index.select(&s390).unwrap_err().to_string();
            assert_eq!(
                err,
                "choosing a manifest from the index: none for linux/s390x"
            );
        }
    }

    #[test]
    fn kind_comes_from_content_type_when_the_body_has_none() {
        let body = index_json("x").replace(r#""mediaType":"x","#, "");
        assert!(matches!(
            Manifest::parse(Some(media_type::DOCKER_MANIFEST_LIST), body.as_bytes()),
            Ok(Manifest::Index(_))
        ));
        assert!(matches!(
            Manifest::parse(None, body.as_bytes()),
            Ok(Manifest::Index(_))
        ));
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{}","size":5}},"layers":[]}}"#,
            media_type::OCI_CONFIG,
            d(9)
        );
        assert!(matches!(
            Manifest::parse(Some("application/json"), manifest.as_bytes()),
            Ok(Manifest::Image(_))
        ));
    }

    #[test]
    fn docker_manifest_and_bad_inputs() {
        let docker = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","size":7023,"digest":"{}"}},
            "layers":[{{"mediaType":"{}","size":32654,"digest":"{}"}}]}}"#,
            media_type::DOCKER_MANIFEST,
            media_type::DOCKER_CONFIG,
            d(1),
            media_type::DOCKER_LAYER_GZIP,
            d(2)
        );
        let Manifest::Image(m) = Manifest::parse(None, docker.as_bytes()).unwrap() else {
            panic!("not a manifest")
        };
        assert_eq!(m.layers[0].size, 32654);
        let schema1 = r#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(matches!(
            Manifest::parse(None, schema1.as_bytes()),
            Err(ManifestError::SchemaVersion(1))
        ));
        let weird = r#"{"schemaVersion":2,"mediaType":"text/plain"}"#;
        assert!(matches!(
            Manifest::parse(None, weird.as_bytes()),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        let bad_digest = docker.replace(&d(2), "sha256:1234");
        assert!(matches!(
            Manifest::parse(None, bad_digest.as_bytes()),
            Err(ManifestError::Json { .. })
        ));
        assert!(Manifest::parse(None, b"[1,2").is_err());
    }

    #[test]
    fn truncated_or_mangled_manifests_never_panic() {
        let body = index_json(media_type::OCI_INDEX);
        for end in 0..body.len() {
            let _ = Manifest::parse(None, &body.as_bytes()[..end]);
            let mut mangled = body.clone().into_bytes();
            mangled[end] = b'"';
            let _ = Manifest::parse(Some(media_type::OCI_MANIFEST), &mangled);
        }
    }

    #[test]
    fn image_config_runtime_fields() {
        let cfg = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"User":"1000:1000","ExposedPorts":{{"80/tcp":{{}}}},
            "Env":["PATH=/bin"],"Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"],"WorkingDir":"/srv",
            "Labels":{{"a":"b"}},"Volumes":null,"OnBuild":null}},"rootfs":{{"type":"layers","diff_ids":["{}"]}},"history":[]}}"#,
            d(4)
        );
        let c = ImageConfig::parse(cfg.as_bytes()).unwrap();
        let run = c.config.clone().unwrap();
        assert_eq!(run.user.as_deref(), Some("1000:1000"));
        assert!(run.exposed_ports.unwrap().contains_key("80/tcp"));
        assert_eq!(run.env.unwrap(), ["PATH=/bin"]);
        assert_eq!(run.entrypoint.unwrap(), ["/bin/sh", "-c"]);
        assert_eq!(run.cmd.unwrap(), ["echo hi"]);
        assert_eq!(run.working_dir.as_deref(), Some("/srv"));
        assert_eq!(run.labels.unwrap()["a"], "b");
        assert_eq!(c.rootfs.diff_ids.len(), 1);
        let null_config = r#"{"architecture":"amd64","os":"linux","config":{"Env":null,"Cmd":null},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        assert_eq!(
            ImageConfig::parse(null_config.as_bytes())
                .unwrap()
                .config
                .unwrap()
                .cmd,
            None
        );
    }
}
