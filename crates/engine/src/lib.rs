//! The berth engine: images, snapshots and containers under one root, daemonless,
//! with the runtime in-process.
//!
//! State under `root` (`/var/lib/berth` by default):
//!
//! ```text
//! blobs/sha256/<hex>       the BlobStore (ingest/ for downloads in flight)
//! images.json              the ImageStore: names → manifest digests
//! auth.json                registry credentials from `berth login` (0600)
//! snapshots/               the Snapshotter: one committed snapshot per layer chain
//!                          id, one active snapshot per container
//! containers/<id>/         container.json (the Record), config.json, rootfs/ (the
//!                          container's snapshot is mounted here while it exists)
//! runtime/                 the OCI runtime's own state (berth-container)
//!                          ctr.log (a detached container's output, JSON lines)
//! process/<id>/            the process backend's state (state.json, exec.fifo)
//! volumes/<name>/          a named volume: volume.json and _data/ (its content)
//! engine.lock              held while containers are created, started or removed
//! networks/                berth-net: network configs, leases, the nft cache
//! netns/<id>               the network namespace of a container on a network
//! ```
//!
//! `run` = resolve the image (building the default busybox image on demand) →
//! unpack each missing layer into its snapshot ([`layers`]) → prepare and mount the
//! container's writable snapshot → write the OCI config ([`spec`]) → run it in the
//! foreground through a [`Backend`] → unmount, and with `rm` remove it all. Any
//! failure before the workload runs removes what was made.

pub mod archive;
mod auth;
pub mod backend;
pub mod build;
pub mod error;
pub mod layers;
pub mod lock;
pub mod logs;
pub mod mounts;
pub mod network;
pub mod record;
pub mod security;
pub mod spec;
pub mod user;
pub mod volumes;

mod engine;
mod export;
mod image_ops;
mod pull;
pub mod system;

pub use backend::{Backend, BackendError, ContainerBackend, Isolation, ProcessBackend, VmBackend};
pub use berth_net;
pub use berth_vm::qemu::accel_notice;
pub use berth_vm::Accel;
pub use engine::{
    parse_signal, ContainerStats, ContainerSummary, Engine, ExecRequest, ImageSummary, ProcessInfo,
    RunOptions, DEFAULT_ROOT, MONITOR_VERB,
};
pub use error::EngineError;
pub use image_ops::{ContainerInspect, ImageInspect, RemovedImage};
pub use logs::{LogEntry, LogStream, LogsOptions};
pub use network::NetFlags;
pub use record::{Phase, Record};
pub use spec::{Network, RunFlags, Volume};
pub use volumes::VolumeRecord;
