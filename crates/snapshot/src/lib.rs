//! Snapshots: image layers unpacked once each, mounted as overlayfs for containers.
//!
//! Like containerd, the blob store and the snapshotter are separate: this crate never
//! downloads anything. [`unpack_layer`] turns one layer's (possibly compressed) tar
//! stream into a directory, converting OCI whiteouts into overlayfs objects, and
//! [`Snapshotter`] keeps the directories of layers and containers and says how to
//! mount them ([`Mount`], [`mount_all`], [`unmount`]).
//!
//! Building an image's root filesystem:
//!
//! ```text
//! prev = None
//! for each layer (chain id c):
//!     s.prepare("extract-c", prev)      // active, on top of the previous layer
//!     s.unpack("extract-c", blob, limits)   // on error: s.remove("extract-c")
//!     s.commit(c, "extract-c")          // now immutable, may be a parent
//!     prev = Some(c)
//! mounts = s.prepare(container_id, prev)  // the container's writable root
//! mount_all(&mounts, rootfs)
//! ```

mod sys;

pub mod mount;
pub mod snapshotter;
pub mod unpack;

pub use mount::{mount_all, unmount, Mount, MountError};
pub use snapshotter::{Info, Kind, SnapshotError, Snapshotter, Usage};
pub use sys::lgetxattr;
pub use unpack::{detect_compression, unpack_layer, Compression, Limits, UnpackError, UnpackStats};
