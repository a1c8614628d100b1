//! The protocol between berth's host side (`berth-vm`) and the guest agent, the `/init`
//! of every micro-VM. The binary (`main.rs`) is built static and put in the initramfs;
//! this library holds only the message types, so the host can share them.
//!
//! One JSON object per line on the virtio-console port named [`CONTROL_PORT`]:
//!
//! ```text
//! host                                   guest agent (PID 1)
//! ────                                   ───────────────────
//!                                        mount /proc /sys /dev, load modules,
//!                                        find ports and /dev/vda
//!                              ◀──────── Ready
//! Run(RunRequest) ───────────▶           mount the root disk, chroot, spawn
//!                              ◀──────── Started { pid }
//! Signal(n) ─────────────────▶           kill(pid, n)            (any number)
//! Resize{rows,cols} ─────────▶           TIOCSWINSZ on the pty   (with a terminal)
//!                              ◀──────── Exited(status) | Error(text)
//!                                        power off
//! ```
//!
//! The command's stdout and stderr go to the ports [`STDOUT_PORT`] and [`STDERR_PORT`],
//! its stdin comes from [`STDIN_PORT`] with `-i` (else /dev/null). With `-t` the command
//! runs on a pty in the guest (its own session, the pty its controlling terminal): the
//! agent relays the pty's output to [`STDOUT_PORT`] and [`STDIN_PORT`] to its input.
//!
//! [`STDOUT_PORT`]: protocol::STDOUT_PORT
//! [`STDERR_PORT`]: protocol::STDERR_PORT
//! [`STDIN_PORT`]: protocol::STDIN_PORT

pub mod protocol;

pub use protocol::{ExitStatus, GuestMessage, GuestMount, HostMessage, RunRequest};
