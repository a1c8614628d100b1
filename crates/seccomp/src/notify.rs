//! The runtime-spec's seccomp notify protocol: hand the notify fd, with the
//! container process state, to the agent listening on `listenerPath`.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use nix::sys::socket::{
    connect, send, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
    UnixAddr,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SeccompError;

/// The container process state (runtime-spec config-linux.md): the message
/// payload that comes with the fds.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProcessState<'a> {
    oci_version: &'a str,
    fds: [&'static str; 1],
    pid: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a str>,
    state: &'a Value,
}

/// The fields of the container state that the process state repeats.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StateHead {
    oci_version: String,
    pid: i64,
}

/// The JSON payload sent with the fd: `ociVersion`, `fds: ["seccompFd"]`,
/// `pid` and `state` from `state_json` (the container's state, as `berth-runtime
/// state` prints it), and `metadata` = `listenerMetadata` when set.
pub fn process_state_json(
    state_json: &str,
    listener_metadata: Option<&str>,
) -> Result<String, SeccompError> {
    let state: Value = serde_json::from_str(state_json).map_err(SeccompError::State)?;
    let head = StateHead::deserialize(&state).map_err(SeccompError::State)?;
    let msg = ProcessState {
        oci_version: &head.oci_version,
        fds: ["seccompFd"],
        pid: head.pid,
        metadata: listener_metadata,
        state: &state,
    };
    serde_json::to_string(&msg).map_err(SeccompError::State)
}

/// Connects to the unix stream socket at `listener_path` and sends the
/// container process state (see [`process_state_json`]) with `fd` attached
/// as `SCM_RIGHTS`, in one message, then closes the connection. Call it from
/// the runtime (not the container's init) during `create`, after the init has
/// loaded the filter and passed its notify fd back.
pub fn send_notify_fd(
    listener_path: &Path,
    listener_metadata: Option<&str>,
    fd: BorrowedFd<'_>,
    state_json: &str,
) -> Result<(), SeccompError> {
    let payload = process_state_json(state_json, listener_metadata)?;
    let err = |action| {
        move |source| SeccompError::Listener {
            action,
            path: listener_path.to_path_buf(),
            source,
        }
    };
    let addr = UnixAddr::new(listener_path).map_err(err("addressing"))?;
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(err("opening a socket for"))?;
    connect(sock.as_raw_fd(), &addr).map_err(err("connecting to"))?;
    let fds = [fd.as_raw_fd()];
    let bytes = payload.as_bytes();
    let mut sent = sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(bytes)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(err("sending the notify fd to"))?;
    while sent < bytes.len() {
        sent += send(sock.as_raw_fd(), &bytes[sent..], MsgFlags::MSG_NOSIGNAL)
            .map_err(err("sending the process state to"))?;
    }
    Ok(())
}
