//! The OCI `linux.seccomp` section as a loaded seccomp filter, with
//! libseccomp.
//!
//! Three steps, in three places:
//! 1. [`compile`] at `create`, in the runtime: checks the profile and builds
//!    the filter; a bad profile fails here, naming its field.
//! 2. [`Filter::load`] in the container's init, as late as possible before
//!    exec: it returns the notify fd when a rule uses `SCMP_ACT_NOTIFY`.
//! 3. [`send_notify_fd`] in the runtime, once the init has passed that fd
//!    back: hands it to the agent at `listenerPath`.
//!
//! [`features`] is the `linux.seccomp` part of `berth-runtime features`.

mod error;
mod features;
mod filter;
mod mapping;
mod notify;
mod plan;

pub use error::SeccompError;
pub use features::features;
pub use filter::{compile, Filter};
pub use notify::{process_state_json, send_notify_fd};
