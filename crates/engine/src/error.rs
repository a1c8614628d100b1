//! The engine's error type: each variant says what was being done and to what; the
//! cause is the source (the binary prints the chain joined with `: `).

use std::io;
use std::path::PathBuf;

use berth_image::{
    Digest, ImageStoreError, ManifestError, ReferenceError, RegistryError, StoreError,
};
use berth_snapshot::{MountError, SnapshotError};

use crate::backend::BackendError;

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Networking failed (or its input was refused).
    #[error("{action}")]
    Network {
        /// What was being done, and to what.
        action: String,
        /// The cause.
        #[source]
        source: berth_net::NetError,
    },
    /// A file or directory of the engine's state could not be used.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done ("writing container record").
        action: &'static str,
        /// To what.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The blob store failed.
    #[error("{action}")]
    Blob {
        /// What was being done, and to what.
        action: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// The image index failed.
    #[error("{action}")]
    Images {
        /// What was being done, and to what.
        action: String,
        /// The cause.
        #[source]
        source: ImageStoreError,
    },
    /// A manifest or config in the store could not be used.
    #[error("{action}")]
    Manifest {
        /// What was being done, and to what.
        action: String,
        /// The cause.
        #[source]
        source: ManifestError,
    },
    /// An image reference did not parse.
    #[error("image reference {input:?}")]
    Reference {
        /// The text given.
        input: String,
        /// The cause.
        #[source]
        source: ReferenceError,
    },
    /// Pulling failed.
    #[error("pulling {reference}")]
    Pull {
        /// The reference.
        reference: String,
        /// The cause.
        #[source]
        source: RegistryError,
    },
    /// Talking to a registry failed (other than pulling).
    #[error("{action}")]
    Registry {
        /// What was being done, and to what.
        action: String,
        /// The cause.
        #[source]
        source: Box<RegistryError>,
    },
    /// The snapshotter failed.
    #[error("{action}")]
    Snapshot {
        /// What was being done, and to what.
        action: String,
        /// The cause.
        #[source]
        source: SnapshotError,
    },
    /// Mounting or unmounting a container's root failed.
    #[error("{action}")]
    Mount {
        /// What was being done, and to what.
        action: String,
        /// The cause.
        #[source]
        source: MountError,
    },
    /// A layer's uncompressed content is not what the image config says.
    #[error("layer {layer}: uncompressed content is {got}, but the image config says {expected}")]
    DiffIdMismatch {
        /// The layer blob's digest.
        layer: Digest,
        /// The diff id in the config.
        expected: Digest,
        /// The digest of what was unpacked.
        got: Digest,
    },
    /// The image is not in the store (pull it first).
    #[error("image {0} not found (try `berth pull {0}`)")]
    ImageNotFound(String),
    /// The stored image is not a single-platform image manifest.
    #[error("image {0}: the stored manifest is an index, not an image manifest")]
    NotAnImage(String),
    /// A container was made from the image and `force` was not given.
    #[error("image {image} is in use by container {container} (remove it first or use --force)")]
    ImageInUse {
        /// The image, as given.
        image: String,
        /// A container using it.
        container: String,
    },
    /// No container has this name or id.
    #[error("no such container: {0}")]
    ContainerNotFound(String),
    /// An id prefix names more than one container.
    #[error("container id prefix {0} is ambiguous")]
    Ambiguous(String),
    /// The name is taken.
    #[error("container name {0:?} is already in use")]
    NameInUse(String),
    /// The container runs and `force` was not given.
    #[error("container {0} is running (stop it first or use --force)")]
    Running(String),
    /// No volume has this name.
    #[error("no such volume: {0}")]
    VolumeNotFound(String),
    /// A container uses the volume and `force` was not given.
    #[error("volume {volume} is in use by container {container} (remove it first or use --force)")]
    VolumeInUse {
        /// The volume.
        volume: String,
        /// A container using it.
        container: String,
    },
    /// A flag or an image config value is not usable.
    #[error("{0}")]
    Invalid(String),
    /// The isolation backend failed.
    #[error("{action} container {id}")]
    Backend {
        /// What was being done ("running").
        action: &'static str,
        /// The container's id.
        id: String,
        /// The cause.
        #[source]
        source: Box<BackendError>,
    },
    /// A detached container's monitor could not start it; the message is the
    /// monitor's error chain.
    #[error("{message}")]
    Start {
        /// The container's id.
        id: String,
        /// What the monitor reported.
        message: String,
    },
    /// The container is not in a state that allows the operation.
    #[error("container {name} is {state}: cannot {action}")]
    BadState {
        /// Its name.
        name: String,
        /// created, running or exited.
        state: &'static str,
        /// What was asked ("start").
        action: &'static str,
    },
    /// Writing the OCI config failed.
    #[error("writing OCI config {}", path.display())]
    Spec {
        /// The config.json path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: oci_spec::OciSpecError,
    },
}

/// `map_err` helper for [`EngineError::Io`].
pub(crate) fn io_err(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> EngineError {
    let path = path.into();
    move |source| EngineError::Io {
        action,
        path,
        source,
    }
}
