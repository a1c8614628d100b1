//! Images: a content-addressed blob store, image references, manifests, a
//! registry client (OCI distribution v2) and a small name → manifest index.
//!
//! The map:
//! - [`digest`]: `sha256:<hex>` digests, the names of everything.
//! - [`store`]: [`BlobStore`], blobs under `<root>/blobs/sha256/<hex>`, verified before they enter.
//! - [`reference`]: [`Reference`], `busybox` → `docker.io/library/busybox:latest`.
//! - [`manifest`]: OCI/Docker manifests, indexes and image configs.
//! - [`registry`]: [`RegistryClient`], pull into and push from a [`BlobStore`].
//! - [`images`]: [`ImageStore`], `<root>/images.json`, names → manifest digests.

pub mod digest;
pub mod images;
pub mod manifest;
pub mod reference;
pub mod registry;
pub mod store;

pub use digest::{Digest, DigestError};
pub use images::{ImageStore, ImageStoreError};
pub use manifest::{
    Descriptor, ImageConfig, ImageIndex, ImageManifest, Manifest, ManifestError, Platform,
    RunConfig,
};
pub use reference::{Reference, ReferenceError};
pub use registry::{
    Credentials, LayerTee, Progress, PulledImage, RegistryClient, RegistryError, RegistryOptions,
    Scheme,
};
pub use store::{BlobStore, PutOutcome, StoreError};
