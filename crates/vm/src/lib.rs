//! Runs a command in a QEMU `microvm` whose root disk is made from a directory.
//!
//! ```text
//! Vm::new(VmConfig)        kernel (scripts/fetch-kernel.sh's cache), the static guest
//!                          agent → initramfs (cpio: /init + modules), cached by content
//! vm.start(rootfs, req)    base ext4 image of rootfs (mkfs.ext4 -d, cached per source)
//!                          → per-VM qcow2 overlay → qemu-system-x86_64 -M microvm
//!                          → control port: Ready ◀, Run(req) ▶
//! running.wait()           Started ◀, Exited ◀ → VmOutcome (status, stdout, stderr);
//!                          QEMU reaped, the VM's directory (overlay, sockets) removed
//! ```
//!
//! The guest side is `berth-guest-agent`; the protocol is in its library.

pub mod cpio;
pub mod disk;
mod error;
pub mod initramfs;
pub mod instance;
pub mod kernel;
pub mod qemu;
pub mod qmp;
pub mod unix;
mod vm;

pub use berth_guest_agent::protocol::{GuestFile, GuestNetwork};
pub use berth_guest_agent::{ExitStatus, GuestMount, RunRequest};
pub use error::VmError;
pub use instance::{BootSpec, Instance, Nic};
pub use kernel::Kernel;
pub use qemu::{Accel, Share};
pub use qmp::Qmp;
pub use vm::{RunningVm, Vm, VmConfig, VmOutcome};
