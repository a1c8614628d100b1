//! `exec`: a second process in a running container, in all its namespaces and its
//! cgroup, with the container's settings unless overridden.

mod common;

use std::time::Duration;

use common::{require_root, ConsoleSocket, Runtime};
use serde_json::{json, Value};

/// A detached container whose init sleeps; returns its id and init pid.
fn sleeper(rt: &Runtime, edit: impl FnOnce(&mut common::Bundle)) -> (String, i64) {
    let mut b = rt.bundle();
    b.args(&["/bin/sleep", "60"]);
    edit(&mut b);
    let id = rt.id("x");
    rt.run_detached(&id, &b).assert_success();
    let pid = rt.state_json(&id)["pid"].as_i64().unwrap();
    (id, pid)
}

fn exec(rt: &Runtime, args: &[&str]) -> common::Output {
    let mut full = vec!["exec"];
    full.extend_from_slice(args);
    rt.cmd(&full)
}

fn ns_inode(pid: i64, kind: &str) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}"))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap()
}

#[test]
fn exec_joins_every_namespace_and_the_cgroup_of_the_init() {
    require_root!();
    let rt = Runtime::new();
    let (id, init) = sleeper(&rt, |b| {
        b.namespace("cgroup", None).namespace("time", None);
    });
    let r = exec(&rt, &[&id, "/bin/berth-probe", "report"])
        .assert_success()
        .json();
    for kind in ["pid", "mnt", "net", "uts", "ipc", "cgroup", "time"] {
        assert_eq!(
            r["namespaces"][kind].as_u64(),
            Some(ns_inode(init, kind)),
            "{kind} namespace differs from the init's"
        );
    }
    // Inside, the cgroup namespace shows the container's cgroup as "/".
    assert!(
        r["cgroup"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l.as_str().unwrap().ends_with(":/")),
        "{r}"
    );
    assert_eq!(
        r["pid"].as_i64(),
        Some(2),
        "second process of the pid namespace: {r}"
    );
}

#[test]
fn exec_returns_the_exit_status_and_signal_as_128_plus_n() {
    require_root!();
    let rt = Runtime::new();
    let (id, _) = sleeper(&rt, |_| {});
    exec(&rt, &[&id, "/bin/sh", "-c", "exit 42"]).assert_code(42);
    exec(&rt, &[&id, "/bin/sh", "-c", "kill -KILL $$"]).assert_code(137);
    let out = exec(&rt, &[&id, "/bin/echo", "hello", "world"])
        .assert_success()
        .stdout
        .clone();
    assert_eq!(out, "hello world\n");
}

#[test]
fn inline_overrides_user_cwd_env_caps_and_no_new_privs() {
    require_root!();
    let rt = Runtime::new();
    let (id, _) = sleeper(&rt, |b| {
        b.set("/process/noNewPrivileges", json!(false));
    });
    let r = exec(
        &rt,
        &[
            "--user",
            "1000:100",
            "--additional-gids",
            "7",
            "--cwd",
            "/dev",
            "--env",
            "FOO=bar",
            "--cap",
            "CAP_CHOWN",
            "--no-new-privs",
            &id,
            "/bin/berth-probe",
            "report",
        ],
    )
    .assert_success()
    .json();
    assert_eq!(r["uid"]["real"], 1000, "{r}");
    assert_eq!(r["gid"]["real"], 100, "{r}");
    assert!(r["groups"].as_array().unwrap().contains(&json!(7)), "{r}");
    assert_eq!(r["cwd"], "/dev");
    assert_eq!(r["env"]["FOO"], "bar");
    assert_eq!(r["env"]["TERM"], "xterm", "the container's env is kept");
    assert_eq!(r["no_new_privs"], true);
    let bounding = r["capabilities"]["bounding"]["names"].to_string();
    assert!(
        bounding.contains("CAP_CHOWN") && bounding.contains("CAP_KILL"),
        "{bounding}"
    );
}

#[test]
fn process_json_is_used_as_given() {
    require_root!();
    let rt = Runtime::new();
    let (id, _) = sleeper(&rt, |_| {});
    let file = rt.dir().join("process.json");
    std::fs::write(
        &file,
        json!({
            "args": ["/bin/berth-probe", "report"], "cwd": "/proc", "env": ["ONLY=this"],
            "user": {"uid": 0, "gid": 0}, "terminal": false,
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 77, "hard": 77}]
        })
        .to_string(),
    )
    .unwrap();
    let r = exec(&rt, &["-p", file.to_str().unwrap(), &id])
        .assert_success()
        .json();
    assert_eq!(r["cwd"], "/proc");
    assert_eq!(r["env"]["ONLY"], "this");
    assert!(
        r["env"].get("TERM").is_none(),
        "process.json replaces the env: {r}"
    );
    assert_eq!(r["rlimits"]["RLIMIT_NOFILE"]["soft"], 77, "{r}");
    let bad = rt.dir().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"args":["/bin/true"],"cwd":"/","user":{"uid":"root"}}"#,
    )
    .unwrap();
    let out = exec(&rt, &["-p", bad.to_str().unwrap(), &id]);
    out.assert_failure();
    assert!(out.stderr.contains("user.uid"), "{out:?}");
}

#[test]
fn detached_exec_writes_its_pid_file_and_keeps_running() {
    require_root!();
    let rt = Runtime::new();
    let (id, _) = sleeper(&rt, |_| {});
    let pid_file = rt.dir().join("exec.pid");
    exec(
        &rt,
        &[
            "-d",
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
            "/bin/sleep",
            "30",
        ],
    )
    .assert_success();
    let pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.starts_with("/bin/sleep"), "{cmdline:?}");
    let init = rt.state_json(&id)["pid"].as_i64().unwrap();
    let cgroup_of = |p: i64| std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
    assert_eq!(
        cgroup_of(pid),
        cgroup_of(init),
        "the exec'd process is in the init's cgroups"
    );
    let pids: Value = rt
        .cmd(&["ps", "--format", "json", &id])
        .assert_success()
        .json();
    assert!(
        pids.as_array().unwrap().contains(&json!(pid)),
        "{pids} lacks {pid}"
    );
}

#[test]
fn exec_with_a_console_socket_gets_a_tty() {
    require_root!();
    let rt = Runtime::new();
    let (id, _) = sleeper(&rt, |_| {});
    let sock = ConsoleSocket::bind(rt.dir().join("console.sock"));
    let out = exec(
        &rt,
        &[
            "-d",
            "-t",
            "--console-socket",
            sock.path().to_str().unwrap(),
            &id,
            "/bin/sleep",
            "5",
        ],
    );
    out.assert_success();
    let _master = sock.master(Duration::from_secs(10));
    exec(&rt, &["-t", "-d", &id, "/bin/true"]).assert_failure();
}

#[test]
fn exec_is_refused_in_stopped_and_paused_containers() {
    require_root!();
    let rt = Runtime::new();
    let (id, _) = sleeper(&rt, |_| {});
    rt.cmd(&["pause", &id]).assert_success();
    let out = exec(&rt, &[&id, "/bin/true"]);
    out.assert_failure();
    assert!(out.stderr.contains("paused"), "{out:?}");
    rt.cmd(&["resume", &id]).assert_success();
    rt.kill(&id, "KILL").assert_success();
    rt.wait_for_status(&id, "stopped", Duration::from_secs(10));
    exec(&rt, &[&id, "/bin/true"]).assert_failure();
    exec(&rt, &["nosuch", "/bin/true"]).assert_failure();
}

#[test]
fn exec_gets_the_containers_capabilities_and_no_host_fds() {
    require_root!();
    let rt = Runtime::new();
    let (id, _) = sleeper(&rt, |_| {});
    let r = exec(&rt, &[&id, "/bin/berth-probe", "report"])
        .assert_success()
        .json();
    let eff = r["capabilities"]["effective"]["names"].to_string();
    assert!(
        eff.contains("CAP_KILL") && !eff.contains("CAP_SYS_ADMIN"),
        "{eff}"
    );
    let fds: Vec<i64> = r["fds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fd"].as_i64().unwrap())
        .collect();
    assert!(fds.iter().all(|fd| *fd <= 3), "unexpected fds {fds:?}: {r}");
}
