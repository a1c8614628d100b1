//! Managers over fake cgroupfs trees in a temporary directory: every value written is
//! checked byte for byte, for v1, v2 and hybrid layouts.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_cgroups::devices::bpf::{BpfInsn, DeviceFilterAttacher};
use berth_cgroups::{
    manager_for, CgroupError, CgroupManager, FreezerState, Hierarchies, HybridManager, Layout,
    V1Hierarchy, V1Manager, V2Manager,
};
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxHugepageLimitBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources,
    LinuxResourcesBuilder, LinuxThrottleDeviceBuilder, LinuxWeightDeviceBuilder,
};

const PATH: &str = "/berth/c1";

/// Create `dir` and the given files with their contents.
fn populate(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (name, content) in files {
        fs::write(dir.join(name), content).unwrap();
    }
}

fn read(p: impl AsRef<Path>) -> String {
    fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

fn resources() -> LinuxResources {
    LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(8 << 20)
                .swap(16 << 20)
                .reservation(4 << 20)
                .swappiness(10u64)
                .disable_oom_killer(true)
                .kernel(1 << 20)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(1024u64)
                .quota(50_000)
                .period(100_000u64)
                .cpus("0-1")
                .mems("0")
                .idle(1)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(-1).build().unwrap())
        .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(-1)
            .build()
            .unwrap()])
        .build()
        .unwrap()
}

// ---------------------------------------------------------------- v1

struct FakeV1 {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    hierarchies: Hierarchies,
}

const V1_DIRS: [(&str, &str); 10] = [
    ("cpu,cpuacct", "cpu,cpuacct"),
    ("cpuset", "cpuset"),
    ("memory", "memory"),
    ("devices", "devices"),
    ("freezer", "freezer"),
    ("blkio", "blkio"),
    ("pids", "pids"),
    ("hugetlb", "hugetlb"),
    ("net_cls,net_prio", "net_cls,net_prio"),
    ("systemd", "name=systemd"),
];

/// A v1 tree described by a mountinfo text pointing into a temporary directory.
fn fake_v1(with_unified: Option<&str>) -> FakeV1 {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let mut mountinfo = String::new();
    for (i, (dir, opts)) in V1_DIRS.iter().enumerate() {
        let mp = root.join(dir);
        fs::create_dir_all(&mp).unwrap();
        mountinfo.push_str(&format!(
            "{} 31 0:{} / {} rw,relatime - cgroup cgroup rw,{opts}\n",
            40 + i,
            30 + i,
            mp.display()
        ));
    }
    if let Some(controllers) = with_unified {
        let mp = root.join("unified");
        populate(
            &mp,
            &[
                ("cgroup.controllers", controllers),
                ("cgroup.subtree_control", ""),
            ],
        );
        mountinfo.push_str(&format!(
            "60 31 0:60 / {} rw,relatime - cgroup2 cgroup2 rw\n",
            mp.display()
        ));
    }
    let hierarchies = Hierarchies::from_mountinfo(&mountinfo).unwrap();
    // Container directories with the files the kernel would create.
    let leaf = |d: &str| root.join(d).join("berth/c1");
    populate(
        &root.join("cpuset"),
        &[("cpuset.cpus", "0-3"), ("cpuset.mems", "0")],
    );
    populate(
        &root.join("cpuset/berth"),
        &[("cpuset.cpus", ""), ("cpuset.mems", "")],
    );
    populate(
        &leaf("cpuset"),
        &[("cpuset.cpus", "\n"), ("cpuset.mems", "\n")],
    );
    populate(
        &leaf("cpu,cpuacct"),
        &[
            ("cpu.shares", "1024"),
            ("cpu.cfs_quota_us", "-1"),
            ("cpu.cfs_period_us", "100000"),
            ("cpu.idle", "0"),
            ("cpuacct.usage", "123456789\n"),
            ("cpuacct.usage_percpu", "100000000 23456789 \n"),
            ("cpuacct.usage_user", "100\n"),
            ("cpuacct.usage_sys", "200\n"),
            (
                "cpu.stat",
                "nr_periods 10\nnr_throttled 3\nthrottled_time 999\n",
            ),
        ],
    );
    populate(
        &leaf("memory"),
        &[
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
            ("memory.soft_limit_in_bytes", ""),
            ("memory.swappiness", "60"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            ),
            ("memory.usage_in_bytes", "4096\n"),
            ("memory.max_usage_in_bytes", "8192\n"),
            ("memory.failcnt", "1\n"),
            ("memory.stat", "cache 100\nrss 200\ntotal_cache 300\n"),
        ],
    );
    populate(
        &leaf("devices"),
        &[("devices.allow", ""), ("devices.deny", "")],
    );
    populate(&leaf("freezer"), &[("freezer.state", "THAWED\n")]);
    populate(
        &leaf("blkio"),
        &[
            ("blkio.weight", ""),
            ("blkio.weight_device", ""),
            ("blkio.throttle.read_bps_device", ""),
            ("blkio.throttle.write_iops_device", ""),
            (
                "blkio.throttle.io_service_bytes_recursive",
                "8:0 Read 4096\n8:0 Write 512\nTotal 4608\n",
            ),
        ],
    );
    populate(
        &leaf("pids"),
        &[
            ("pids.max", "max"),
            ("pids.current", "3\n"),
            ("cgroup.procs", ""),
        ],
    );
    populate(&leaf("hugetlb"), &[("hugetlb.2MB.limit_in_bytes", "")]);
    populate(
        &leaf("net_cls,net_prio"),
        &[("net_cls.classid", ""), ("net_prio.ifpriomap", "")],
    );
    for (d, _) in V1_DIRS {
        let p = leaf(d).join("cgroup.procs");
        fs::create_dir_all(leaf(d)).unwrap();
        if !p.exists() {
            fs::write(p, "").unwrap();
        }
    }
    FakeV1 {
        _tmp: tmp,
        root,
        hierarchies,
    }
}

#[test]
fn v1_create_copies_cpuset_and_adds_task_everywhere() {
    let f = fake_v1(None);
    assert_eq!(f.hierarchies.layout().unwrap(), Layout::V1);
    let m = manager_for(&f.hierarchies, PATH).unwrap();
    assert_eq!(m.layout(), Layout::V1);
    m.create().unwrap();
    assert_eq!(read(f.root.join("cpuset/berth/cpuset.cpus")), "0-3");
    assert_eq!(read(f.root.join("cpuset/berth/c1/cpuset.mems")), "0");
    m.add_task(4242).unwrap();
    for (d, _) in V1_DIRS {
        assert_eq!(
            read(f.root.join(d).join("berth/c1/cgroup.procs")),
            "4242",
            "{d}"
        );
    }
    // create is idempotent.
    m.create().unwrap();
}

#[test]
fn v1_apply_writes_exact_values() {
    let f = fake_v1(None);
    let m = manager_for(&f.hierarchies, PATH).unwrap();
    m.create().unwrap();
    let mut r = resources();
    r.set_devices(Some(vec![LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .typ(LinuxDeviceType::C)
        .major(1)
        .minor(11)
        .access("r")
        .build()
        .unwrap()]));
    r.set_block_io(Some(
        LinuxBlockIoBuilder::default()
            .weight(500u16)
            .weight_device(vec![LinuxWeightDeviceBuilder::default()
                .major(8)
                .minor(0)
                .weight(300u16)
                .build()
                .unwrap()])
            .throttle_read_bps_device(vec![LinuxThrottleDeviceBuilder::default()
                .major(8)
                .minor(0)
                .rate(1_048_576u64)
                .build()
                .unwrap()])
            .build()
            .unwrap(),
    ));
    m.apply(&r).unwrap();
    let leaf = |d: &str, f2: &str| read(f.root.join(d).join("berth/c1").join(f2));
    assert_eq!(leaf("cpuset", "cpuset.cpus"), "0-1");
    assert_eq!(leaf("cpuset", "cpuset.mems"), "0");
    assert_eq!(leaf("cpu,cpuacct", "cpu.shares"), "1024");
    assert_eq!(leaf("cpu,cpuacct", "cpu.cfs_quota_us"), "50000");
    assert_eq!(leaf("cpu,cpuacct", "cpu.cfs_period_us"), "100000");
    assert_eq!(leaf("cpu,cpuacct", "cpu.idle"), "1");
    assert_eq!(leaf("memory", "memory.limit_in_bytes"), "8388608");
    // OCI swap is memory+swap, which is exactly v1's memsw.
    assert_eq!(leaf("memory", "memory.memsw.limit_in_bytes"), "16777216");
    assert_eq!(leaf("memory", "memory.soft_limit_in_bytes"), "4194304");
    assert_eq!(leaf("memory", "memory.swappiness"), "10");
    assert_eq!(leaf("memory", "memory.oom_control"), "1");
    assert_eq!(leaf("pids", "pids.max"), "max");
    assert_eq!(leaf("hugetlb", "hugetlb.2MB.limit_in_bytes"), "-1");
    assert_eq!(leaf("blkio", "blkio.weight"), "500");
    assert_eq!(leaf("blkio", "blkio.weight_device"), "8:0 300");
    assert_eq!(
        leaf("blkio", "blkio.throttle.read_bps_device"),
        "8:0 1048576"
    );
    // Last writes of the device program (the full sequence is a unit test).
    assert_eq!(leaf("devices", "devices.deny"), "c 1:11 r");
    assert_eq!(leaf("devices", "devices.allow"), "c 136:* rwm");
}

#[test]
fn v1_rejects_unified_and_bad_values_before_writing() {
    let f = fake_v1(None);
    let m = manager_for(&f.hierarchies, PATH).unwrap();
    m.create().unwrap();
    let r = LinuxResourcesBuilder::default()
        .unified(HashMap::from([(
            "memory.high".to_string(),
            "1M".to_string(),
        )]))
        .build()
        .unwrap();
    let e = m.apply(&r).unwrap_err();
    assert!(matches!(e, CgroupError::Unsupported { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "unified resources: this host has no cgroup v2 hierarchy (cgroup v1 only)"
    );
    let bad = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(5).build().unwrap())
        .cpu(LinuxCpuBuilder::default().quota(10).build().unwrap())
        .build()
        .unwrap();
    assert!(m.apply(&bad).is_err());
    // Validation failed before the pids limit was written.
    assert_eq!(read(f.root.join("pids/berth/c1/pids.max")), "max");
}

#[test]
fn v1_memory_lowering_writes_limit_first() {
    let f = fake_v1(None);
    let m = manager_for(&f.hierarchies, PATH).unwrap();
    let dir = f.root.join("memory/berth/c1");
    fs::write(dir.join("memory.limit_in_bytes"), "100").unwrap();
    fs::write(dir.join("memory.memsw.limit_in_bytes"), "200").unwrap();
    let r = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(-1).build().unwrap())
        .build()
        .unwrap();
    m.apply(&r).unwrap();
    // Unlimited memory with swap unset: both unlimited.
    assert_eq!(read(dir.join("memory.limit_in_bytes")), "-1");
    assert_eq!(read(dir.join("memory.memsw.limit_in_bytes")), "-1");
}

#[test]
fn v1_freezer_stats_oom_and_mounts() {
    let f = fake_v1(None);
    let m = manager_for(&f.hierarchies, PATH).unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Thawed);
    fs::write(f.root.join("freezer/berth/c1/freezer.state"), "FROZEN\n").unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Frozen);
    m.freeze(FreezerState::Frozen).unwrap();
    assert_eq!(
        read(f.root.join("freezer/berth/c1/freezer.state")),
        "FROZEN"
    );

    assert_eq!(m.oom_kill_count().unwrap(), 2);
    let s = m.stats().unwrap();
    assert_eq!(s.cpu.usage.total, 123_456_789);
    assert_eq!(s.cpu.usage.percpu, [100_000_000, 23_456_789]);
    assert_eq!((s.cpu.usage.user, s.cpu.usage.kernel), (100, 200));
    assert_eq!(s.cpu.throttling.throttled_periods, 3);
    assert_eq!(s.memory.usage.usage, 4096);
    assert_eq!(s.memory.usage.max, 8192);
    assert_eq!(s.memory.usage.failcnt, 1);
    assert_eq!(s.memory.cache, 300);
    assert_eq!(s.memory.raw["rss"], 200);
    assert_eq!((s.pids.current, s.pids.limit), (3, 0));
    assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
    assert_eq!(s.blkio.io_service_bytes_recursive[0].op, "Read");

    let mounts = m.container_mounts().unwrap();
    let names: Vec<&str> = mounts.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, V1_DIRS.map(|(d, _)| d));
    assert_eq!(mounts[2].host_dir, f.root.join("memory/berth/c1"));
    assert!(mounts.iter().all(|m| !m.unified));
}

#[test]
fn v1_remove_deepest_first_and_missing_is_fine() {
    let f = fake_v1(None);
    let m = manager_for(&f.hierarchies, PATH).unwrap();
    m.create().unwrap();
    // Fake dirs hold plain files, which rmdir refuses; clear them like cgroupfs would.
    for (d, _) in V1_DIRS {
        let dir = f.root.join(d).join("berth/c1");
        for e in fs::read_dir(&dir).unwrap() {
            fs::remove_file(e.unwrap().path()).unwrap();
        }
        fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    }
    m.remove().unwrap();
    for (d, _) in V1_DIRS {
        assert!(!f.root.join(d).join("berth/c1").exists());
        assert!(f.root.join(d).join("berth").exists());
    }
    m.remove().unwrap();
}

// ---------------------------------------------------------------- v2

#[derive(Debug, Default)]
struct RecordingAttacher(Mutex<Vec<(PathBuf, Vec<BpfInsn>)>>);

impl DeviceFilterAttacher for RecordingAttacher {
    fn attach(&self, dir: &Path, program: &[BpfInsn]) -> Result<(), CgroupError> {
        self.0
            .lock()
            .unwrap()
            .push((dir.to_path_buf(), program.to_vec()));
        Ok(())
    }
}

const V2_LEAF_FILES: [(&str, &str); 19] = [
    ("cgroup.procs", ""),
    ("cgroup.freeze", "0"),
    ("cgroup.events", "populated 1\nfrozen 0\n"),
    ("cgroup.kill", ""),
    ("cpu.weight", "100"),
    ("cpu.max", "max 100000"),
    ("cpu.idle", "0"),
    ("cpuset.cpus", ""),
    ("cpuset.mems", ""),
    ("memory.max", "max"),
    ("memory.swap.max", "max"),
    ("memory.low", "0"),
    ("memory.high", "max"),
    ("memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n"),
    ("pids.max", "max"),
    ("io.weight", "default 100"),
    ("io.max", ""),
    ("hugetlb.2MB.max", "max"),
    (
        "cpu.stat",
        "usage_usec 1000\nuser_usec 600\nsystem_usec 400\nnr_periods 5\nnr_throttled 1\nthrottled_usec 7\n",
    ),
];

fn fake_v2() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cgroup");
    populate(
        &root,
        &[
            (
                "cgroup.controllers",
                "cpuset cpu io memory hugetlb pids rdma misc\n",
            ),
            ("cgroup.subtree_control", "memory\n"),
        ],
    );
    populate(&root.join("berth"), &[("cgroup.subtree_control", "")]);
    populate(&root.join("berth/c1"), &V2_LEAF_FILES);
    (tmp, root)
}

#[test]
fn v2_create_enables_controllers_in_ancestors() {
    let (_tmp, root) = fake_v2();
    let m = V2Manager::new(root.clone(), PATH).unwrap();
    m.create().unwrap();
    assert_eq!(
        read(root.join("cgroup.subtree_control")),
        "+cpuset +cpu +io +hugetlb +pids +rdma +misc"
    );
    assert_eq!(
        read(root.join("berth/cgroup.subtree_control")),
        "+cpuset +cpu +io +memory +hugetlb +pids +rdma +misc"
    );
    m.add_task(77).unwrap();
    assert_eq!(read(root.join("berth/c1/cgroup.procs")), "77");
}

#[test]
fn v2_apply_converts_values() {
    let (_tmp, root) = fake_v2();
    let rec = Arc::new(RecordingAttacher::default());
    let m = V2Manager::new(root.clone(), PATH)
        .unwrap()
        .with_attacher(rec.clone());
    let mut r = resources();
    r.set_devices(Some(vec![]));
    r.set_unified(Some(HashMap::from([(
        "memory.high".to_string(),
        "6291456".to_string(),
    )])));
    r.set_pids(Some(LinuxPidsBuilder::default().limit(64).build().unwrap()));
    m.apply(&r).unwrap();
    let leaf = |f: &str| read(root.join("berth/c1").join(f));
    // 1 + (1024-2)*9999/262142
    assert_eq!(leaf("cpu.weight"), "39");
    assert_eq!(leaf("cpu.max"), "50000 100000");
    assert_eq!(leaf("cpu.idle"), "1");
    assert_eq!(leaf("cpuset.cpus"), "0-1");
    assert_eq!(leaf("cpuset.mems"), "0");
    assert_eq!(leaf("memory.max"), "8388608");
    // swap (mem+swap) 16M - limit 8M
    assert_eq!(leaf("memory.swap.max"), "8388608");
    assert_eq!(leaf("memory.low"), "4194304");
    assert_eq!(leaf("memory.high"), "6291456");
    assert_eq!(leaf("pids.max"), "64");
    assert_eq!(leaf("hugetlb.2MB.max"), "max");
    let programs = rec.0.lock().unwrap();
    assert_eq!(programs.len(), 1);
    assert_eq!(programs[0].0, root.join("berth/c1"));
    assert!(programs[0].1.len() > 20);
}

#[test]
fn v2_unlimited_and_io() {
    let (_tmp, root) = fake_v2();
    let m = V2Manager::new(root.clone(), PATH).unwrap();
    let r = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(-1).build().unwrap())
        .cpu(LinuxCpuBuilder::default().quota(-1).build().unwrap())
        .block_io(
            LinuxBlockIoBuilder::default()
                .weight(500u16)
                .throttle_write_iops_device(vec![LinuxThrottleDeviceBuilder::default()
                    .major(8)
                    .minor(16)
                    .rate(0u64)
                    .build()
                    .unwrap()])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    m.apply(&r).unwrap();
    let leaf = |f: &str| read(root.join("berth/c1").join(f));
    assert_eq!(leaf("memory.max"), "max");
    assert_eq!(leaf("memory.swap.max"), "max");
    assert_eq!(leaf("cpu.max"), "max");
    // 1 + (500-10)*9999/990
    assert_eq!(leaf("io.weight"), "4950");
    assert_eq!(leaf("io.max"), "8:16 wiops=max");

    let rt = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .realtime_runtime(1000)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    assert!(matches!(m.apply(&rt), Err(CgroupError::Unsupported { .. })));
}

#[test]
fn v2_freezer_stats_kill_and_mounts() {
    let (_tmp, root) = fake_v2();
    let m = V2Manager::new(root.clone(), PATH).unwrap();
    let leaf = root.join("berth/c1");
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Thawed);
    fs::write(leaf.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
    m.freeze(FreezerState::Frozen).unwrap();
    assert_eq!(read(leaf.join("cgroup.freeze")), "1");
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Frozen);

    assert_eq!(m.oom_kill_count().unwrap(), 1);
    let s = m.stats().unwrap();
    assert_eq!(s.cpu.usage.total, 1_000_000);
    assert_eq!(s.cpu.usage.user, 600_000);
    assert_eq!(s.cpu.throttling.throttled_time, 7000);
    assert_eq!(s.memory.usage.failcnt, 4);
    assert_eq!(s.memory.usage.limit, u64::MAX);

    m.kill_all(9).unwrap();
    assert_eq!(read(leaf.join("cgroup.kill")), "1");

    let mounts = m.container_mounts().unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].name, "");
    assert!(mounts[0].unified);
    assert_eq!(mounts[0].host_dir, leaf);
}

// ---------------------------------------------------------------- hybrid

#[test]
fn hybrid_routes_each_controller() {
    let f = fake_v1(Some("hugetlb memory\n"));
    assert_eq!(f.hierarchies.layout().unwrap(), Layout::Hybrid);
    let uleaf = f.root.join("unified/berth/c1");
    populate(
        &f.root.join("unified/berth"),
        &[("cgroup.subtree_control", "")],
    );
    populate(
        &uleaf,
        &[
            ("cgroup.procs", ""),
            ("hugetlb.2MB.max", ""),
            ("memory.high", ""),
        ],
    );
    // Hugetlb only in v1 would win; drop the v1 hugetlb hierarchy to route it to v2.
    let mut h = f.hierarchies.clone();
    h.v1.retain(|x| !x.has("hugetlb"));
    let m = manager_for(&h, PATH).unwrap();
    assert_eq!(m.layout(), Layout::Hybrid);
    m.create().unwrap();
    // Only hugetlb is left to v2 (memory is v1's).
    assert_eq!(
        read(f.root.join("unified/cgroup.subtree_control")),
        "+hugetlb"
    );
    m.add_task(99).unwrap();
    assert_eq!(read(uleaf.join("cgroup.procs")), "99");
    assert_eq!(read(f.root.join("systemd/berth/c1/cgroup.procs")), "99");

    let mut r = resources();
    r.set_unified(Some(HashMap::from([(
        "memory.high".to_string(),
        "max".to_string(),
    )])));
    m.apply(&r).unwrap();
    assert_eq!(read(uleaf.join("hugetlb.2MB.max")), "max");
    assert_eq!(read(uleaf.join("memory.high")), "max");
    assert_eq!(
        read(f.root.join("memory/berth/c1/memory.limit_in_bytes")),
        "8388608"
    );

    let mounts = m.container_mounts().unwrap();
    let last = mounts.last().unwrap();
    assert_eq!((last.name.as_str(), last.unified), ("unified", true));
    assert_eq!(mounts.len(), 10);
}

#[test]
fn hybrid_missing_controller_is_reported() {
    let f = fake_v1(Some(""));
    let mut h = f.hierarchies.clone();
    h.v1.retain(|x| !x.has("hugetlb"));
    let v1 = V1Manager::new(h.v1.clone(), PATH).unwrap();
    let v2 = V2Manager::new(h.unified.clone().unwrap(), PATH).unwrap();
    let m = HybridManager::new(v1, v2).unwrap();
    let e = m.apply(&resources()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "hugepage limits: the host has no cgroup hierarchy with this controller"
    );
}

#[test]
fn write_errors_name_file_value_and_errno() {
    let tmp = tempfile::tempdir().unwrap();
    let h = vec![V1Hierarchy::new(tmp.path().join("pids"), &["pids"])];
    let m = V1Manager::new(h, PATH).unwrap();
    let r = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(10).build().unwrap())
        .build()
        .unwrap();
    let e = m.apply(&r).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "writing 10 to {}: ENOENT",
            tmp.path().join("pids/berth/c1/pids.max").display()
        )
    );
}

#[test]
fn manager_rejects_bad_paths() {
    for bad in ["berth/x", "/berth/../../etc", "/", ""] {
        let e = berth_cgroups::manager(bad).err().expect(bad);
        assert!(matches!(e, CgroupError::InvalidPath { .. }), "{bad}: {e}");
    }
}
