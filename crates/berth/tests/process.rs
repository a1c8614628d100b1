//! End-to-end tests of `--isolation process` (as root): the image's program as a
//! plain chrooted process with a cgroup and no namespaces. Each test has its own
//! `--root` whose guard removes everything even when the test fails.

use std::fs;
use std::path::PathBuf;

mod common;

use common::Root;

const P: &str = "--isolation=process";

/// The directory of `/berth/<id>` in the memory hierarchy (v1) or the unified one.
fn memory_cgroup(id: &str) -> PathBuf {
    let v1 = PathBuf::from(format!("/sys/fs/cgroup/memory/berth/{id}"));
    if PathBuf::from("/sys/fs/cgroup/memory").exists() {
        v1
    } else {
        PathBuf::from(format!("/sys/fs/cgroup/berth/{id}"))
    }
}

fn memory_limit(id: &str) -> String {
    let dir = memory_cgroup(id);
    fs::read_to_string(dir.join("memory.limit_in_bytes"))
        .or_else(|_| fs::read_to_string(dir.join("memory.max")))
        .unwrap_or_default()
}

#[test]
fn output_exit_codes_env_user_and_cwd() {
    let Some(root) = Root::new() else { return };
    let (code, out, err) = root.run(&["run", "--rm", P, "busybox", "echo", "hello"]);
    assert_eq!((code, out.as_str()), (0, "hello\n"), "{err}");
    let (code, _, _) = root.run(&["run", "--rm", P, "busybox", "sh", "-c", "exit 7"]);
    assert_eq!(code, 7);
    let (code, _, _) = root.run(&["run", "--rm", P, "busybox", "sh", "-c", "kill -9 $$"]);
    assert_eq!(code, 137);
    let (code, out, err) = root.run(&[
        "run", "--rm", P, "-u", "1000:1000", "-w", "/tmp", "-e", "FOO=bar", "busybox", "sh",
        "-c", "id -u; id -g; pwd; echo $FOO; ls /proc/self/ns >/dev/null && echo proc; test -c /dev/null && echo dev",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1000\n1000\n/tmp\nbar\nproc\ndev\n");
    // No namespaces: the same pid namespace and hostname as the host.
    let (_, out, _) = root.run(&["run", "--rm", P, "busybox", "readlink", "/proc/self/ns/pid"]);
    let host = fs::read_link("/proc/self/ns/pid").unwrap();
    assert_eq!(out.trim(), host.to_string_lossy());
    // A missing command fails the run and leaves nothing.
    let (code, _, err) = root.run(&["run", "--rm", P, "busybox", "/nonexistent"]);
    assert_eq!(code, 125);
    assert!(err.contains("/nonexistent"), "{err}");
    root.assert_no_containers();
}

#[test]
fn rm_leaves_no_mount_cgroup_or_process() {
    let Some(root) = Root::new() else { return };
    let vol = root.path().join("vol");
    fs::create_dir(&vol).unwrap();
    fs::write(vol.join("f"), "data\n").unwrap();
    let ro = format!("{}:/data:ro", vol.display());
    let (code, out, err) = root.run(&[
        "run", "--rm", P, "--name", "r", "-v", &ro, "--tmpfs", "/scratch", "busybox", "sh", "-c",
        "cat /data/f; touch /data/g || echo ro; touch /scratch/t && echo tmpfs; sleep 1000 & echo $!",
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["data", "ro", "tmpfs"], "{out}");
    // The background sleep went with it.
    let pid: u32 = lines[3].parse().unwrap();
    assert!(
        !PathBuf::from(format!("/proc/{pid}")).exists()
            || fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .map_or(true, |c| !c.contains("sleep")),
        "sleep {pid} survived"
    );
    assert!(!vol.join("g").exists());
    root.assert_no_containers();
    let rw = format!("{}:/data", vol.display());
    let (code, _, err) = root.run(&["run", "--rm", P, "-v", &rw, "busybox", "touch", "/data/g"]);
    assert_eq!(code, 0, "{err}");
    assert!(vol.join("g").exists());
    root.assert_no_containers();
}

#[test]
fn detached_memory_limit_ps_stop_and_rm() {
    let Some(root) = Root::new() else { return };
    let out = root.ok(&[
        "run", "-d", P, "--name", "p", "--memory", "64m", "busybox", "sleep", "1000",
    ]);
    let id = out.trim().to_owned();
    assert_eq!(root.record("p").isolation.name(), "process");
    assert_eq!(memory_limit(&id).trim(), (64u64 << 20).to_string());
    let ps = root.ok(&["ps"]);
    assert!(ps.contains(" p\n") && ps.contains("Up "), "{ps}");
    let state =
        fs::read_to_string(root.path().join("process").join(&id).join("state.json")).unwrap();
    let pid = state.split("\"pid\":").nth(1).unwrap();
    let pid: u32 = pid.split(',').next().unwrap().parse().unwrap();
    let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.starts_with("sleep"), "{cmdline}");
    root.ok(&["stop", "-t", "1", "p"]);
    let ps = root.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (143)"), "{ps}");
    assert!(!memory_cgroup(&id).exists(), "cgroup left");
    assert_eq!(root.mounts(), Vec::<String>::new());
    // Start again, then rm -f while it runs.
    root.ok(&["start", "p"]);
    root.eventually("running again", || root.ok(&["ps"]).contains(" p\n"));
    root.ok(&["rm", "-f", "p"]);
    assert!(!memory_cgroup(&id).exists(), "cgroup left");
    root.assert_no_containers();
}

#[test]
fn exec_into_a_process_container() {
    let Some(root) = Root::new() else { return };
    let id = root.ok(&[
        "run", "-d", P, "--name", "e", "-e", "A=1", "busybox", "sleep", "1000",
    ]);
    let (code, out, err) = root.run(&[
        "exec",
        "-u",
        "1000",
        "-w",
        "/tmp",
        "-e",
        "B=2",
        "e",
        "sh",
        "-c",
        "id -u; pwd; echo $A$B; exit 5",
    ]);
    assert_eq!((code, out.as_str()), (5, "1000\n/tmp\n12\n"), "{err}");
    // It runs in the container's cgroup.
    let out = root.ok(&["exec", "e", "cat", "/proc/self/cgroup"]);
    assert!(out.contains(&format!("/berth/{}", id.trim())), "{out}");
    root.ok(&["rm", "-f", "e"]);
    root.assert_no_containers();
}

#[test]
fn detached_output_is_logged_and_waited_for() {
    let Some(root) = Root::new() else { return };
    root.ok(&[
        "run",
        "-d",
        P,
        "--name",
        "l",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(root.ok(&["wait", "l"]), "3\n");
    let (code, out, err) = root.run(&["logs", "l"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "out\n", "err\n"));
    assert_eq!(root.mounts(), Vec::<String>::new(), "left mounted");
    root.ok(&["rm", "l"]);
    root.assert_no_containers();
}

#[test]
fn a_dead_monitor_is_cleaned_by_rm_force() {
    let Some(root) = Root::new() else { return };
    let id = root.ok(&["run", "-d", P, "--name", "m", "busybox", "sleep", "1000"]);
    let id = id.trim();
    let monitor = root.record("m").pid.unwrap();
    let pid = nix::unistd::Pid::from_raw(monitor as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    root.eventually("the monitor is gone", || {
        fs::read_to_string(format!("/proc/{monitor}/stat")).map_or(true, |s| s.contains(") Z"))
    });
    root.ok(&["rm", "-f", "m"]);
    assert!(!memory_cgroup(id).exists(), "cgroup left");
    root.assert_no_containers();
}

/// A plain process has no network namespace to join to a network.
#[test]
fn a_process_cannot_join_a_network() {
    let Some(root) = Root::new() else { return };
    let (code, _, err) = root.run(&[
        "run",
        "--rm",
        "--isolation",
        "process",
        "--network",
        "bridge",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(err.contains("--isolation process"), "{err}");
    root.assert_no_containers();
}
