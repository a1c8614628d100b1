//! Container lifecycle: create, start, state, kill, delete, run — the runtime's core.
//!
//! See ARCHITECTURE.md for the create/start flow; [`process`] holds one file per
//! process role of the create dance.

pub mod channel;
pub mod checkpoint;
pub mod console;
pub mod container;
pub mod create;
pub mod creds;
pub mod error;
pub mod exec;
pub mod hooks;
pub mod id;
pub mod namespaces;
pub mod process;
pub mod resources;
pub mod run;
pub mod signal;
pub mod spec;
pub mod state;
pub mod sys;
pub mod userns;

pub use container::{CreateOptions, OciState, Runtime, Status, OCI_VERSION};
pub use error::ContainerError;
