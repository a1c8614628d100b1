//! send_notify_fd against a listener in the test: it receives the container
//! process state JSON and a working fd.

use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::{json, Value};

const STATE: &str = r#"{"ociVersion":"1.2.0","id":"c1","status":"creating","pid":4242,
    "bundle":"/bundles/c1","annotations":{"a":"b"}}"#;

/// Accepts one connection and reads everything sent on it, with the fds.
fn receive(listener: UnixListener) -> (Vec<u8>, Vec<OwnedFd>) {
    let (conn, _) = listener.accept().unwrap();
    let mut data = Vec::new();
    let mut fds = Vec::new();
    loop {
        let mut buf = [0u8; 4096];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .unwrap();
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: the kernel just installed these fds in this process
                // for this message; nothing else owns them.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        let n = msg.bytes;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    (data, fds)
}

#[test]
fn the_listener_gets_the_process_state_and_the_fd() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let agent = std::thread::spawn(move || receive(listener));

    let (mut r, w) = std::io::pipe().unwrap();
    berth_seccomp::send_notify_fd(&path, Some("opaque meta"), w.as_fd(), STATE).unwrap();
    drop(w);

    let (data, fds) = agent.join().unwrap();
    let got: Value = serde_json::from_slice(&data).unwrap();
    let state: Value = serde_json::from_str(STATE).unwrap();
    assert_eq!(
        got,
        json!({"ociVersion": "1.2.0", "fds": ["seccompFd"], "pid": 4242,
               "metadata": "opaque meta", "state": state})
    );
    assert_eq!(fds.len(), 1);
    // The fd is the pipe's write end: what goes in comes out of ours.
    let mut sent = std::fs::File::from(fds.into_iter().next().unwrap());
    sent.write_all(b"ping").unwrap();
    drop(sent);
    let mut s = String::new();
    r.read_to_string(&mut s).unwrap();
    assert_eq!(s, "ping");
}

#[test]
fn metadata_is_left_out_when_unset() {
    let msg = berth_seccomp::process_state_json(STATE, None).unwrap();
    let got: Value = serde_json::from_str(&msg).unwrap();
    assert!(got.get("metadata").is_none(), "{got}");
    assert_eq!(got["fds"], json!(["seccompFd"]));
}

#[test]
fn a_state_without_oci_version_or_pid_is_refused() {
    let e = berth_seccomp::process_state_json(r#"{"id":"c1"}"#, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "building the container process state for the seccomp listener"
    );
}

#[test]
fn a_missing_listener_names_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nobody.sock");
    let (_r, w) = std::io::pipe().unwrap();
    let e = berth_seccomp::send_notify_fd(&path, None, w.as_fd(), STATE).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("connecting to seccomp listener {}", path.display())
    );
}
