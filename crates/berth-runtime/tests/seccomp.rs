//! `linux.seccomp` in real containers: rules, Podman's default profile, the notify
//! listener protocol, and exec'd processes getting the container's filter.

mod common;

use std::io::IoSliceMut;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use common::{require_root, Runtime};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::{json, Value};

fn podman_profile() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../seccomp/tests/fixtures/podman-default-x86_64.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn errno_rule_blocks_one_syscall_and_allows_the_rest() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}),
    )
    .args(&["/bin/sh", "-c", "mkdir /dev/x; echo rc=$?; echo alive"]);
    let out = rt.run(&rt.id("errno"), &b).assert_success().stdout.clone();
    assert_eq!(out, "rc=1\nalive\n");
    let mut b2 = rt.bundle();
    b2.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}),
    )
    .probe(&["report", "--write", "/dev/newfile"]);
    let r = rt.report(&b2);
    assert_eq!(r["seccomp"]["mode"], 2, "{r}");
}

#[test]
fn podmans_default_profile_loads_and_the_container_works() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set("/linux/seccomp", podman_profile());
    let r = rt.report(&b);
    assert_eq!(r["seccomp"]["mode_name"], "filter", "{r}");
    assert_eq!(r["hostname"], "berth");
    let mut b = rt.bundle();
    b.set("/linux/seccomp", podman_profile()).args(&[
        "/bin/sh",
        "-c",
        "uname -s; ls / >/dev/null && echo listed",
    ]);
    let out = rt.run(&rt.id("podman"), &b).assert_success().stdout.clone();
    assert_eq!(out, "Linux\nlisted\n");
}

#[test]
fn filter_loads_without_no_new_privs_for_a_non_root_user() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set("/process/noNewPrivileges", json!(false))
        .set("/process/user", json!({"uid": 1000, "gid": 1000}))
        .set(
            "/linux/seccomp",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO"}]}),
        );
    let r = rt.report(&b);
    assert_eq!(r["seccomp"]["mode"], 2, "{r}");
    assert_eq!(r["no_new_privs"], false, "{r}");
    assert_eq!(r["uid"]["real"], 1000);
}

#[test]
fn a_bad_profile_is_refused_at_create_naming_the_field() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    let id = rt.id("bad");
    let out = rt.create(&id, &b);
    out.assert_failure();
    assert!(
        out.stderr.contains("linux.seccomp.syscalls[1].action"),
        "{out:?}"
    );
    assert!(!rt.root().join(&id).exists(), "state left behind");
    let mut b = rt.bundle();
    b.set("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_BOGUS"}));
    let out = rt.create(&rt.id("bad2"), &b);
    out.assert_failure();
    assert!(
        out.stderr.contains("linux.seccomp.defaultAction"),
        "{out:?}"
    );
}

/// Receive one message with an fd from the listener's first connection.
fn receive_notify(listener: &UnixListener) -> (Value, OwnedFd) {
    let (conn, _) = listener.accept().unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = recvmsg::<()>(
        std::os::fd::AsRawFd::as_raw_fd(&conn),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    let mut fd = None;
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel installed this fd for us with the message.
            fd = Some(unsafe { OwnedFd::from_raw_fd(fds[0]) });
        }
    }
    let n = msg.bytes;
    let json: Value = serde_json::from_slice(&buf[..n]).unwrap();
    (json, fd.expect("an fd with the message"))
}

#[test]
fn notify_fd_and_state_reach_the_listener() {
    require_root!();
    let rt = Runtime::new();
    let sock = rt.dir().join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let mut b = rt.bundle();
    b.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": sock,
               "listenerMetadata": "meta-42", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}),
    )
    .args(&["/bin/sh", "-c", "mkdir /dev/y; echo rc=$?"]);
    let id = rt.id("notify");
    let agent = std::thread::spawn(move || receive_notify(&listener));
    rt.create(&id, &b).assert_success();
    let (state, fd) = agent.join().unwrap();
    assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
    assert_eq!(state["metadata"], "meta-42", "{state}");
    assert_eq!(state["state"]["id"], id.as_str(), "{state}");
    let init = rt.state_json(&id)["pid"].clone();
    assert_eq!(state["pid"], init, "{state}");
    // With the agent gone, notified syscalls fail (ENOSYS) instead of hanging.
    drop(fd);
    rt.start(&id).assert_success();
    rt.wait_for_status(&id, "stopped", std::time::Duration::from_secs(10));
}

#[test]
fn exec_gets_the_containers_filter() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}),
    )
    .args(&["/bin/sleep", "30"]);
    let id = rt.id("ex");
    rt.run_detached(&id, &b).assert_success();
    let out = rt
        .cmd(&[
            "exec",
            &id,
            "/bin/sh",
            "-c",
            "grep Seccomp: /proc/self/status; mkdir /dev/z || echo refused",
        ])
        .assert_success()
        .stdout
        .clone();
    assert!(
        out.contains("Seccomp:\t2") && out.contains("refused"),
        "{out}"
    );
}
