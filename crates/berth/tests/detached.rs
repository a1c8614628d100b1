//! End-to-end tests of detached containers (as root): `run -d`, `create`,
//! `start`, `stop`, `restart`, `kill`, `wait`, `logs`, and what is left
//! afterwards. Each test has its own `--root`; a guard force-removes its
//! containers, kills monitors still alive, unmounts whatever is mounted under the
//! root and deletes it, even when the test fails.

use std::fs;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{Root, BERTH};

#[test]
fn run_detached_ps_logs_follow_and_wait() {
    let Some(root) = Root::new() else { return };
    let out = root.ok(&[
        "run",
        "-d",
        "--name",
        "d",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; sleep 2; echo last; exit 3",
    ]);
    let id = out.trim();
    assert_eq!(id.len(), 64, "{out}");
    let ps = root.ok(&["ps"]);
    assert!(ps.contains(" d\n") && ps.contains("Up "), "{ps}");
    root.eventually("both streams logged", || {
        let (_, out, err) = root.run(&["logs", "d"]);
        out == "out\n" && err == "err\n"
    });
    let (code, out, err) = root.run(&["logs", "-f", "d"]);
    assert_eq!(code, 0);
    assert_eq!((out.as_str(), err.as_str()), ("out\nlast\n", "err\n"));
    assert_eq!(root.ok(&["wait", "d"]), "3\n");
    assert!(!root.ok(&["ps"]).contains(" d\n"));
    let ps = root.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (3)") && ps.contains(" ago"), "{ps}");
    let (_, out, err) = root.run(&["logs", "--tail", "1", "--timestamps", "d"]);
    assert_eq!(err, "");
    let (time, line) = out.split_once(' ').unwrap();
    assert_eq!(line, "last\n");
    assert!(time.starts_with("20") && time.ends_with('Z'), "{time}");
    assert_eq!(root.mounts(), Vec::<String>::new(), "root left mounted");
    root.ok(&["rm", &id[..12]]);
    root.assert_no_containers();
}

#[test]
fn stop_then_start_again_on_the_same_root() {
    let Some(root) = Root::new() else { return };
    root.ok(&[
        "run",
        "-d",
        "--name",
        "s",
        "busybox",
        "sh",
        "-c",
        "echo run >> /count; wc -l < /count; exec sleep 60",
    ]);
    root.eventually("first output", || root.ok(&["logs", "s"]) == "1\n");
    let t = Instant::now();
    assert_eq!(root.ok(&["stop", "-t", "1", "s"]), "s\n");
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    let ps = root.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (137)"), "{ps}");
    assert_eq!(root.ok(&["wait", "s"]), "137\n");

    root.ok(&["start", "s"]);
    assert!(root.ok(&["ps"]).contains("Up "));
    let (code, _, err) = root.run(&["start", "s"]);
    assert_eq!(code, 1);
    assert!(err.contains("running"), "{err}");
    root.eventually("second output", || root.ok(&["logs", "s"]) == "1\n2\n");
    let first = root.record("s").pid.unwrap();
    root.ok(&["restart", "-t", "0", "s"]);
    assert_ne!(root.record("s").pid, Some(first), "a new monitor");
    root.eventually("third output", || root.ok(&["logs", "s"]) == "1\n2\n3\n");
    root.ok(&["kill", "s"]);
    assert_eq!(root.ok(&["wait", "s"]), "137\n");
    root.ok(&["rm", "s"]);
    root.assert_no_containers();
}

#[test]
fn kill_with_a_signal_reaches_the_container() {
    let Some(root) = Root::new() else { return };
    root.ok(&[
        "run",
        "-d",
        "--name",
        "k",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got usr1; exit 5' USR1; echo ready; while true; do sleep 1; done",
    ]);
    root.eventually("the trap", || root.ok(&["logs", "k"]) == "ready\n");
    root.ok(&["kill", "-s", "USR1", "k"]);
    assert_eq!(root.ok(&["wait", "k"]), "5\n");
    assert_eq!(root.ok(&["logs", "k"]), "ready\ngot usr1\n");
    let (code, _, err) = root.run(&["kill", "-s", "NOPE", "k"]);
    assert_eq!(code, 125);
    assert!(err.contains("unknown signal"), "{err}");
    let (code, _, err) = root.run(&["kill", "k"]);
    assert_eq!(code, 1);
    assert!(err.contains("exited"), "{err}");
    root.ok(&["rm", "k"]);
    root.assert_no_containers();
}

#[test]
fn create_then_start() {
    let Some(root) = Root::new() else { return };
    root.ok(&["create", "--name", "c", "busybox", "echo", "hi"]);
    let ps = root.ok(&["ps", "-a"]);
    assert!(ps.contains("Created"), "{ps}");
    root.ok(&["start", "c"]);
    assert_eq!(root.ok(&["wait", "c"]), "0\n");
    assert_eq!(root.ok(&["logs", "c"]), "hi\n");
    root.ok(&["rm", "c"]);
    root.assert_no_containers();
}

#[test]
fn detached_rm_leaves_nothing_after_exit() {
    let Some(root) = Root::new() else { return };
    root.ok(&["run", "-d", "--rm", "busybox", "sh", "-c", "sleep 1"]);
    assert_eq!(root.container_dirs().len(), 1);
    root.eventually("removal", || root.container_dirs().is_empty());
    root.assert_no_containers();
}

#[test]
fn failing_detached_run_errors_and_leaves_nothing() {
    let Some(root) = Root::new() else { return };
    let (code, out, err) = root.run(&["run", "-d", "--name", "bad", "busybox", "/nonexistent"]);
    assert_eq!(code, 125, "{out}");
    assert!(err.contains("/nonexistent"), "{err}");
    root.assert_no_containers();
    // The name is free again.
    let (code, _, err) = root.run(&["run", "-d", "--rm", "--name", "bad", "busybox", "true"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_dead_monitor_is_cleaned_by_rm_force() {
    let Some(root) = Root::new() else { return };
    root.ok(&["run", "-d", "--name", "m", "busybox", "sleep", "60"]);
    let pid = nix::unistd::Pid::from_raw(root.record("m").pid.unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    root.ok(&["rm", "-f", "m"]);
    root.assert_no_containers();
}

#[test]
fn exec_into_a_running_container() {
    let Some(root) = Root::new() else { return };
    root.ok(&[
        "run",
        "-d",
        "--name",
        "e",
        "--hostname",
        "box",
        "busybox",
        "sleep",
        "60",
    ]);
    let (code, out, err) = root.run(&["exec", "e", "sh", "-c", "hostname; exit 6"]);
    assert_eq!((code, out.as_str()), (6, "box\n"), "{err}");
    let out = root.ok(&[
        "exec",
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "-u",
        "1000:1001",
        "e",
        "sh",
        "-c",
        "echo $FOO; pwd; id -u; id -g",
    ]);
    assert_eq!(out, "bar\n/tmp\n1000\n1001\n");
    let (code, _, err) = root.run(&["exec", "e", "/nonexistent"]);
    assert_eq!(code, 125);
    assert!(err.contains("/nonexistent"), "{err}");
    root.ok(&["stop", "-t", "0", "e"]);
    let (code, _, err) = root.run(&["exec", "e", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("not running"), "{err}");
    root.ok(&["rm", "e"]);
    root.assert_no_containers();
}

#[test]
fn concurrent_starts_start_it_once() {
    let Some(root) = Root::new() else { return };
    root.ok(&["create", "--name", "twice", "busybox", "sleep", "60"]);
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(BERTH)
                .arg("--root")
                .arg(root.path())
                .args(["start", "twice"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let codes: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code())
        .collect();
    assert_eq!(
        codes.iter().filter(|c| **c == Some(0)).count(),
        1,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == Some(1)).count(),
        2,
        "{codes:?}"
    );
    let runtime: Vec<_> = fs::read_dir(root.path().join("runtime")).unwrap().collect();
    assert_eq!(runtime.len(), 1);
    root.ok(&["rm", "-f", "twice"]);
    root.assert_no_containers();
}
