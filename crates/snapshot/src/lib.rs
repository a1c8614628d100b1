//! Snapshots: image layers unpacked once each, mounted as overlayfs for containers.
//!
//! Like containerd, the blob store and the snapshotter are separate: this crate never
//! downloads anything. [`unpack_layer`] turns one layer's (possibly compressed) tar
//! stream into a directory, converting OCI whiteouts into overlayfs objects, and
//! [`Snapshotter`] keeps the directories of layers and containers and says how to
//! mount them.

mod sys;

pub mod unpack;

pub use sys::lgetxattr;
pub use unpack::{detect_compression, unpack_layer, Compression, Limits, UnpackError, UnpackStats};
