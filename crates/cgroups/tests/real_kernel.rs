//! Tests on the real kernel (root only). Each test uses its own /berth-test/<unique>
//! cgroup, removed at the end even when the test fails. They run one at a time. Without
//! root or cgroups they print "SKIP: ..." and return.

use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread::sleep;
use std::time::{Duration, Instant};

use berth_cgroups::{CgroupManager, FreezerState, Hierarchies, Layout, V2Manager};
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder,
    LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};
use std::os::unix::process::ExitStatusExt;

static SERIAL: Mutex<()> = Mutex::new(());

/// Why these tests cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".into());
    }
    match berth_cgroups::detect() {
        Err(e) => Some(format!("no cgroup hierarchy: {e}")),
        Ok(_) => None,
    }
}

macro_rules! require_host {
    ($name:expr) => {
        if let Some(why) = skip_reason() {
            eprintln!("SKIP: {} needs root and mounted cgroups: {why}", $name);
            return;
        }
    };
}

fn unique_path() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "/berth-test/{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A cgroup and the children put in it; Drop kills them and removes the cgroup.
struct TestCgroup {
    m: Box<dyn CgroupManager>,
    children: Vec<Child>,
    _serial: MutexGuard<'static, ()>,
}

impl TestCgroup {
    fn new() -> Self {
        Self::with(berth_cgroups::manager(&unique_path()).unwrap())
    }

    fn with(m: Box<dyn CgroupManager>) -> Self {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        m.create().unwrap();
        Self {
            m,
            children: Vec::new(),
            _serial: serial,
        }
    }

    /// Start `sh -c script` in the cgroup: the shell waits on stdin until it has been
    /// moved, then runs the script. Returns the index of the child.
    fn spawn(&mut self, script: &str) -> usize {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("read _ ; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.m.add_task(child.id() as i32).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
        self.children.push(child);
        self.children.len() - 1
    }

    fn pid(&self, i: usize) -> i32 {
        self.children[i].id() as i32
    }

    fn wait(&mut self, i: usize) -> (ExitStatus, String) {
        let c = &mut self.children[i];
        let status = c.wait().unwrap();
        let mut err = String::new();
        if let Some(mut e) = c.stderr.take() {
            e.read_to_string(&mut err).unwrap();
        }
        (status, err)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = self.m.freeze(FreezerState::Thawed);
        let _ = self.m.kill_all(libc::SIGKILL);
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Err(e) = self.m.remove() {
            eprintln!("cleanup of {}: {e}", self.m.cgroups_path());
        }
    }
}

/// The file holding `v1_file` (v1 controller `ctrl`) or `v2_file` for `path`.
fn controller_file(path: &str, ctrl: &str, v1_file: &str, v2_file: &str) -> PathBuf {
    let h = Hierarchies::host().unwrap();
    let rel = path.trim_start_matches('/');
    match h.v1_hierarchy(ctrl) {
        Some(v1) => v1.mount_point.join(rel).join(v1_file),
        None => h.unified.as_ref().unwrap().join(rel).join(v2_file),
    }
}

fn read_trim(p: &PathBuf) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

/// utime of a process in clock ticks (field 14 of /proc/<pid>/stat).
fn utime(pid: i32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    after_comm.split(' ').nth(11).unwrap().parse().unwrap()
}

fn limits() -> LinuxResources {
    LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64 << 20)
                .swap(64 << 20)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(20).build().unwrap())
        .cpu(
            LinuxCpuBuilder::default()
                .quota(20_000)
                .period(100_000u64)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

#[test]
fn create_add_task_apply_and_read_back() {
    require_host!("create_add_task_apply_and_read_back");
    let mut cg = TestCgroup::new();
    let path = cg.m.cgroups_path().to_string();
    let c = cg.spawn("exec sleep 30");
    cg.m.apply(&limits()).unwrap();

    let mem = controller_file(&path, "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(read_trim(&mem), (64u64 << 20).to_string());
    let pids = controller_file(&path, "pids", "pids.max", "pids.max");
    assert_eq!(read_trim(&pids), "20");
    let quota = controller_file(&path, "cpu", "cpu.cfs_quota_us", "cpu.max");
    let q = read_trim(&quota);
    assert!(q == "20000" || q == "20000 100000", "{q}");

    assert!(cg.m.pids().unwrap().contains(&cg.pid(c)));
    // The child is in the container's cgroup in every hierarchy, not below ours.
    let own = berth_cgroups::process_cgroups(cg.pid(c)).unwrap();
    for e in &own {
        assert_eq!(e.path, path, "{e:?}");
    }
    if berth_cgroups::detect().unwrap() == Layout::Hybrid {
        assert!(own.iter().any(|e| e.hierarchy_id == 0));
        assert!(own.iter().any(|e| e.controllers == ["name=systemd"]));
        let names: Vec<String> =
            cg.m.container_mounts()
                .unwrap()
                .into_iter()
                .map(|m| m.name)
                .collect();
        assert!(names.contains(&"unified".to_string()), "{names:?}");
        assert!(names.contains(&"memory".to_string()), "{names:?}");
    }
}

#[test]
fn freeze_stops_and_thaw_resumes_a_busy_child() {
    require_host!("freeze_stops_and_thaw_resumes_a_busy_child");
    let mut cg = TestCgroup::new();
    let c = cg.spawn("while :; do :; done");
    let pid = cg.pid(c);
    sleep(Duration::from_millis(200));
    cg.m.freeze(FreezerState::Frozen).unwrap();
    assert_eq!(cg.m.freezer_state().unwrap(), FreezerState::Frozen);
    let t0 = utime(pid);
    sleep(Duration::from_millis(400));
    assert_eq!(utime(pid), t0, "a frozen process must not run");
    cg.m.freeze(FreezerState::Thawed).unwrap();
    assert_eq!(cg.m.freezer_state().unwrap(), FreezerState::Thawed);
    sleep(Duration::from_millis(400));
    assert!(utime(pid) > t0, "a thawed process runs again");
}

#[test]
fn stats_move() {
    require_host!("stats_move");
    let mut cg = TestCgroup::new();
    let before = cg.m.stats().unwrap();
    cg.spawn("i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; exec sleep 30");
    sleep(Duration::from_millis(500));
    let after = cg.m.stats().unwrap();
    assert!(
        after.cpu.usage.total > before.cpu.usage.total,
        "{before:?} {after:?}"
    );
    assert!(after.memory.usage.usage > 0);
    assert!(after.pids.current >= 1);
    let json = serde_json::to_value(&after).unwrap();
    assert!(json["cpu"]["usage"]["total"].as_u64().unwrap() > 0);
}

#[test]
fn memory_hog_is_oom_killed_and_counted() {
    require_host!("memory_hog_is_oom_killed_and_counted");
    let mut cg = TestCgroup::new();
    let r = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(8 << 20)
                .swap(8 << 20)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    cg.m.apply(&r).unwrap();
    assert_eq!(cg.m.oom_kill_count().unwrap(), 0);
    let c = cg.spawn("exec dd if=/dev/zero of=/dev/null bs=64M count=1");
    let (status, _) = cg.wait(c);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(cg.m.oom_kill_count().unwrap() >= 1);
}

#[test]
fn pids_limit_stops_forks() {
    require_host!("pids_limit_stops_forks");
    let mut cg = TestCgroup::new();
    let path = cg.m.cgroups_path().to_string();
    let r = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(3).build().unwrap())
        .build()
        .unwrap();
    cg.m.apply(&r).unwrap();
    let c = cg.spawn("for i in 1 2 3 4 5 6; do sleep 30 & done; wait");
    sleep(Duration::from_millis(300));
    assert!(cg.m.stats().unwrap().pids.current <= 3);
    let events = controller_file(&path, "pids", "pids.events", "pids.events");
    let max: u64 = read_trim(&events)
        .strip_prefix("max ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(max > 0, "pids.events max {max}");
    cg.m.kill_all(libc::SIGKILL).unwrap();
    let (status, _) = cg.wait(c);
    assert!(!status.success());
}

#[test]
fn kill_all_kills_every_process() {
    require_host!("kill_all_kills_every_process");
    let mut cg = TestCgroup::new();
    let a = cg.spawn("exec sleep 30");
    let b = cg.spawn("sleep 30; sleep 30");
    sleep(Duration::from_millis(100));
    cg.m.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(cg.wait(a).0.signal(), Some(libc::SIGKILL));
    assert_eq!(cg.wait(b).0.signal(), Some(libc::SIGKILL));
    let deadline = Instant::now() + Duration::from_secs(2);
    while !cg.m.pids().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "processes left in the cgroup");
        sleep(Duration::from_millis(10));
    }
}

fn deny_by_default() -> LinuxResources {
    // Only the default devices are allowed; /dev/kmsg (c 1:11) is not.
    LinuxResourcesBuilder::default()
        .devices(vec![LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .typ(LinuxDeviceType::A)
            .access("rwm")
            .build()
            .unwrap()])
        .build()
        .unwrap()
}

fn assert_devices_enforced(cg: &mut TestCgroup) {
    let ok = cg.spawn("exec 3</dev/null");
    let (status, err) = cg.wait(ok);
    assert!(status.success(), "/dev/null must be allowed: {err}");
    let denied = cg.spawn("exec 3</dev/kmsg");
    let (status, err) = cg.wait(denied);
    assert!(!status.success(), "/dev/kmsg must be denied");
    assert!(err.contains("Operation not permitted"), "{err}");
}

#[test]
fn device_rules_are_enforced() {
    require_host!("device_rules_are_enforced");
    let mut cg = TestCgroup::new();
    cg.m.apply(&deny_by_default()).unwrap();
    assert_devices_enforced(&mut cg);
}

#[test]
fn v2_device_program_is_enforced() {
    require_host!("v2_device_program_is_enforced");
    let Some(unified) = Hierarchies::host().unwrap().unified.clone() else {
        eprintln!("SKIP: v2_device_program_is_enforced: no cgroup2 hierarchy");
        return;
    };
    // On a hybrid host the eBPF program on the unified cgroup is checked too.
    let m = V2Manager::new(unified, &unique_path()).unwrap();
    let mut cg = TestCgroup::with(Box::new(m));
    cg.m.apply(&deny_by_default()).unwrap();
    assert_devices_enforced(&mut cg);
    // Applying again replaces the program.
    let allow_all = LinuxResourcesBuilder::default()
        .devices(vec![LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .access("rwm")
            .build()
            .unwrap()])
        .build()
        .unwrap();
    cg.m.apply(&allow_all).unwrap();
    let c = cg.spawn("exec 3</dev/kmsg");
    let (status, err) = cg.wait(c);
    assert!(status.success(), "{err}");
}

/// Median cost of manager + create + add_task, and of remove. Run with
/// `cargo test -p berth-cgroups --test real_kernel -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_create_add_task_remove() {
    require_host!("bench_create_add_task_remove");
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let h = Hierarchies::host().unwrap();
    let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = child.id().to_string();
    let mut roots: Vec<PathBuf> = h.v1.iter().map(|x| x.mount_point.clone()).collect();
    roots.extend(h.unified.clone());
    let (mut setup, mut create, mut teardown) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..100 {
        let path = unique_path();
        let t = Instant::now();
        let m = berth_cgroups::manager(&path).unwrap();
        m.create().unwrap();
        create.push(t.elapsed());
        m.add_task(child.id() as i32).unwrap();
        setup.push(t.elapsed());
        for r in &roots {
            fs::write(r.join("cgroup.procs"), &pid).unwrap();
        }
        let t = Instant::now();
        m.remove().unwrap();
        teardown.push(t.elapsed());
    }
    let _ = child.kill();
    let _ = child.wait();
    setup.sort();
    create.sort();
    teardown.sort();
    eprintln!(
        "manager+create+add_task: median {:?} (min {:?}, p90 {:?}; manager+create alone {:?}); \
         remove: median {:?}",
        setup[50], setup[0], setup[90], create[50], teardown[50]
    );
}
