//! Resource limits through real cgroups on this host (hybrid here): OOM kill, pids
//! limit, cpu quota, live update, pause/resume, stats, ps.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{require_root, Bundle, Runtime};
use serde_json::json;

/// The container's cgroup directory in the v1 (or unified) hierarchy of `controller`.
fn cgroup_dir(b: &Bundle, controller: &str) -> PathBuf {
    let path = b.spec()["linux"]["cgroupsPath"]
        .as_str()
        .expect("harness sets cgroupsPath")
        .trim_start_matches('/')
        .to_string();
    let v1 = Path::new("/sys/fs/cgroup").join(controller);
    if v1.join("cgroup.procs").exists() {
        v1.join(path)
    } else {
        Path::new("/sys/fs/cgroup").join(path)
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// A host directory bind-mounted read-write at /data in the container.
fn with_data_dir(rt: &Runtime, b: &mut Bundle) -> PathBuf {
    let dir = rt.dir().join(format!("data-{}", rt.id("d")));
    std::fs::create_dir_all(&dir).unwrap();
    b.set(
        "/mounts/-",
        json!({"destination": "/data", "type": "bind", "source": dir, "options": ["rbind", "rw"]}),
    );
    dir
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn memory_limit_oom_kills_a_container_that_exceeds_it() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    let limit = 16 << 20;
    b.set(
        "/linux/resources/memory",
        json!({"limit": limit, "swap": limit}),
    )
    .probe(&["alloc", "64", "0"]);
    let out = rt.run(&rt.id("oom"), &b);
    assert_eq!(
        out.code(),
        Some(128 + 9),
        "expected SIGKILL by the OOM killer: {out:?}"
    );
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set("/linux/resources/pids/limit", json!(10))
        .probe(&["fork-bomb", "50"]);
    let report = rt.run(&rt.id("pids"), &b).assert_success().json();
    let forked = report["forked"].as_u64().unwrap();
    assert!(
        forked < 10,
        "pids limit 10 allowed {forked} forks: {report}"
    );
    assert!(forked > 0, "no fork succeeded at all: {report}");
}

#[test]
fn cpu_quota_and_memory_limit_land_in_the_cgroup_files() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set(
        "/linux/resources/cpu",
        json!({"quota": 20000, "period": 100000, "shares": 512}),
    )
    .set("/linux/resources/memory/limit", json!(64 << 20))
    .args(&["/bin/sleep", "30"]);
    let id = rt.id("cpu");
    rt.run_detached(&id, &b).assert_success();
    let cpu = cgroup_dir(&b, "cpu");
    if cpu.join("cpu.cfs_quota_us").exists() {
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "20000");
        assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
        assert_eq!(read(&cpu.join("cpu.shares")), "512");
        assert_eq!(
            read(&cgroup_dir(&b, "memory").join("memory.limit_in_bytes")),
            (64u64 << 20).to_string()
        );
    } else {
        assert_eq!(read(&cpu.join("cpu.max")), "20000 100000");
        assert_eq!(read(&cpu.join("memory.max")), (64u64 << 20).to_string());
    }
    // The init is in that cgroup.
    let pid = rt.state_json(&id)["pid"].as_i64().unwrap();
    let procs = read(&cgroup_dir(&b, "pids").join("cgroup.procs"));
    assert!(
        procs.lines().any(|l| l == pid.to_string()),
        "{pid} not in {procs}"
    );
    rt.delete_force(&id).assert_success();
    assert!(!cpu.exists(), "cgroup {} left after delete", cpu.display());
}

#[test]
fn update_changes_live_limits_from_flags_and_json() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set("/linux/resources/memory/limit", json!(64 << 20))
        .args(&["/bin/sleep", "30"]);
    let id = rt.id("upd");
    rt.run_detached(&id, &b).assert_success();
    rt.cmd(&["update", "--memory", "32m", "--pids-limit", "7", &id])
        .assert_success();
    let mem = cgroup_dir(&b, "memory");
    let pids = cgroup_dir(&b, "pids");
    if mem.join("memory.limit_in_bytes").exists() {
        assert_eq!(
            read(&mem.join("memory.limit_in_bytes")),
            (32u64 << 20).to_string()
        );
    }
    assert_eq!(read(&pids.join("pids.max")), "7");
    let file = rt.dir().join("res.json");
    std::fs::write(&file, r#"{"pids": {"limit": 9}}"#).unwrap();
    rt.cmd(&["update", "-r", file.to_str().unwrap(), &id])
        .assert_success();
    assert_eq!(read(&pids.join("pids.max")), "9");
    let bad = rt.cmd(&["update", "--memory", "lots", &id]);
    bad.assert_failure();
    assert!(bad.stderr.contains("--memory"), "{bad:?}");
    assert_eq!(
        read(&pids.join("pids.max")),
        "9",
        "a rejected update changed nothing"
    );
}

#[test]
fn pause_freezes_and_resume_thaws() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    let data = with_data_dir(&rt, &mut b);
    b.probe(&["count", "/data/count"]);
    let id = rt.id("pause");
    rt.run_detached(&id, &b).assert_success();
    let counter = data.join("count");
    wait_until(|| lines(&counter) >= 2, "the counter to start");
    rt.cmd(&["pause", &id]).assert_success();
    assert_eq!(rt.state_json(&id)["status"], "paused");
    let frozen = lines(&counter);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(lines(&counter), frozen, "a paused container made progress");
    rt.cmd(&["pause", &id]).assert_failure();
    rt.cmd(&["resume", &id]).assert_success();
    assert_eq!(rt.state_json(&id)["status"], "running");
    wait_until(
        || lines(&counter) > frozen + 1,
        "the counter to move after resume",
    );
    rt.cmd(&["resume", &id]).assert_failure();
}

#[test]
fn events_stats_report_numbers_that_move() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.args(&["/bin/sh", "-c", "while :; do :; done"]);
    let id = rt.id("ev");
    rt.run_detached(&id, &b).assert_success();
    let sample = || {
        let ev = rt.cmd(&["events", "--stats", &id]).assert_success().json();
        assert_eq!(ev["type"], "stats");
        assert_eq!(ev["id"], id.as_str());
        assert!(ev["data"]["pids"]["current"].as_u64().unwrap() >= 1, "{ev}");
        assert!(
            ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
            "{ev}"
        );
        ev["data"]["cpu"]["usage"]["total"].as_u64().unwrap()
    };
    let first = sample();
    std::thread::sleep(Duration::from_millis(300));
    let second = sample();
    assert!(
        second > first,
        "cpu usage did not move: {first} -> {second}"
    );
}

#[test]
fn ps_lists_the_container_processes() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.args(&["/bin/sh", "-c", "sleep 30 & sleep 30 & wait"]);
    let id = rt.id("ps");
    rt.run_detached(&id, &b).assert_success();
    let init = rt.state_json(&id)["pid"].as_i64().unwrap();
    let mut pids = Vec::new();
    wait_until(
        || {
            pids = rt
                .cmd(&["ps", "--format", "json", &id])
                .assert_success()
                .json()
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_i64().unwrap())
                .collect();
            pids.len() >= 3
        },
        "three processes",
    );
    assert!(pids.contains(&init), "{pids:?} lacks init {init}");
    let table = rt.cmd(&["ps", &id]).assert_success().stdout.clone();
    assert!(
        table.starts_with("UID") && table.contains("sleep 30"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 1 + pids.len(), "{table}");
}

#[test]
fn bad_resources_are_rejected_before_anything_is_created() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set("/linux/resources/cpu", json!({"cpus": "0-x"}));
    let id = rt.id("bad");
    let out = rt.create(&id, &b);
    out.assert_failure();
    assert!(out.stderr.contains("cpus"), "{out:?}");
    assert!(!rt.root().join(&id).exists(), "state dir left behind");
    assert!(!cgroup_dir(&b, "pids").exists(), "cgroup left behind");
}

fn wait_until(mut cond: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
