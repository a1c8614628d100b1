//! The berth engine: images, snapshots and containers under one root, daemonless,
//! with the runtime in-process.
//!
//! State under `root` (`/var/lib/berth` by default):
//!
//! ```text
//! blobs/sha256/<hex>       the BlobStore (ingest/ for downloads in flight)
//! images.json              the ImageStore: names → manifest digests
//! snapshots/               the Snapshotter: one committed snapshot per layer chain
//!                          id, one active snapshot per container
//! containers/<id>/         container.json (the Record), config.json, rootfs/ (the
//!                          container's snapshot is mounted here while it exists)
//! runtime/                 the OCI runtime's own state (berth-container)
//! engine.lock              held while containers are created or removed
//! ```
//!
//! `run` = resolve the image (building the default busybox image on demand) →
//! unpack each missing layer into its snapshot ([`layers`]) → prepare and mount the
//! container's writable snapshot → write the OCI config ([`spec`]) → run it in the
//! foreground through a [`Backend`] → unmount, and with `rm` remove it all. Any
//! failure before the workload runs removes what was made.

pub mod backend;
pub mod build;
pub mod error;
pub mod layers;
pub mod lock;
pub mod record;
pub mod spec;
pub mod user;

mod engine;

pub use backend::{Backend, BackendError, ContainerBackend, Isolation};
pub use engine::{ContainerSummary, Engine, ImageSummary, RunOptions, DEFAULT_ROOT};
pub use error::EngineError;
pub use record::{Phase, Record};
pub use spec::{Network, RunFlags, Volume};
