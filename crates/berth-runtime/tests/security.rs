//! Escapes the runtime must not allow: leaked descriptors and a host cwd
//! (CVE-2024-21626 class), reopening the runtime binary through /proc/PID/exe
//! (CVE-2019-5736 class), and seeing host processes.

mod common;

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use common::{require_root, Runtime};
use serde_json::{json, Value};

fn fd_numbers(report: &Value) -> Vec<i64> {
    report["fds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fd"].as_i64().unwrap())
        .collect()
}

#[test]
fn only_stdio_fds_and_cwd_inside_the_container() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set("/process/cwd", json!("/home")).probe(&[
        "report",
        "--stat",
        "/proc/self/cwd",
        "--stat",
        "/proc/self/cwd/../bin/berth-probe",
    ]);
    let report = rt.report(&b);
    assert_eq!(fd_numbers(&report), [0, 1, 2], "fds: {}", report["fds"]);
    let root = rt.root().display().to_string();
    for fd in report["fds"].as_array().unwrap() {
        let target = fd["target"].as_str().unwrap();
        assert!(!target.starts_with(&root), "state dir leaked: {fd}");
        assert!(!target.contains("exec.fifo"), "exec fifo leaked: {fd}");
    }
    assert_eq!(report["cwd"], "/home");
    assert_eq!(report["stat"]["/proc/self/cwd"]["symlink_target"], "/home");
    assert_eq!(
        report["stat"]["/proc/self/cwd/../bin/berth-probe"]["exists"], true,
        "cwd/.. is not the container's root"
    );
}

#[test]
fn fds_leaked_by_the_caller_do_not_reach_the_container() {
    require_root!();
    let rt = Runtime::new();
    let b = rt.bundle();
    let id = rt.id("leak");
    let host_dir = CString::new(rt.dir().as_os_str().to_str().unwrap()).unwrap();
    let host_file = CString::new("/etc/hostname").unwrap();
    let mut cmd = rt.command();
    cmd.arg("run")
        .arg("--bundle")
        .arg(b.path())
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure only calls async-signal-safe functions (open, dup2, close) on
    // C strings built before the fork.
    unsafe {
        cmd.pre_exec(move || {
            for (path, flags, at) in [
                (&host_dir, libc::O_RDONLY | libc::O_DIRECTORY, 3),
                (&host_file, libc::O_RDONLY, 7),
                (&host_dir, libc::O_PATH, 9),
            ] {
                let fd = libc::open(path.as_ptr(), flags);
                if fd < 0 || libc::dup2(fd, at) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if fd != at {
                    libc::close(fd);
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    let out = wait_output(child, Duration::from_secs(60));
    assert!(out.status.success(), "run failed: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(fd_numbers(&report), [0, 1, 2], "fds: {}", report["fds"]);
}

fn wait_output(mut child: std::process::Child, timeout: Duration) -> std::process::Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > timeout {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn runtime_binary_cannot_be_reopened_through_proc_exe() {
    require_root!();
    let rt = Runtime::new();
    let binary = rt.binary().canonicalize().unwrap();
    let before = fs::read(&binary).unwrap();

    // A is created, not started: its init is the runtime binary waiting on the FIFO.
    let a = rt.bundle();
    let a_id = rt.id("a");
    rt.create(&a_id, &a).assert_success();
    let pid = rt.state_json(&a_id)["pid"].as_i64().unwrap();
    let host_exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(host_exe, binary, "A's init is not the runtime binary");
    let pid_ns = format!("/proc/{pid}/ns/pid");

    // B joins A's pid namespace, where A's init is pid 1.
    let mut b = rt.bundle();
    b.namespace("pid", Some(&pid_ns));
    let report = rt.report(&b);
    assert_eq!(
        report["namespaces"]["pid"].as_u64(),
        Some(fs::metadata(&pid_ns).unwrap().ino()),
        "B did not join A's pid namespace"
    );

    b.probe(&["open-exe", "1"]);
    let out = rt.report(&b);
    let denied = |o: &Value| {
        !o["ok"].as_bool().unwrap()
            && [libc::EACCES, libc::EPERM, libc::ETXTBSY]
                .map(i64::from)
                .contains(&o["errno"].as_i64().unwrap_or(0))
    };
    assert!(denied(&out["write_open"]), "write open: {out}");
    if out["path_open"]["ok"] == true {
        assert!(denied(&out["reopen_write"]), "O_PATH reopen: {out}");
    }
    // The init is non-dumpable: its exe link does not even resolve for the container.
    assert!(
        out["exe"].is_null(),
        "container can resolve the runtime's exe: {out}"
    );
    assert!(
        fs::read(&binary).unwrap() == before,
        "runtime binary changed"
    );
}

#[test]
fn container_sees_only_its_own_processes() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.args(&["/bin/sh", "-c", "ls -1 /proc; true"]);
    let id = rt.id("ps");
    let out = rt.run(&id, &b);
    out.assert_success();
    let pids: Vec<u32> = out
        .stdout
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert!(pids.contains(&1), "{pids:?}");
    assert!(
        pids.iter().all(|&p| p <= 2),
        "host processes visible: {pids:?}"
    );
    let host = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .count();
    assert!(host > 2, "the host should have more processes ({host})");
}
