//! Snapshots: image layers unpacked once each, mounted as overlayfs for containers.
