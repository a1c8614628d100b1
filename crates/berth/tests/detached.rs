//! End-to-end tests of detached containers (as root): `run -d`, `create`,
//! `start`, `stop`, `restart`, `kill`, `wait`, `logs`, and what is left
//! afterwards. Each test has its own `--root`; a guard force-removes its
//! containers, kills monitors still alive, unmounts whatever is mounted under the
//! root and deletes it, even when the test fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_engine::build::HOST_BUSYBOX;
use berth_engine::Record;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

struct Root {
    dir: Option<tempfile::TempDir>,
}

impl Root {
    fn new() -> Option<Self> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP: needs root");
            return None;
        }
        if !Path::new(HOST_BUSYBOX).exists() {
            eprintln!("SKIP: {HOST_BUSYBOX} missing (apt-get install busybox-static)");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-d-")
            .tempdir()
            .unwrap();
        Some(Self { dir: Some(dir) })
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    fn berth(&self, args: &[&str]) -> Output {
        Command::new(BERTH)
            .arg("--root")
            .arg(self.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs and returns (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.berth(args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs, asserts success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "berth {args:?}: {err}");
        out
    }

    fn container_dirs(&self) -> Vec<PathBuf> {
        match fs::read_dir(self.path().join("containers")) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => vec![],
        }
    }

    fn record(&self, name: &str) -> Record {
        self.container_dirs()
            .iter()
            .filter_map(|d| Record::load(d).ok())
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no record named {name}"))
    }

    fn mounts(&self) -> Vec<String> {
        let prefix = self.path().to_string_lossy().into_owned();
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
            .filter(|m| m.starts_with(&prefix))
            .collect()
    }

    /// Polls `f` for up to 15 s.
    fn eventually(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn assert_no_containers(&self) {
        assert_eq!(self.container_dirs(), Vec::<PathBuf>::new());
        assert_eq!(self.mounts(), Vec::<String>::new());
        let runtime: Vec<_> = fs::read_dir(self.path().join("runtime")).unwrap().collect();
        assert!(runtime.is_empty(), "runtime state left: {runtime:?}");
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let monitors: Vec<u32> = self
            .container_dirs()
            .iter()
            .filter_map(|d| Record::load(d).ok()?.pid)
            .collect();
        for dir in self.container_dirs() {
            let id = dir.file_name().unwrap().to_string_lossy().into_owned();
            let _ = self.berth(&["rm", "-f", &id]);
        }
        for pid in monitors {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        for m in self.mounts().iter().rev() {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_owned();
            if dir.close().is_err() {
                eprintln!("could not remove {}", path.display());
            }
        }
    }
}

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
